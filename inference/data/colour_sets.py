"""torchvision's colour sets, read from the files in torchvision's own layout under ``--data-dir``::

    cifar10   cifar-10-batches-py/data_batch_1 .. data_batch_5, test_batch   (pickled dicts: data, labels)
    svhn      train_32x32.mat, test_32x32.mat                                 (MATLAB: X (32, 32, 3, N), y; 10 is 0)
    celeba    celeba/img_align_celeba/*.jpg, celeba/list_eval_partition.txt   (0 train, 1 valid, 2 test)

When the files are absent, torchvision downloads them if the network allows; without one the error says
which files to put where. The files are read here rather than by torchvision's classes, which also demand
the published checksums (so a subset, or files a test writes, would be refused). CelebA's 178 x 218 photos
are centre-cropped to a square and resized to 64 x 64 unless ``--image-size`` says otherwise.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from pyro_vae.inference.data.datasets import ImageData
from pyro_vae.inference.data.images import DEFAULT_ROOT, cache_key, cached_arrays, decode_all, to_unit
from pyro_vae.inference.errors import UserError

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN, CIFAR_TEST = [f"data_batch_{i}" for i in range(1, 6)], "test_batch"
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
CELEBA_IMAGES, CELEBA_SPLITS = "celeba/img_align_celeba", "celeba/list_eval_partition.txt"
CELEBA_SIZE = (64, 64)
REQUIRED = {
    "cifar10": [f"{CIFAR_FOLDER}/{f}" for f in CIFAR_TRAIN + [CIFAR_TEST]],
    "svhn": list(SVHN_FILES.values()),
    "celeba": [CELEBA_IMAGES, CELEBA_SPLITS],
}


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as fh:
            batch = pickle.load(fh, encoding="latin1")
        images = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError) as err:
        raise UserError(f"{path} is not a CIFAR-10 batch file (a pickled dict of 'data' and 'labels'): "
                        f"{err.__class__.__name__}: {err}") from None
    if len(images) != len(labels):
        raise UserError(f"{path} holds {len(images)} images but {len(labels)} labels")
    return images, labels


def read_cifar10(root: Path) -> ImageData:
    def split(names):
        parts = [_read_cifar_batch(root / CIFAR_FOLDER / n) for n in names]
        return to_unit(np.concatenate([p[0] for p in parts])), torch.from_numpy(np.concatenate([p[1] for p in parts]))

    return ImageData("cifar10", *split(CIFAR_TRAIN), *split([CIFAR_TEST]), classes=CIFAR_CLASSES)


def read_svhn(root: Path) -> ImageData:
    from scipy.io import loadmat

    out = []
    for split, name in SVHN_FILES.items():
        try:
            mat = loadmat(root / name)
            images = np.asarray(mat["X"], dtype=np.uint8).transpose(3, 2, 0, 1)  # (32, 32, 3, N) -> (N, 3, 32, 32)
            labels = np.asarray(mat["y"], dtype=np.int64).reshape(-1) % 10  # the digit 0 is stored as 10
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UserError(f"{root / name} is not an SVHN .mat file (arrays X and y): {err}") from None
        out += [to_unit(images), torch.from_numpy(labels)]
    return ImageData("svhn", *out, classes=tuple(str(d) for d in range(10)))


def read_celeba(root: Path, image_size: Optional[Sequence[int]]) -> ImageData:
    size = tuple(image_size) if image_size is not None else CELEBA_SIZE
    files = {"train": [], "test": []}
    for line in (root / CELEBA_SPLITS).read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] in ("0", "2"):
            files["train" if parts[1] == "0" else "test"].append(root / CELEBA_IMAGES / parts[0])
    for split, paths in files.items():
        if not paths:
            raise UserError(f"{root / CELEBA_SPLITS} lists no {split} images (partition {0 if split == 'train' else 2})")
        missing = next((p for p in paths if not p.is_file()), None)
        if missing:
            raise UserError(f"{root / CELEBA_SPLITS} lists {missing.name}, which is not in {root / CELEBA_IMAGES}")
    key = cache_key(files["train"] + files["test"], root, size=size, channels=3, crop="centre-square")

    def build() -> dict:
        return {split: decode_all(paths, 3, size, f"decoding CelebA {split}", crop_square=True)
                for split, paths in files.items()}

    arrays = cached_arrays(root, key, build, {split: len(paths) for split, paths in files.items()})
    none = torch.zeros(len(files["train"]), dtype=torch.long), torch.zeros(len(files["test"]), dtype=torch.long)
    return ImageData("celeba", to_unit(arrays["train"]), none[0], to_unit(arrays["test"]), none[1], labelled=False)


def download(name: str, root: Path) -> None:
    """torchvision's download of ``name`` into ``root``; a one-line error naming the files when it fails."""
    import torchvision.datasets as tvd

    try:
        if name == "cifar10":
            tvd.CIFAR10(str(root), train=True, download=True)
        elif name == "svhn":
            for split in SVHN_FILES:
                tvd.SVHN(str(root), split=split, download=True)
        else:
            tvd.CelebA(str(root), split="all", download=True)
    except Exception as err:  # torchvision raises URLError, RuntimeError, gdown's errors... for a failed download
        first = str(err).splitlines()[0] if str(err) else "no network?"
        raise UserError(f"{name} is not in {root} and cannot be downloaded ({err.__class__.__name__}: {first}); "
                        f"put torchvision's files there: {', '.join(REQUIRED[name])}") from None


def load_colour_set(name: str, root: Optional[Path], image_size=None, channels_mode: str = "keep") -> ImageData:
    """CIFAR-10, SVHN or CelebA from ``root`` (default ``~/.cache/pyro-vae/data/<name>``), downloaded if absent."""
    root = Path(root) if root is not None else DEFAULT_ROOT / name
    if root.exists() and not root.is_dir():
        raise UserError(f"data folder {root} is not a folder")
    if not all((root / f).exists() for f in REQUIRED[name]):
        created = not root.exists()
        try:
            download(name, root)
        except UserError:
            if created and root.is_dir() and not any(root.iterdir()):  # nothing came: no empty folder left
                root.rmdir()                                             # (files that did come are kept)
            raise
    if name == "cifar10":
        return read_cifar10(root)
    if name == "svhn":
        return read_svhn(root)
    return read_celeba(root, image_size)
