"""Data read on demand: a ``RowSource`` stands where a tensor ``(N, *event_shape)`` would, for data larger than
memory (or than a budget of it), and gives rows only when indexed.

It answers what the toolkit asks of a data tensor: ``shape``, ``len``, ``dtype``, ``device``, ``nbytes``,
``x[i]``, ``x[a:b]``, ``x[index_tensor]`` (each a new float tensor of those rows), ``x.split(n)`` (chunks in
order), ``x.to(device)`` (a source whose rows arrive there) and ``x.subset(rows)`` (a source of some rows),
so that the trainer, the evaluators and the coders read a streamed set chunk by chunk, in bounded memory. An
operation over the whole set (``x.min()``, ``x.mean(0)``) is not there: what needs one makes one pass over
chunks (``passes``).

Kinds: ``MappedArray`` (an ``.npy`` file: runs of rows from a read-only memory map, random rows by positioned
reads), ``ImageFiles`` (image files decoded one by one, in ``DataLoader`` workers while training),
``Transformed`` (a source seen through a function of its rows: the standardisation of ``--standardize``) and
``Subset``; ``pyro_vae.inference.data.given.DatasetRows`` reads a user's map-style ``Dataset``.
"""
from __future__ import annotations

import mmap
import os
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from pyro_vae.inference.errors import UserError

RELEASE_BYTES = 64 * 2 ** 20  # a memory map's pages are handed back to the page cache after this much reading


class RowSource:
    """Rows ``(N, *event_shape)`` read when asked for; subclasses define ``_rows(idx)`` (a sorted or unsorted
    int64 numpy index, returning float32 numpy rows in that order) and ``read_item(i)`` (one row, for workers)."""

    reads_in_workers = False  # a row is costly to read (an image to decode): training reads in DataLoader workers
    eight_bit = False  # every value is k / 255 by construction (decoded images)
    checked = False  # every row is checked against the likelihood as it is read (a user's dataset)
    worker_init_fn = None  # a user's DataLoader's, run in each worker

    def __init__(self, shape: Sequence[int], device: torch.device = torch.device("cpu"), name: str = ""):
        self.shape = torch.Size(shape)
        self.device = torch.device(device)
        self.name = name

    dtype = torch.float32

    # -- what a tensor of data is asked ---------------------------------------------------------------
    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        """The number of dimensions, the row one included."""
        return len(self.shape)

    def numel(self) -> int:
        """The number of values of the whole set."""
        return int(np.prod(self.shape))

    def dim(self) -> int:
        """As ``ndim`` (``Tensor.dim``)."""
        return self.ndim

    @property
    def nbytes(self) -> int:
        """Bytes the whole set would take as float32 in memory."""
        return 4 * self.numel()

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, (int, np.integer)):
            i = int(key) + (len(self) if key < 0 else 0)
            if not 0 <= i < len(self):
                raise IndexError(f"row {key} is out of range for {len(self)} rows")
            return self.rows(np.array([i]))[0]
        if isinstance(key, slice):
            return self.rows(np.arange(len(self))[key])
        if torch.is_tensor(key) and key.dtype == torch.bool or isinstance(key, np.ndarray) and key.dtype == bool:
            key = np.flatnonzero(np.asarray(key.cpu() if torch.is_tensor(key) else key))
        idx = np.asarray(key.cpu() if torch.is_tensor(key) else key, dtype=np.int64)
        flat = idx.reshape(-1)
        out = self.rows(np.where(flat < 0, flat + len(self), flat))
        return out.reshape(idx.shape + tuple(self.shape[1:]))

    def rows(self, idx: np.ndarray) -> torch.Tensor:
        """The rows ``idx`` (in that order) as a float32 tensor on ``device``."""
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} rows")
        out = torch.from_numpy(np.ascontiguousarray(self._rows(idx), dtype=np.float32))
        return out.reshape((len(idx),) + tuple(self.shape[1:])).to(self.device)

    def split(self, size: int) -> "Chunks":
        """The rows in chunks of ``size``, in order (``Tensor.split``): a sequence read one chunk at a time."""
        return Chunks(self, size)

    def to(self, device) -> "RowSource":
        """This source with its rows arriving on ``device`` (nothing is read)."""
        twin = self._copy()
        twin.device = torch.device(device)
        return twin

    def cpu(self) -> "RowSource":
        """This source with its rows on the host."""
        return self.to("cpu")

    def subset(self, rows) -> "RowSource":
        """A source of the rows ``rows`` (in that order) of this one."""
        return Subset(self, np.asarray(rows.cpu() if torch.is_tensor(rows) else rows, dtype=np.int64))

    _handles: tuple = ()  # attributes holding open files: left out when pickled (a DataLoader worker), reopened

    def __getstate__(self):
        state = dict(self.__dict__)
        state.update(dict.fromkeys(self._handles))
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self._handles:
            self._open()

    def _open(self) -> None:
        """Open what ``_handles`` names (sources that read files)."""

    def _copy(self) -> "RowSource":
        twin = object.__new__(type(self))
        twin.__dict__.update(self.__dict__)
        return twin

    # -- what subclasses give -------------------------------------------------------------------------
    def _rows(self, idx: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def read_item(self, i: int) -> torch.Tensor:
        """Row ``i`` as a float32 host tensor (what a ``DataLoader`` worker reads)."""
        return torch.from_numpy(np.ascontiguousarray(self._rows(np.array([i]))[0], dtype=np.float32))

    def describe(self) -> str:
        """Where the rows come from, for messages."""
        return self.name or type(self).__name__

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()}, shape={tuple(self.shape)})"


class Chunks:
    """The chunks of ``size`` rows of a source, in order: ``len``, iteration and indexing, each chunk read when
    reached (what ``Tensor.split`` gives, without holding them)."""

    def __init__(self, source: RowSource, size: int):
        if size < 1:
            raise ValueError(f"chunk size must be positive, got {size}")
        self.source, self.size = source, size

    def __len__(self) -> int:
        return -(-len(self.source) // self.size)

    def __getitem__(self, i: int) -> torch.Tensor:
        if not -len(self) <= i < len(self):
            raise IndexError(f"chunk {i} of {len(self)}")
        start = (i % len(self)) * self.size
        return self.source[start:start + self.size]

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (self[i] for i in range(len(self)))


def is_source(x) -> bool:
    """Whether ``x`` is read on demand (a ``RowSource``) rather than a tensor in memory."""
    return isinstance(x, RowSource)


class Subset(RowSource):
    """Some rows of another source, in a given order (a train/test split of one file, a rank's shard)."""

    def __init__(self, base: RowSource, rows: np.ndarray):
        super().__init__((len(rows),) + tuple(base.shape[1:]), base.device, base.name)
        self.base, self.index = base, rows
        self.reads_in_workers, self.eight_bit = base.reads_in_workers, base.eight_bit
        self.worker_init_fn, self.checked = base.worker_init_fn, base.checked

    def _rows(self, idx):
        return self.base._rows(self.index[idx])

    def read_item(self, i):
        return self.base.read_item(int(self.index[i]))

    def source_row(self, i: int) -> int:
        """The row of the underlying source that row ``i`` is."""
        return int(self.index[i])


class Transformed(RowSource):
    """``fn(rows)`` of another source, row by row (``fn`` maps a float32 array to one of the same shape)."""

    def __init__(self, base: RowSource, fn: Callable[[np.ndarray], np.ndarray]):
        super().__init__(base.shape, base.device, base.name)
        self.base, self.fn = base, fn
        self.reads_in_workers, self.worker_init_fn = base.reads_in_workers, base.worker_init_fn

    def _rows(self, idx):
        return self.fn(np.asarray(self.base._rows(idx), dtype=np.float32))

    def read_item(self, i):
        return torch.from_numpy(np.ascontiguousarray(self.fn(self.base.read_item(i).numpy()[None])[0]))


class _OpenFile:
    """A file descriptor open for reading, closed when the last holder lets go of it."""

    def __init__(self, path: Path):
        self.fd = os.open(path, os.O_RDONLY)

    def __del__(self):
        os.close(self.fd)


class MappedArray(RowSource):
    """The rows of an ``.npy`` file (``np.lib.format``'s header; C order) as float32 (``eight_bit``: a uint8 file
    of decoded images, read as k / 255, exactly as ``images.to_unit``), in bounded resident memory whatever the
    file's size. The file is memory-mapped read-only: a run of consecutive rows (a chunk of a pass, a test-set
    slice) is copied from the map, whose pages are handed back to the page cache (``madvise(MADV_DONTNEED)``)
    every ``RELEASE_BYTES``; rows in random order (a minibatch) are read with one positioned read each
    (``os.preadv`` into the batch), which maps nothing: through a map each would fault in its neighbouring
    64 KiB as well, and the pages mapped would grow with the file, not with the batch."""

    _handles = ("_map", "values", "_file")

    def __init__(self, path: Path, name: str = "", eight_bit: bool = False):
        from pyro_vae.inference.data.headers import npy_header

        path = Path(path)
        header = npy_header(path)  # numbers, non-negative sizes, exactly the bytes the header says
        shape, fortran, dtype, offset = header.shape, header.fortran, header.dtype, header.offset
        if fortran and len(shape) > 1:
            raise UserError(f"{path} is stored in Fortran order, which cannot be read a row at a time; save it "
                            f"with np.save(path, np.ascontiguousarray(x)), or --stream never")
        if len(shape) == 3:
            shape = (shape[0], 1) + tuple(shape[1:])
        if len(shape) not in (2, 4):
            raise UserError(f"{path} has shape {tuple(shape)}; it needs (N, D) for MLPs or (N, C, H, W) for images")
        if shape[0] == 0:
            raise UserError(f"{path} is empty; it needs at least one row")
        if 0 in shape[1:]:
            raise UserError(f"{path} has shape {tuple(shape)}: its rows hold no values; it needs at least one column")
        super().__init__(shape, name=name or str(path))
        self.path, self.file_dtype, self.offset = path, dtype, offset
        self.row_bytes = int(np.prod(shape[1:])) * dtype.itemsize
        self.eight_bit = eight_bit and dtype == np.uint8  # decoded images: k / 255 when read
        self._map = None
        self._open()

    def _open(self) -> None:
        if getattr(self, "_map", None) is None:
            try:
                with open(self.path, "rb") as fh:
                    self._map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError) as err:  # (ValueError: the file was emptied since its header was read)
                raise UserError(f"cannot read {self.path}: {err}; restore the file") from None
        self.values = np.frombuffer(self._map, dtype=self.file_dtype, count=int(np.prod(self.shape)),
                                    offset=self.offset).reshape((self.shape[0],) + tuple(self.shape[1:]))
        self._file = _OpenFile(self.path)  # shared by this source's twins (``to``, ``cpu``): closed with the last
        self._read = 0

    def _rows(self, idx):
        idx = np.asarray(idx, dtype=np.int64)
        if len(idx) > 1 and idx[-1] - idx[0] == len(idx) - 1 and (np.diff(idx) == 1).all():  # consecutive rows
            out = np.array(self.values[idx[0]:idx[-1] + 1])
            self._read += out.nbytes
            if self._read >= RELEASE_BYTES:
                self.release()
        else:
            out = np.empty((len(idx),) + tuple(self.values.shape[1:]), dtype=self.file_dtype)
            buffer, size = memoryview(out).cast("B"), self.row_bytes
            for j, row in enumerate(idx.tolist()):
                if os.preadv(self._file.fd, [buffer[j * size:(j + 1) * size]], self.offset + row * size) != size:
                    raise UserError(f"{self.path} was cut short while being read (row {row}); restore the file")
        return out.astype(np.float32) / np.float32(255) if self.eight_bit else out

    def release(self) -> None:
        """Hand the mapped pages read so far back to the page cache (they leave this process's resident memory)."""
        self._read = 0
        if self._map is not None and hasattr(self._map, "madvise"):
            self._map.madvise(mmap.MADV_DONTNEED)


class ImageFiles(RowSource):
    """Image files decoded when read (``inference/data/images.decode``): grey levels k / 255, ``channels``
    channels, resized to ``size`` (H, W)."""

    reads_in_workers = True
    eight_bit = True  # every value is k / 255 in [0, 1] (checks over the whole set are not needed)

    def __init__(self, paths: Sequence[Path], channels: int, size: Sequence[int], name: str = ""):
        super().__init__((len(paths), channels, *size), name=name)
        self.paths, self.channels, self.size = list(paths), channels, tuple(size)

    def _rows(self, idx):
        from pyro_vae.inference.data.images import decode

        return np.stack([decode(self.paths[i], self.channels, self.size) for i in idx]).astype(np.float32) / 255.0

    def describe(self) -> str:
        return f"{len(self.paths)} image files under {Path(os.path.commonpath(self.paths)) if self.paths else '-'}"


def passes(x, size: int = 4096) -> Iterator[torch.Tensor]:
    """``x`` (a tensor or a source) in chunks of ``size`` rows, in order: what a check over the whole set reads."""
    yield from x.split(size)


class NpyWriter:
    """An ``.npy`` file of ``shape`` written a chunk of rows at a time with plain writes (through a writable
    memory map every page written would stay resident): ``write(rows)`` in order, then ``close()``, which checks
    that every row came."""

    def __init__(self, path: Path, dtype, shape: Sequence[int]):
        self.path, self.dtype, self.shape, self.rows = Path(path), np.dtype(dtype), tuple(shape), 0
        self.fh = open(path, "wb")
        np.lib.format.write_array_header_1_0(self.fh, {"descr": np.lib.format.dtype_to_descr(self.dtype),
                                                       "fortran_order": False, "shape": self.shape})

    def write(self, rows) -> None:
        """The next rows (anything numpy takes, of the file's row shape), converted to the file's dtype."""
        rows = np.ascontiguousarray(rows, dtype=self.dtype).reshape((-1,) + self.shape[1:])
        if self.rows + len(rows) > self.shape[0]:
            raise ValueError(f"{self.path}: more than the {self.shape[0]} rows declared")
        self.fh.write(rows.tobytes())
        self.rows += len(rows)

    def close(self) -> None:
        """Write the file through to disk and close it (its pages are then clean: no write-back competes with the
        training that reads it); a ``ValueError`` when fewer rows than declared were written."""
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        if self.rows != self.shape[0]:
            raise ValueError(f"{self.path}: {self.rows} of the {self.shape[0]} rows declared were written")


def materialize(source: RowSource, fn: Callable[[torch.Tensor], torch.Tensor], where: Path,
                dtype=np.uint8, size: int = 4096) -> MappedArray:
    """``fn`` of every chunk of ``source``, in order, written once to the ``.npy`` file ``where`` and mapped: a
    fixed draw over a set larger than memory (the binarized test set; chunk by chunk, a ``torch.bernoulli``
    with one generator draws exactly what one call on the whole tensor draws)."""
    out = NpyWriter(where, dtype, source.shape)
    for chunk in source.cpu().split(size):
        out.write(fn(chunk).numpy())
    out.close()
    return MappedArray(where, name=source.name)
