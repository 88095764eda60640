"""Image files to uint8 tensors (Pillow reads the file, any format it knows; torchvision resizes), decoded
by a pool of processes with a progress bar on the first pass and cached as one uint8 array beside the data.

The cache, ``.vae-cache/<key>.npz`` in the data folder (or under ``~/.cache/pyro-vae`` when that folder is
read-only), is keyed by every file's path, size and modification time and by the size and channels asked
for: a changed, added or removed file, or another ``--image-size``, decodes afresh. ``bench/own_data.py loading``
measures the first pass (1 process and all cores) against a cached load.
"""
from __future__ import annotations

import hashlib
import json
import os
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from pyro_vae.inference.errors import UserError
from pyro_vae.inference.memory import require_memory

CACHE_FOLDER, CACHE_VERSION = ".vae-cache", 1
CHUNK = 512  # files per decoding task
GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}  # grey levels beyond 8 bits
CHANNEL_MODES = ("keep", "grey", "rgb")

DEFAULT_ROOT = Path.home() / ".cache" / "pyro-vae" / "data"  # downloads and the image cache


def image_extensions() -> set[str]:
    from PIL import Image

    return {ext.lower() for ext in Image.registered_extensions()}


def image_files(folder: Path) -> list[Path]:
    """The files in ``folder`` (not its subfolders) whose extension Pillow reads, by name; hidden files skipped."""
    known = image_extensions()
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in known)


def read_header(path: Path) -> tuple[tuple[int, int], int]:
    """((width, height), channels) from the file's header, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with _open_image(path) as im:
            return im.size, 1 if im.mode in GREY_MODES else 3
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as err:
        raise UserError(f"cannot read image {path}: {err}; remove or replace the file") from None


def _open_image(path: Path):
    """``Image.open(path)``, refused in one line when the header announces more pixels than Pillow's guard against
    decompression bombs allows (``Image.MAX_IMAGE_PIXELS``), before anything is decoded."""
    import warnings
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused just below, in one line
        im = Image.open(path)
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and im.size[0] * im.size[1] > limit:
        im.close()
        width, height = im.size
        raise UserError(f"image {path} is {width}x{height} pixels ({width * height:,}), more than the {limit:,} "
                        f"Pillow decodes (PIL.Image.MAX_IMAGE_PIXELS, a guard against decompression bombs); shrink "
                        f"the image or remove it")
    return im


def decode(path: Path, channels: int, size: Optional[Sequence[int]] = None, crop_square: bool = False) -> np.ndarray:
    """One image as uint8 (C, H, W), converted to ``channels`` (1: grey, 3: RGB), centre-cropped to a square if
    ``crop_square``, and resized to ``size`` (H, W)."""
    from PIL import Image, ImageOps, UnidentifiedImageError
    import torchvision.transforms.functional as TF

    try:
        with _open_image(path) as im:
            im = ImageOps.exif_transpose(im)  # a photo's EXIF orientation, as viewers show it
            im = _eight_bit(im, path) if im.mode in WIDE_MODES else im
            im = im.convert("L" if channels == 1 else "RGB")  # decodes: a truncated file fails here
            if crop_square:
                im = TF.center_crop(im, [min(im.size)] * 2)
            if size is not None and im.size != (size[1], size[0]):
                im = TF.resize(im, list(size), antialias=True)
            pixels = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as err:
        raise UserError(f"cannot decode image {path}: {err}; remove or replace the file") from None
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def _eight_bit(im, path: Path):
    """A 16-bit, 32-bit or float grey image as 8-bit levels (Pillow's own conversion clips at 255): 16-bit
    integers keep their top 8 bits, floats in [0, 1] are scaled by 255; other ranges are refused."""
    from PIL import Image

    values = np.asarray(im)
    if values.dtype.kind == "f":
        if not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1):
            raise UserError(f"{path} holds floating-point grey levels outside [0, 1] (range {values.min():g} to "
                            f"{values.max():g}); save it as an 8- or 16-bit image, or as floats in [0, 1]")
        return Image.fromarray(np.round(values * 255).astype(np.uint8))
    if values.min() < 0 or values.max() > 65535:
        raise UserError(f"{path} holds grey levels outside 0..65535; save it as an 8- or 16-bit image")
    sixteen = im.mode.startswith("I;16") or values.max() > 255
    return Image.fromarray((values.astype(np.uint32) >> 8 if sixteen else values).astype(np.uint8))


def workers() -> int:
    return max(1, min(16, os.cpu_count() or 1))


def _headers(paths: list) -> list:
    return [read_header(p) for p in paths]


def _decode_chunk(task) -> np.ndarray:
    paths, channels, size, crop_square = task
    return np.stack([decode(p, channels, size, crop_square) for p in paths])


def in_chunks(fn: Callable, tasks: list, sizes: list, desc: str, processes: Optional[int] = None):
    """``fn(task)`` for each task (a chunk of ``size`` files), in order, on a pool of forked processes (Pillow
    holds the GIL for small images, so threads do not help; one process for a single chunk), with a progress
    bar counting files (shown on a terminal only)."""
    from tqdm import tqdm

    processes = min(processes or workers(), len(tasks))
    pool = None
    if processes > 1 and "fork" in mp.get_all_start_methods():
        pool = ProcessPoolExecutor(processes, mp_context=mp.get_context("fork"))
    bar = tqdm(total=sum(sizes), desc=desc, unit="img", disable=None, leave=False)
    try:
        for size, result in zip(sizes, _bounded_map(pool, fn, tasks, 2 * processes) if pool else map(fn, tasks)):
            bar.update(size)
            yield result
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _bounded_map(pool, fn: Callable, tasks: list, window: int):
    """``pool.map(fn, tasks)`` with at most ``window`` tasks submitted ahead of the one read: results wait for
    their reader in bounded memory, however many tasks there are."""
    from collections import deque

    pending: deque = deque()
    for task in tasks:
        pending.append(pool.submit(fn, task))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def read_headers(paths: Sequence[Path], processes: Optional[int] = None) -> list:
    """``read_header`` of every file, in order."""
    chunks = [list(paths[i:i + CHUNK]) for i in range(0, len(paths), CHUNK)]
    return [h for part in in_chunks(_headers, chunks, [len(c) for c in chunks], "reading image headers", processes)
            for h in part]


def decode_all(paths: Sequence[Path], channels: int, size: Sequence[int], desc: str,
               processes: Optional[int] = None, crop_square: bool = False) -> np.ndarray:
    """(N, C, H, W) uint8 of the files, decoded in chunks of ``CHUNK`` files by ``processes`` processes."""
    tasks = [(list(paths[i:i + CHUNK]), channels, tuple(size), crop_square) for i in range(0, len(paths), CHUNK)]
    require_memory(5 * len(paths) * channels * size[0] * size[1], f"{len(paths)} images of {channels} x {size[0]} x "
                   f"{size[1]} (as bytes, then float32)", "pass a smaller --image-size")
    out = np.empty((len(paths), channels, *size), dtype=np.uint8)
    for i, chunk in enumerate(in_chunks(_decode_chunk, tasks, [len(t[0]) for t in tasks], desc, processes)):
        out[i * CHUNK:i * CHUNK + len(chunk)] = chunk
    return out


def cache_key(paths: Sequence[Path], root: Path, **options) -> str:
    """A digest of every file's path (relative to ``root``), size and modification time, and the options."""
    h = hashlib.sha256(json.dumps({"version": CACHE_VERSION, **options}, sort_keys=True).encode())
    for p in paths:
        st = p.stat()
        # os.fsencode: a name that is not UTF-8 (b'\xff', held as a lone surrogate) is hashed as its bytes on disk
        h.update(os.fsencode(p.relative_to(root)) + f"\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def cache_exists(root: Path, key: str) -> bool:
    """Whether a decoded copy under ``key`` is in one of the cache places (it is checked when read)."""
    return any((place / f"{key}.npz").is_file() for place in (root / CACHE_FOLDER, DEFAULT_ROOT / "image-cache"))


def cached_arrays(root: Path, key: str, build: Callable[[], dict], lengths: dict) -> dict:
    """The arrays cached under ``key`` for the data in ``root``, or ``build()``'s, written to the cache
    atomically. A cache that cannot be read, or whose arrays are not ``lengths`` (name -> rows) long, is
    rebuilt; one that cannot be written is skipped."""
    places = [root / CACHE_FOLDER, DEFAULT_ROOT / "image-cache"]
    for place in places:
        path = place / f"{key}.npz"
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as saved:
                    arrays = {name: saved[name] for name in lengths}
                if all(len(arrays[name]) == n for name, n in lengths.items()):
                    return arrays
            except Exception:  # noqa: BLE001 -- any damage (BadZipFile, KeyError, EOFError...) means: decode again
                pass
            path.unlink(missing_ok=True)
    arrays = build()
    for place in places:
        try:
            place.mkdir(parents=True, exist_ok=True)
            tmp = place / f".{key}.{os.getpid()}.tmp.npz"
            np.savez(tmp, **arrays)
            os.replace(tmp, place / f"{key}.npz")
            break
        except OSError:
            continue
    return arrays


def to_unit(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 k / 255."""
    return torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)


def adjust_images(data, image_size: Optional[Sequence[int]], channels_mode: str):
    """Images of a set already in memory resized to ``image_size`` (H, W) and given the channels
    ``channels_mode`` asks for (grey: ITU-R 601 luma; rgb: the grey level in each channel), kept on the
    8-bit grid k / 255."""
    import torchvision.transforms.functional as TF

    def adjust(x: torch.Tensor) -> torch.Tensor:
        changed = False
        if channels_mode == "grey" and x.shape[1] == 3:
            x, changed = TF.rgb_to_grayscale(x), True
        elif channels_mode == "rgb" and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1).contiguous()
        if image_size is not None and tuple(x.shape[-2:]) != tuple(image_size):
            x, changed = TF.resize(x, list(image_size), antialias=True), True
        return (x.clamp(0, 1) * 255).round_().div_(255) if changed else x

    if len(data.event_shape) != 3:
        return data
    if image_size is not None and tuple(data.event_shape[1:]) != tuple(image_size):  # the new tensors, beside the old
        count = data.train_x.shape[0] + data.test_x.shape[0]
        channels = {"rgb": 3, "grey": 1}.get(channels_mode, data.event_shape[0])
        require_memory(4 * count * channels * image_size[0] * image_size[1],
                       f"{count} images resized to {image_size[0]} x {image_size[1]}", "pass a smaller --image-size")
    return data.replace(train_x=adjust(data.train_x), test_x=adjust(data.test_x))
