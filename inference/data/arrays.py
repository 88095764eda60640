"""A file of numbers as a dataset: ``.npz`` (arrays ``train_x``, ``test_x``, optional ``train_y``, ``test_y``),
``.npy`` (one array) or ``.csv`` (numeric columns, a header row detected). An ``.npy``/``.csv`` file, or an
``.npz`` without ``test_x``, is split into train and test by ``test_fraction`` with a fixed seed.

Shape (N, D) trains the MLPs; (N, C, H, W) (or (N, H, W), read as one channel) the image networks. Values
are kept as the file has them (no rescaling), as float32: counts are exact up to 2**24 (a count likelihood
refuses larger ones).
"""
from __future__ import annotations

import codecs
import csv
import zipfile
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch

from pyro_vae.inference.data.datasets import ImageData
from pyro_vae.inference.data.headers import npy_header, npz_headers
from pyro_vae.inference.errors import UserError

SPLIT_SEED = 0  # fixed: the same train/test split of a file for every run
EXACT_INTEGERS = 2 ** 24  # float32 holds every integer below this


def split_indices(n: int, test_fraction: float, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random split of ``range(n)``: at least one point on each side."""
    if n < 2:
        raise UserError(f"{n} data point(s) cannot be split into train and test sets; it needs at least 2")
    order = np.random.default_rng(seed).permutation(n)
    test = min(n - 1, max(1, int(round(test_fraction * n))))
    return np.sort(order[test:]), np.sort(order[:test])


def _check_values(x: np.ndarray, where: str) -> np.ndarray:
    """``x`` as float32 (N, D) or (N, C, H, W); NaN or Inf named by its first row."""
    if x.dtype == object or np.iscomplexobj(x) or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise UserError(f"{where} holds {x.dtype} values; it needs numbers")
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim not in (2, 4):
        raise UserError(f"{where} has shape {x.shape}; it needs (N, D) for MLPs or (N, C, H, W) for images")
    if len(x) == 0:
        raise UserError(f"{where} is empty; it needs at least one row")
    if x[0].size == 0:
        raise UserError(f"{where} has shape {x.shape}: its rows hold no values; it needs at least one column")
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32)
    bad = ~np.isfinite(x32.reshape(len(x32), -1)).all(1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise UserError(f"{where} row {row} holds NaN or Inf (or a value beyond float32's range); remove or impute it")
    return x32


def _labels(y: Optional[np.ndarray], n: int, where: str) -> Optional[np.ndarray]:
    if y is None:
        return None
    y = np.asarray(y).reshape(-1) if np.asarray(y).ndim == 2 and np.asarray(y).shape[1] == 1 else np.asarray(y)
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"{where} must be {n} integer labels, one per row, got {y.dtype} of shape {y.shape}")
    return y.astype(np.int64)


def _dataset(name: str, train_x, test_x, train_y=None, test_y=None) -> ImageData:
    labelled = train_y is not None and test_y is not None
    zeros = [np.zeros(len(a), dtype=np.int64) for a in (train_x, test_x)]
    return ImageData(name, torch.from_numpy(train_x), torch.from_numpy(train_y if labelled else zeros[0]),
                     torch.from_numpy(test_x), torch.from_numpy(test_y if labelled else zeros[1]), labelled=labelled)


def _split(name: str, x: np.ndarray, y: Optional[np.ndarray], test_fraction: float) -> ImageData:
    train, test = split_indices(len(x), test_fraction)
    data = _dataset(name, x[train], x[test], None if y is None else y[train], None if y is None else y[test])
    return data.replace(source_rows=(train, test))


def read_npz(path: Path, test_fraction: float) -> ImageData:
    headers = npz_headers(path)  # each array's header checked first: a zip of .npy files, numbers, exact sizes
    with np.load(path, allow_pickle=False) as held:
        if "train_x" not in headers:
            raise UserError(f"{path} has no array 'train_x' (it has: {', '.join(sorted(held.files)) or 'none'}); "
                            f"an .npz needs train_x and test_x, and may have train_y and test_y")
        arrays = {name: held[header.member] for name, header in headers.items()}
    train_x = _check_values(arrays["train_x"], f"{path}: train_x")
    train_y = _labels(arrays.get("train_y"), len(train_x), f"{path}: train_y")
    if "test_x" not in arrays:
        return _split(path.stem, train_x, train_y, test_fraction)
    test_x = _check_values(arrays["test_x"], f"{path}: test_x")
    if test_x.shape[1:] != train_x.shape[1:]:
        raise UserError(f"{path}: test_x rows have shape {test_x.shape[1:]}, train_x rows {train_x.shape[1:]}")
    return _dataset(path.stem, train_x, test_x, train_y, _labels(arrays.get("test_y"), len(test_x), f"{path}: test_y"))


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def check_csv_row(path: Path, line: int, row: list, header: Optional[list], width: int) -> None:
    """One data row of a CSV: ``width`` cells, each a number; else one line naming the line and the column."""
    if len(row) != width:
        raise UserError(f"{path} line {line} has {len(row)} columns, the first row {width}")
    for j, cell in enumerate(row):
        if not _is_number(cell):
            column = f"{header[j]!r} (number {j + 1})" if header else f"number {j + 1}"
            if not cell.strip():
                raise UserError(f"{path}: column {column} is empty on line {line}: a missing value; remove "
                                f"or impute it")
            raise UserError(f"{path}: column {column} is not numeric: line {line} holds {cell!r}; "
                            f"remove that column or encode it as numbers")


def csv_rows(path: Path) -> Iterator[list[str]]:
    """The rows of a CSV file that hold something, as lists of cells; a file that is not UTF-8 text or not CSV
    (a field longer than the csv module's limit: an unclosed quote, or binary data) refused in one line."""
    with open(path, newline="", encoding="utf-8-sig") as fh:  # utf-8-sig: a byte-order mark is not a header
        reader = csv.reader(fh)
        try:
            for row in reader:
                if row and any(cell.strip() for cell in row):
                    yield row
        except UnicodeDecodeError as err:
            raise UserError(f"{path} is not UTF-8 text (line {_undecodable_line(path)} holds the byte "
                            f"0x{err.object[err.start:err.start + 1].hex()}); save it as UTF-8 (a CSV of "
                            f"numbers)") from None
        except csv.Error as err:
            hint = "an unclosed quote, or not a CSV file" if "field larger" in str(err) else "not a CSV file?"
            raise UserError(f"{path} line {reader.line_num}: {err} ({hint}); a CSV for --dataset array holds one "
                            f"number per cell") from None


def _undecodable_line(path: Path) -> int:
    """The number of the first line of ``path`` that is not UTF-8 (read again in blocks, once refused)."""
    decoder, line = codecs.getincrementaldecoder("utf-8")(), 1
    with open(path, "rb") as fh:
        while block := fh.read(2 ** 20):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as err:  # err.object: this block after a character begun in the last one
                return line + err.object[:err.start].count(b"\n")
            line += block.count(b"\n")
    return line


def read_csv(path: Path) -> tuple[np.ndarray, tuple]:
    """The numeric table of a CSV file and its column names (``()`` without a header): a first row that is not
    all numbers is the header; an unnamed first column holding 0, 1, 2, ... (pandas' index) is dropped."""
    rows = list(csv_rows(path))
    if not rows:
        raise UserError(f"{path} is empty; it needs rows of numbers")
    header = None if all(_is_number(c) for c in rows[0]) else rows[0]
    body = rows[1:] if header else rows
    if not body:
        raise UserError(f"{path} has a header row but no data rows")
    width = len(header or body[0])
    for line, row in enumerate(body, start=2 if header else 1):
        check_csv_row(path, line, row, header, width)
    table = np.array(body, dtype=np.float64)
    if header and header[0].strip() in ("", "Unnamed: 0") and np.array_equal(table[:, 0], np.arange(len(table))):
        table, header = table[:, 1:], header[1:]
    if table.shape[1] == 0:
        raise UserError(f"{path} holds no columns of data besides its index")
    integral = np.isfinite(table).all() and np.array_equal(table, np.round(table)) and \
        (table.size == 0 or np.abs(table).max() < EXACT_INTEGERS)
    return (table.astype(np.int64) if integral else table), tuple(c.strip() for c in header or ())


def load_array(path: Path, test_fraction: float = 0.1) -> ImageData:
    """The dataset in the ``.npz``, ``.npy`` or ``.csv`` file at ``path``."""
    if not path.is_file():
        raise UserError(f"array file {path} does not exist or is not a file; --dataset array needs an .npz, "
                        f".npy or .csv file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            return read_npz(path, test_fraction)
        if suffix == ".npy":
            npy_header(path)  # the header checked first: an .npy of numbers, exactly the bytes its shape needs
            return _split(path.stem, _check_values(np.load(path, allow_pickle=False), str(path)), None, test_fraction)
        if suffix == ".csv":
            table, names = read_csv(path)
            return _split(path.stem, _check_values(table, str(path)), None, test_fraction).replace(
                feature_names=names)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as err:
        raise UserError(f"cannot read {path}: {err}") from None
    raise UserError(f"{path} is not an .npz, .npy or .csv file; --dataset array reads those three")
