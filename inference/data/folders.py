"""A folder of image files: ``DIR/train/`` and ``DIR/test/``, each holding the images directly or in one
subfolder per class (the sorted class names are the labels 0..K-1, usable by ``--conditional``).

Grey or colour as the files are (a set mixing both is read as colour) unless ``channels_mode`` says
``grey`` or ``rgb``; ``image_size`` (H, W) resizes, and without it images of different sizes are refused.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from pyro_vae.inference.data.datasets import ImageData
from pyro_vae.inference.data import images as image_io
from pyro_vae.inference.data.images import (CACHE_FOLDER, DEFAULT_ROOT, cache_exists, cache_key, cached_arrays,
                                            decode_all, image_files, read_headers, to_unit)
from pyro_vae.inference.data.sources import ImageFiles, MappedArray, NpyWriter
from pyro_vae.inference.data.streamed import should_stream
from pyro_vae.inference.errors import UserError

SPLITS = ("train", "test")


def split_files(folder: Path, split: str) -> tuple[list[Path], list[str]]:
    """The image files of ``folder/split`` and the class name of each ('' without class folders)."""
    where = folder / split
    if not where.is_dir():
        raise UserError(f"{folder} has no {split}/ folder; an image folder needs train/ and test/, each holding "
                        f"images or one subfolder of images per class")
    classes = sorted(d for d in where.iterdir() if d.is_dir() and not d.name.startswith("."))
    direct = image_files(where)
    if classes and direct:
        raise UserError(f"{where} holds both images ({direct[0].name}) and class folders ({classes[0].name}/); "
                        f"put every image in a class folder, or use no class folders")
    if not classes:
        if not direct:
            raise UserError(f"{where} is empty: it holds no image files (PNG, JPEG or another format Pillow reads)")
        return direct, [""] * len(direct)
    files, names = [], []
    for d in classes:
        found = image_files(d)
        if not found:
            raise UserError(f"class folder {d} holds no image files; remove it or add its images")
        files += found
        names += [d.name] * len(found)
    return files, names


def _common_size(headers: list, files: list[Path]) -> tuple[int, int]:
    sizes = {}
    for (size, _), path in zip(headers, files):
        sizes.setdefault(size, path)
        if len(sizes) > 1:
            (a, pa), (b, pb) = sizes.items()
            raise UserError(f"images of different sizes: {pa} is {a[0]}x{a[1]} and {pb} is {b[0]}x{b[1]} "
                            f"(width x height); pass --image-size H W to resize them all")
    (width, height), = sizes
    return height, width


def load_image_folder(folder: Path, image_size: Optional[Sequence[int]] = None, channels_mode: str = "keep",
                      name: str = "folder", stream: str = "never", budget: float = 0.5,
                      decode_once: bool = True) -> ImageData:
    """``folder``'s train and test images as (N, C, H, W) in [0, 1], with class labels where it has classes:
    decoded once into memory (and a cache), or, with ``stream`` ``always`` or ``auto`` and more than ``budget``
    of the memory available, read batch by batch: from a uint8 copy decoded once and memory-mapped
    (``decode_once``), else decoded in ``DataLoader`` workers every time (``ImageFiles``)."""
    if not folder.is_dir():
        raise UserError(f"image folder {folder} does not exist or is not a folder")
    found = {split: split_files(folder, split) for split in SPLITS}
    named = {split: bool(names[0]) for split, (_, names) in found.items()}
    if named["train"] != named["test"]:
        with_classes = "train" if named["train"] else "test"
        raise UserError(f"{folder / with_classes} has class folders but the other split does not; use class "
                        f"folders in both train/ and test/, or in neither")
    unknown = sorted(set(found["test"][1]) - set(found["train"][1]))
    if unknown:
        raise UserError(f"{folder / 'test' / unknown[0]} is a class with no folder in {folder / 'train'}; every test "
                        f"class needs training images")
    files = found["train"][0] + found["test"][0]
    classes = sorted(set(found["train"][1]) | set(found["test"][1])) if named["train"] else []
    index = {c: i for i, c in enumerate(classes)}
    key = cache_key(files, folder, image_size=list(image_size) if image_size else None, channels_mode=channels_mode)

    labels = {split: torch.tensor([index.get(c, 0) for c in found[split][1]], dtype=torch.long) for split in SPLITS}
    headers: list = []

    def shape() -> tuple[int, tuple]:  # every header (sizes, channels), read once
        if not headers:
            headers.extend(read_headers(files))
        size = tuple(image_size) if image_size is not None else _common_size(headers, files)
        return {"grey": 1, "rgb": 3}.get(channels_mode) or max(c for _, c in headers), size

    if stream != "never" and not (stream == "auto" and cache_exists(folder, key)):
        channels, size = shape()
        if should_stream(4 * len(files) * channels * size[0] * size[1], stream, budget):
            sources = decoded_copy(folder, key, found, channels, size) if decode_once else None
            sources = sources or {split: ImageFiles(found[split][0], channels, size, name=f"{folder / split}")
                                  for split in SPLITS}
            return ImageData(name, sources["train"], labels["train"], sources["test"], labels["test"],
                             labelled=bool(classes), classes=tuple(classes))

    def build() -> dict:  # the first pass: every header, then every image decoded
        channels, size = shape()
        return {split: decode_all(found[split][0], channels, size, f"decoding {folder / split}")
                for split in SPLITS}

    arrays = cached_arrays(folder, key, build, {split: len(found[split][0]) for split in SPLITS})
    return ImageData(name, to_unit(arrays["train"]), labels["train"], to_unit(arrays["test"]), labels["test"],
                     labelled=bool(classes), classes=tuple(classes))


def decode_to_file(paths: Sequence[Path], channels: int, size: Sequence[int], where: Path, desc: str) -> None:
    """The files decoded (as ``decode_all``) into the uint8 ``.npy`` file ``where``, chunk by chunk in bounded
    memory: written under a temporary name, renamed when complete."""
    tmp, step = where.with_name(f".{where.stem}.{os.getpid()}.tmp.npy"), image_io.CHUNK
    tasks = [(list(paths[i:i + step]), channels, tuple(size), False) for i in range(0, len(paths), step)]
    out = NpyWriter(tmp, np.uint8, (len(paths), channels, *size))
    try:
        for chunk in image_io.in_chunks(image_io._decode_chunk, tasks, [len(t[0]) for t in tasks], desc):
            out.write(chunk)
        out.close()
        os.replace(tmp, where)
    finally:
        out.fh.close()  # (again, after close: nothing) a failure leaves no open file and no temporary file
        tmp.unlink(missing_ok=True)


def decoded_copy(folder: Path, key: str, found: dict, channels: int, size: tuple) -> Optional[dict]:
    """Memory-mapped uint8 copies of the train and test images, decoded once (in bounded memory) beside the data
    or in the user cache, keyed as the in-memory cache is; None, after one ``note:`` line, when neither place
    has room for them (the images are then decoded every epoch)."""
    import shutil
    import sys

    per_image = channels * size[0] * size[1]
    needed = sum(len(found[split][0]) for split in SPLITS) * per_image
    for place in (folder / CACHE_FOLDER, DEFAULT_ROOT / "image-cache"):
        paths = {split: place / f"{key}-{split}.npy" for split in SPLITS}
        maps = {}
        for split, path in paths.items():
            try:
                mapped = MappedArray(path, name=str(folder / split), eight_bit=True)
                if mapped.shape == (len(found[split][0]), channels, *size) and mapped.eight_bit:
                    maps[split] = mapped
            except UserError:
                pass
        if len(maps) == len(SPLITS):
            return maps
        try:
            place.mkdir(parents=True, exist_ok=True)
            if shutil.disk_usage(place).free < 1.05 * needed:
                continue
            for split, path in paths.items():
                if split not in maps:
                    decode_to_file(found[split][0], channels, size, path, f"decoding {folder / split} once")
            return {split: MappedArray(path, name=str(folder / split), eight_bit=True) for split, path in paths.items()}
        except OSError:
            continue
    print(f"note: no room for a decoded copy of the images ({needed / 1e9:.1f} GB) beside {folder} or in "
          f"{DEFAULT_ROOT / 'image-cache'}; decoding them in --workers processes every epoch", file=sys.stderr)
    return None


def write_image_folder(folder: Path, images: np.ndarray, labels: Optional[np.ndarray] = None,
                       classes: Sequence[str] = (), fmt: str = "png") -> list[Path]:
    """Write uint8 images (N, C, H, W) as files under ``folder`` (in ``classes[label]/`` when labels are given):
    the inverse of ``split_files``, used to export a set (and by the tests)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i, image in enumerate(images):
        where = folder / classes[labels[i]] if labels is not None else folder
        where.mkdir(exist_ok=True)
        pixels = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        path = where / f"{i:06d}.{fmt}"
        Image.fromarray(np.ascontiguousarray(pixels)).save(path)
        written.append(path)
    return written
