"""The headers of ``.npy`` files and of the ``.npy`` members of an ``.npz`` archive, read and checked before any
value is: what the file is (an ``.npy`` array, a zip, a pickle), its dtype (numbers; an object array, which
only a pickle can hold, is refused and never unpickled), its shape, and its size, which must be exactly what
the header says (a header that promises more bytes than follow, or fewer, is a damaged file).
"""
from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from pyro_vae.inference.errors import UserError

NPY_MAGIC, ZIP_MAGIC = b"\x93NUMPY", b"PK\x03\x04"
PICKLE_MAGICS = (b"\x80",)  # pickle protocol 2 and later start with PROTO (0x80)
ARRAY_NAMES = ("train_x", "test_x", "train_y", "test_y")  # what an .npz of a dataset may hold


@dataclass(frozen=True)
class NpyHeader:
    """What an ``.npy`` header says: ``shape``, ``fortran`` order, ``dtype``, and ``offset`` (where the values start)."""

    shape: tuple
    fortran: bool
    dtype: np.dtype
    offset: int
    member: str = ""  # in an .npz archive: the member's name

    @property
    def count(self) -> int:
        """The number of values (a Python integer: no overflow, whatever the header says)."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """The bytes of values that must follow the header."""
        return self.count * self.dtype.itemsize


def what_file(start: bytes) -> str:
    """What the first bytes of a file say it is, for messages: an .npy array, an .npz (zip) archive, a pickle, ''."""
    if start.startswith(NPY_MAGIC):
        return "a single .npy array"
    if start.startswith(ZIP_MAGIC) or start.startswith(b"PK\x05\x06"):
        return "a zip archive (.npz)"
    if start[:1] in PICKLE_MAGICS:
        return "a Python pickle (never loaded: it could run code)"
    return ""


def read_npy_header(fh: BinaryIO, where: str, size: int) -> NpyHeader:
    """The header of the ``.npy`` data open in ``fh`` (at its start) whose total length is ``size`` bytes, each part
    checked: numbers, non-negative sizes, and exactly the bytes the shape and dtype need."""
    start = fh.read(len(NPY_MAGIC))
    if not start.startswith(NPY_MAGIC):
        kind = what_file(start + fh.read(2))
        raise UserError(f"{where} is not an .npy array{f' but {kind}' if kind else ''}; save the array with np.save")
    fh.seek(0)  # (a member of a zip archive too: its start is cheap to go back to)
    try:
        version = np.lib.format.read_magic(fh)
        read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0,
                (3, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read is None:
            raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
        shape, fortran, dtype = read(fh)
        offset = fh.tell()
    except (ValueError, SyntaxError, TypeError, IndexError, OverflowError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"{where} has a damaged .npy header ({reason}); save the array again with np.save") from None
    header = NpyHeader(tuple(int(s) for s in shape), bool(fortran), dtype, offset)
    if dtype.hasobject:
        raise UserError(f"{where} holds Python objects ({dtype}), which are stored as a pickle and never loaded; "
                        f"save an array of numbers")
    if not (np.issubdtype(dtype, np.number) or dtype.kind == "b") or dtype.kind == "c" or dtype.subdtype is not None:
        raise UserError(f"{where} holds {dtype} values; it needs numbers")
    if any(s < 0 for s in header.shape):
        raise UserError(f"{where} has a damaged .npy header: its shape {header.shape} has a negative size; save the "
                        f"array again with np.save")
    needed = offset + header.nbytes
    if size != needed:
        said = f"its header says {header.shape} of {dtype} ({needed} bytes with the header), the file has {size}"
        if size < needed:
            raise UserError(f"{where} is truncated: {said}; restore the file or save the array again")
        raise UserError(f"{where} is damaged: {said}, more than its header accounts for; save the array again "
                        f"with np.save")
    return header


def npy_header(path: Path) -> NpyHeader:
    """The checked header of the ``.npy`` file at ``path`` (``read_npy_header``)."""
    try:
        with open(path, "rb") as fh:
            return read_npy_header(fh, str(path), os.fstat(fh.fileno()).st_size)
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err}") from None


def npz_headers(path: Path) -> dict[str, NpyHeader]:
    """The checked headers of the arrays of the ``.npz`` archive at ``path`` that a dataset uses (``ARRAY_NAMES``),
    by name; the archive itself refused in one line when it is not a zip of ``.npy`` files."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = {Path(info.filename).stem: info for info in zf.infolist()
                       if info.filename.endswith(".npy") and Path(info.filename).stem in ARRAY_NAMES}
            if not members and not any(info.filename.endswith(".npy") for info in zf.infolist()):
                names = ", ".join(sorted(zf.namelist())[:5]) or "nothing"
                raise UserError(f"{path} is a zip archive without .npy arrays (it holds {names}), not an .npz of "
                                f"arrays; save it with np.savez(path, train_x=..., test_x=...)")
            found = {}
            for name, info in sorted(members.items()):
                with zf.open(info) as fh:
                    header = read_npy_header(fh, f"{path}: {name}", info.file_size)
                found[name] = NpyHeader(header.shape, header.fortran, header.dtype, header.offset, info.filename)
            return found
    except zipfile.BadZipFile as err:
        with open(path, "rb") as fh:
            kind = what_file(fh.read(8))
        if kind == "a single .npy array":
            raise UserError(f"{path} is a single .npy array, not an .npz archive; rename it to .npy") from None
        if kind.startswith("a zip"):
            raise UserError(f"{path} is a damaged or truncated zip archive ({err}); restore it, or save the arrays "
                            f"again with np.savez") from None
        raise UserError(f"{path} is not an .npz archive{f' but {kind}' if kind else f' ({err})'}; save the arrays "
                        f"with np.savez") from None
    except (OSError, EOFError, NotImplementedError) as err:
        raise UserError(f"cannot read {path}: {err}") from None
