"""Data read from disk batch by batch: when to, and the arrays and their cache.

``--stream auto`` (the default) streams a folder or array whose values would take, as float32, more than
``--memory-budget`` (a share) of the memory available at start-up; ``always`` and ``never`` decide outright.
An ``.npy`` file is read through a memory map (``MappedArray``); an ``.npz`` or ``.csv`` file is converted once,
chunk by chunk, into ``.npy`` files of float32 beside it (``.vae-cache/``, or the user cache when that folder
cannot be written), checked on every use against a manifest (shapes, sizes) and rebuilt when it does not match
or the source file changed (its size and modification time are in the cache key). Every value is checked
finite on the way, so a streamed set is refused for what the same set in memory is refused for.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch

from pyro_vae.inference.data.datasets import ImageData
from pyro_vae.inference.data.headers import NpyHeader, npy_header, npz_headers
from pyro_vae.inference.data.images import CACHE_FOLDER, DEFAULT_ROOT, cache_key
from pyro_vae.inference.data.sources import MappedArray, NpyWriter, RowSource, Subset, passes
from pyro_vae.inference.errors import UserError
from pyro_vae.inference.memory import available_bytes

ROWS_PER_CHUNK = 4096


def should_stream(nbytes: int, stream: str, budget: float) -> bool:
    """Whether data of ``nbytes`` (as float32) is read from disk: ``always``, ``never``, or (``auto``) when it is
    more than ``budget`` of the memory available now."""
    if stream in ("always", "never"):
        return stream == "always"
    return nbytes > budget * available_bytes()


def array_bytes(path: Path) -> int:
    """What the array file at ``path`` would take in memory as float32 (a CSV: its size, which its parse exceeds)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return 4 * npy_header(path).count
        if suffix == ".npz":
            return sum(4 * header.count for header in npz_headers(path).values())
    except UserError:
        return 0  # unreadable or damaged: the reader in memory says why
    return path.stat().st_size


def check_finite(source: RowSource, where: str) -> None:
    """Every value of ``source`` finite (one pass, in chunks), else one line naming the first bad row."""
    start = 0
    for chunk in passes(source, ROWS_PER_CHUNK):
        bad = ~torch.isfinite(chunk.reshape(len(chunk), -1)).all(1)
        if bad.any():
            row = start + int(bad.nonzero()[0])
            if isinstance(source, Subset):
                row = source.source_row(row)
            raise UserError(f"{where} row {row} holds NaN or Inf (or a value beyond float32's range); remove or "
                            f"impute it")
        start += len(chunk)


def _split_source(name: str, source: RowSource, test_fraction: float, feature_names: tuple = ()) -> ImageData:
    from pyro_vae.inference.data.arrays import split_indices

    train, test = split_indices(len(source), test_fraction)
    zeros = [torch.zeros(len(rows), dtype=torch.long) for rows in (train, test)]
    return ImageData(name, source.subset(train), zeros[0], source.subset(test), zeros[1], labelled=False,
                     source_rows=(train, test), feature_names=feature_names)


def stream_array(path: Path, test_fraction: float) -> ImageData:
    """The array file at ``path`` as sources read on demand (``.npy`` mapped; ``.npz``/``.csv`` converted once)."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        source = MappedArray(path)
        check_finite(source, str(path))
        return _split_source(path.stem, source, test_fraction)
    if suffix not in (".npz", ".csv"):
        raise UserError(f"{path} is not an .npz, .npy or .csv file; --dataset array reads those three")
    if suffix == ".npz":
        npz_headers(path)  # a zip of .npy arrays of numbers, each exactly as long as its header says
    parts, extra = _cached(path)
    if suffix == ".csv":
        return _split_source(path.stem, parts["x"], test_fraction, tuple(extra.get("feature_names", ())))
    train_y, test_y = extra.get("train_y"), extra.get("test_y")
    if "test_x" not in parts:
        data = _split_source(path.stem, parts["train_x"], test_fraction)
        if train_y is not None:
            rows = data.source_rows
            data = data.replace(train_y=torch.from_numpy(train_y[rows[0]]), test_y=torch.from_numpy(train_y[rows[1]]),
                                labelled=True)
        return data
    if parts["test_x"].shape[1:] != parts["train_x"].shape[1:]:
        raise UserError(f"{path}: test_x rows have shape {tuple(parts['test_x'].shape[1:])}, train_x rows "
                        f"{tuple(parts['train_x'].shape[1:])}")
    labelled = train_y is not None and test_y is not None
    ys = [torch.from_numpy(y) if labelled else torch.zeros(len(parts[k]), dtype=torch.long)
          for y, k in ((train_y, "train_x"), (test_y, "test_x"))]
    return ImageData(path.stem, parts["train_x"], ys[0], parts["test_x"], ys[1], labelled=labelled)


# -- the cache -----------------------------------------------------------------------------------------
def _cached(path: Path) -> tuple[dict, dict]:
    """The converted arrays of ``path`` (mapped) and what else it holds (labels, column names)."""
    key = cache_key([path], path.parent, kind="array-stream")
    for place in (path.parent / CACHE_FOLDER, DEFAULT_ROOT / "array-cache"):
        found = _read_cache(place, key)
        if found is not None:
            return found
    for place in (path.parent / CACHE_FOLDER, DEFAULT_ROOT / "array-cache"):
        try:
            place.mkdir(parents=True, exist_ok=True)
            probe = place / f".{key}.{os.getpid()}.probe"
            probe.touch()
            probe.unlink()
        except OSError:
            continue
        _convert(path, place, key)
        found = _read_cache(place, key)
        if found is None:
            raise UserError(f"the converted copy of {path} in {place} cannot be read back; remove {place} and "
                            f"try again")
        return found
    raise UserError(f"cannot write a converted copy of {path} beside it ({path.parent / CACHE_FOLDER}) or in "
                    f"{DEFAULT_ROOT / 'array-cache'}; make one of them writable, or --stream never")


def _read_cache(place: Path, key: str) -> Optional[tuple[dict, dict]]:
    """The cache under ``key`` when its manifest is there and every array matches it (else None: rebuilt)."""
    try:
        manifest = json.loads((place / f"{key}.json").read_text())
        parts = {}
        for name, shape in manifest["arrays"].items():
            parts[name] = MappedArray(place / f"{key}-{name}.npy", name=f"{manifest['source']} ({name})")
            if list(parts[name].values.shape) != list(shape) or parts[name].file_dtype != np.float32:
                return None
        extra = {k: np.load(place / f"{key}-{k}.npy", allow_pickle=False) for k in manifest.get("labels", ())}
        extra["feature_names"] = tuple(manifest.get("feature_names", ()))
        return parts, extra
    except (OSError, ValueError, KeyError, TypeError, UserError):
        return None


def _convert(path: Path, place: Path, key: str) -> None:
    """Write ``path``'s arrays as float32 ``.npy`` files under ``place`` (each checked finite while written), then
    the manifest, which makes the cache valid; temporary names until then."""
    manifest: dict = {"source": str(path), "arrays": {}, "labels": []}
    written: list[Path] = []
    try:
        if path.suffix.lower() == ".csv":
            names, rows, width = _csv_shape(path)
            _write(place, key, "x", (rows, width), _csv_chunks(path, names is not None, width), str(path), written)
            manifest["arrays"]["x"] = [rows, width]
            manifest["feature_names"] = list(names or ())
        else:
            headers = npz_headers(path)
            with zipfile.ZipFile(path) as zf:
                members = {Path(n).stem for n in zf.namelist() if n.endswith(".npy")}
                if "train_x" not in headers:
                    raise UserError(f"{path} has no array 'train_x' (it has: {', '.join(sorted(members)) or 'none'}); "
                                    f"an .npz needs train_x and test_x, and may have train_y and test_y")
                for name in ("train_x", "test_x"):
                    if name in headers:
                        shape = _write_member(zf, headers[name], place, key, name, f"{path}: {name}", written)
                        manifest["arrays"][name] = list(shape)
                with np.load(path, allow_pickle=False) as held:
                    for name in ("train_y", "test_y"):
                        if name in headers:
                            y = _labels(held[headers[name].member], manifest["arrays"].get(name.replace("_y", "_x"),
                                                                                           [0])[0], f"{path}: {name}")
                            target = place / f"{key}-{name}.npy"
                            np.save(target, y)
                            written.append(target)
                            manifest["labels"].append(name)
        tmp = place / f".{key}.{os.getpid()}.json"
        tmp.write_text(json.dumps(manifest))
        os.replace(tmp, place / f"{key}.json")
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as err:  # (UnicodeDecodeError is a ValueError)
        for f in written:
            f.unlink(missing_ok=True)
        raise UserError(f"cannot convert {path} for streaming: {err}") from None
    except BaseException:
        for f in written:
            f.unlink(missing_ok=True)
        raise


def _labels(y: np.ndarray, n: int, where: str) -> np.ndarray:
    from pyro_vae.inference.data.arrays import _labels as check

    return check(y, n, where)


def _write(place: Path, key: str, name: str, shape: tuple, chunks: Iterator[np.ndarray], where: str,
           written: list) -> None:
    """Rows from ``chunks`` into a float32 ``.npy`` of ``shape`` (a temporary name, renamed when complete)."""
    tmp = place / f".{key}-{name}.{os.getpid()}.npy"
    written.append(tmp)
    out = NpyWriter(tmp, np.float32, shape)
    start = 0
    for chunk in chunks:
        with np.errstate(over="ignore", invalid="ignore"):
            values = chunk.astype(np.float32).reshape((len(chunk),) + shape[1:])
        bad = ~np.isfinite(values.reshape(len(values), -1)).all(1)
        if bad.any():
            raise UserError(f"{where} row {start + int(np.flatnonzero(bad)[0])} holds NaN or Inf (or a value beyond "
                            f"float32's range); remove or impute it")
        if start + len(values) > shape[0]:
            raise UserError(f"{where} holds more than the {shape[0]} rows its header says")
        out.write(values)
        start += len(values)
    out.fh.flush()
    os.fsync(out.fh.fileno())
    out.fh.close()
    if start != shape[0]:
        raise UserError(f"{where} ended after {start} of {shape[0]} rows; the file is truncated")
    final = place / f"{key}-{name}.npy"
    os.replace(tmp, final)
    written.append(final)


def _write_member(zf: zipfile.ZipFile, header: NpyHeader, place: Path, key: str, name: str, where: str,
                  written: list) -> tuple:
    """An ``.npz`` member (its header checked by ``npz_headers``) read a chunk of rows at a time into the cache."""
    with zf.open(header.member) as fh:
        fh.seek(header.offset)
        shape, fortran, dtype = header.shape, header.fortran, header.dtype
        if fortran and len(shape) > 1:
            raise UserError(f"{where} is stored in Fortran order; save it with np.ascontiguousarray")
        shape = (shape[0], 1) + tuple(shape[1:]) if len(shape) == 3 else tuple(shape)
        if len(shape) not in (2, 4) or 0 in shape:
            raise UserError(f"{where} has shape {shape}; it needs (N, D) for MLPs or (N, C, H, W) for images, "
                            f"with at least one row and one column")
        row_bytes = int(np.prod(shape[1:])) * dtype.itemsize

        def chunks():
            left = shape[0]
            while left:
                n = min(left, ROWS_PER_CHUNK)
                raw = fh.read(n * row_bytes)
                if len(raw) != n * row_bytes:
                    raise UserError(f"{where} is truncated: its header says {shape[0]} rows")
                yield np.frombuffer(raw, dtype=dtype).reshape((n,) + tuple(shape[1:]))
                left -= n

        _write(place, key, name, shape, chunks(), where, written)
        return shape


def _csv_rows(path: Path) -> Iterator[list[str]]:
    from pyro_vae.inference.data.arrays import csv_rows

    return csv_rows(path)


def _csv_shape(path: Path) -> tuple[Optional[list], int, int]:
    """First pass: the header (None without one), the number of data rows and columns; every cell checked a
    number (the same refusals as ``read_csv``). A pandas index column is refused here: drop it when saving."""
    from pyro_vae.inference.data.arrays import _is_number, check_csv_row

    rows, header, width = 0, None, None
    for line, row in enumerate(_csv_rows(path), start=1):
        if line == 1 and not all(_is_number(c) for c in row):
            header, width = [c.strip() for c in row], len(row)
            continue
        width = width or len(row)
        check_csv_row(path, line, row, header, width)
        rows += 1
    if not rows:
        raise UserError(f"{path} has no data rows; it needs rows of numbers")
    if header and header[0] in ("", "Unnamed: 0"):
        raise UserError(f"{path} starts with an unnamed index column, which streaming does not drop; save the "
                        f"file without it (pandas: index=False), or --stream never")
    return header, rows, width


def _csv_chunks(path: Path, has_header: bool, width: int) -> Iterator[np.ndarray]:
    rows = _csv_rows(path)
    if has_header:
        next(rows)
    chunk: list = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == ROWS_PER_CHUNK:
            yield np.array(chunk, dtype=np.float64)
            chunk = []
    if chunk:
        yield np.array(chunk, dtype=np.float64)

