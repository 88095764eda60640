"""AnnData ``.h5ad`` files as a dataset of counts (``--dataset anndata``), read backed on disk.

An ``.h5ad`` file is HDF5 in AnnData's layout: counts (cells x genes) in ``X`` or ``layers/NAME`` (``--layer``),
dense or sparse (CSR, CSC); the cells' annotations in ``obs`` (``--label-column``: the label of a conditional VAE);
the genes' names in ``var``. The file is opened with h5py and read one element at a time with anndata's own reader
(``anndata.io.read_elem``), the matrix never whole: ``anndata.read_h5ad(backed="r")`` backs ``X`` only and loads
every layer, ``obsm`` and ``obsp`` into memory.

``AnnDataRows`` reads rows by sorted index and puts them back in the order asked: a dense matrix by h5py's selection
(one slice when the rows lie close together), a CSR one by the runs of ``data``/``indices`` its ``indptr`` points to;
a CSC one (a row of which needs every column) is converted once to CSR in memory, its nonzeros only. The matrix is
streamed when it would take more than ``--memory-budget`` as float32 (``--stream auto``) or with ``--stream
always``, else copied into float32 tensors a chunk of rows at a time. Either way one pass checks every value a count
(finite, >= 0, integral, < 2**24), naming the first that is not by row, obs name and value. Train and test are split
by ``arrays.split_indices`` (fixed seed), as an array file is.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch

from pyro_vae.inference.data.arrays import EXACT_INTEGERS, split_indices
from pyro_vae.inference.data.datasets import ImageData
from pyro_vae.inference.data.sources import RowSource
from pyro_vae.inference.data.streamed import should_stream
from pyro_vae.inference.errors import UserError

CHUNK_VALUES = 2 ** 22  # values per chunk of rows in the pass that checks (and copies) the matrix
GAP = 2 ** 16  # CSR: rows whose values lie fewer than this many apart are read in one slice
NEEDS_ANNDATA = "reading .h5ad files needs the anndata package: pip install 'pyro-vae-toolkit[anndata]'"


def _read_elem():
    """anndata's reader of one element of an open ``.h5ad`` file (``anndata.io`` from 0.11, ``experimental`` before)."""
    try:
        import anndata  # noqa: F401
    except ImportError:
        raise UserError(NEEDS_ANNDATA) from None
    try:
        from anndata.io import read_elem
    except ImportError:
        from anndata.experimental import read_elem
    return read_elem


class AnnDataRows(RowSource):
    """The rows of one matrix of an ``.h5ad`` file (``key``: ``X`` or ``layers/NAME``) as float32, read when asked.
    Pickled without its open file, which the copy opens again (``DataLoader`` workers)."""

    _csr: Any = None  # (data, indices, indptr) of a CSR matrix: h5py datasets, or arrays (a CSC one converted)
    _handles = ("_file", "_node", "_csr")  # pickled without them: the copy opens the file again

    def __init__(self, path, key: str = "X", name: str = ""):
        self.path, self.key = Path(path), key
        self._open()
        super().__init__(self._shape, name=name or f"{self.path} {self.what}")

    @property
    def what(self) -> str:
        """The matrix as messages name it: ``.X`` or ``.layers['counts']``."""
        return ".X" if self.key == "X" else f".layers[{self.key.split('/', 1)[1]!r}]"

    def _open(self) -> None:
        import h5py

        try:
            self._file = h5py.File(self.path, "r")
        except OSError as err:
            raise UserError(f"cannot read {self.path} as an .h5ad file (HDF5): {err}") from None
        try:
            self._find(h5py)
        except UserError:
            self._file.close()
            raise

    def _find(self, h5py) -> None:
        """The matrix ``key`` names, its shape and kind (dense, CSR, CSC), each missing or wrong part refused."""
        found = self._file.get("layers")
        self.layers = sorted(found) if isinstance(found, h5py.Group) else []
        if "obs" not in self._file:
            raise UserError(f"{self.path} is an HDF5 file without obs, not an AnnData .h5ad file; write it with "
                            f"anndata (adata.write_h5ad)")
        if self.key not in self._file:
            have = ", ".join(self.layers) or "it has none"
            if self.key == "X":
                raise UserError(f"{self.path.name} holds no counts in .X; pick one of its layers with --layer ({have})")
            raise UserError(f"{self.path.name} has no layer {self.key.split('/', 1)[1]!r}; its layers: {have} "
                            f"(leave out --layer for .X)")
        node = self._file[self.key]
        kind = node.attrs.get("encoding-type", "array" if isinstance(node, h5py.Dataset) else "a group")
        self.kind, self._csr = kind.decode() if isinstance(kind, bytes) else str(kind), None
        if isinstance(node, h5py.Dataset) and node.ndim == 2:
            self._shape, dtype = node.shape, node.dtype
        elif self.kind in ("csr_matrix", "csc_matrix") and {"data", "indices", "indptr"} <= set(node):
            self._shape, dtype = tuple(int(s) for s in node.attrs["shape"]), node["data"].dtype
            if self.kind == "csr_matrix":
                self._csr = (node["data"], node["indices"], node["indptr"][:].astype(np.int64))
        else:
            raise UserError(f"{self.path.name}: {self.what} is {self.kind} of shape {getattr(node, 'shape', '?')}, not "
                            f"a matrix of counts (cells x genes, dense or sparse)")
        if dtype.kind not in "biuf":
            raise UserError(f"{self.path.name}: {self.what} holds {dtype} values; it needs counts")
        self._node, self.wide = node, np.float32 if np.can_cast(dtype, np.float32) else np.float64

    def close(self) -> None:
        """Close the file (a source read into memory no longer needs it)."""
        self._file.close()

    def _rows(self, idx):
        return self.read(idx).astype(np.float32, copy=False)

    def read(self, idx) -> np.ndarray:
        """The rows ``idx`` in the order given, as the file holds them (float32, or float64 where float32 would
        round them)."""
        rows, back = np.unique(np.asarray(idx, dtype=np.int64), return_inverse=True)
        if not len(rows):
            return np.zeros((0, self.shape[1]), self.wide)
        if self.kind == "csc_matrix" and self._csr is None:  # converted once: a row of CSC needs every column
            from scipy import sparse

            node = self._node
            m = sparse.csc_matrix((node["data"][:], node["indices"][:], node["indptr"][:]), shape=self._shape).tocsr()
            self._csr = (m.data, m.indices, m.indptr.astype(np.int64))
        out = self._csr_rows(rows) if self._csr is not None else self._dense_rows(rows)
        return out[back.reshape(-1)]

    def _dense_rows(self, rows: np.ndarray) -> np.ndarray:
        lo, hi = int(rows[0]), int(rows[-1]) + 1
        if hi - lo <= 2 * len(rows):  # close together: one slice, then the rows asked for
            return np.asarray(self._node[lo:hi], dtype=self.wide)[rows - lo]
        return np.asarray(self._node[rows], dtype=self.wide)

    def _csr_rows(self, rows: np.ndarray) -> np.ndarray:
        data, indices, indptr = self._csr
        starts, ends = indptr[rows], indptr[rows + 1]
        out = np.zeros((len(rows), self.shape[1]), self.wide)
        cuts = np.flatnonzero(starts[1:] - ends[:-1] > GAP) + 1
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(rows)]):  # a run of rows: one read of data and indices
            lo, hi = int(starts[a]), int(ends[b - 1])
            if hi == lo:
                continue
            values, columns = np.asarray(data[lo:hi]), np.asarray(indices[lo:hi])
            lengths = ends[a:b] - starts[a:b]
            at = np.arange(lengths.sum()) + np.repeat(starts[a:b] - lo - np.cumsum(lengths) + lengths, lengths)
            np.add.at(out, (np.repeat(np.arange(a, b), lengths), columns[at]), values[at])  # duplicates add up
        return out


def _show(value: float) -> str:
    return str(int(value)) if np.isfinite(value) and value == int(value) else f"{value:.6g}"


def _checked(source: AnnDataRows, obs) -> Iterator[tuple[int, np.ndarray]]:
    """The matrix in chunks of rows, in order, each checked to hold counts only (else one line: the first bad value)."""
    step = max(1, CHUNK_VALUES // max(1, source.shape[1]))
    for start in range(0, len(source), step):
        block = source.read(np.arange(start, min(start + step, len(source))))
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(block) & (block >= 0) & (block == np.floor(block)) & (block < EXACT_INTEGERS)
        if not ok.all():
            r, c = np.argwhere(~ok)[0]
            row, value = start + int(r), float(block[r, c])
            need = "non-negative integer counts" + (" below 2**24" if value >= EXACT_INTEGERS else "")
            hint = ("pass --layer counts if the raw counts are in a layer" if "counts" in source.layers else
                    f"pass --layer NAME if the raw counts are in a layer ({', '.join(source.layers)})")
            hint = hint if source.key == "X" and source.layers else "give the raw counts, not normalized or log values"
            raise UserError(f"{source.path.name}: {source.what} row {row} (obs {str(obs().index[row])!r}) holds "
                            f"{_show(value)}; the count likelihoods need {need}: {hint}")
        yield start, block


def _labels(obs, column: str, where: str) -> tuple[np.ndarray, tuple]:
    """An obs column as labels 0..K-1 (categories or strings, sorted by name: the class names) or its integers."""
    import pandas as pd

    if column not in obs.columns:
        raise UserError(f"{where} has no obs column {column!r}; its obs columns: "
                        f"{', '.join(map(str, obs.columns)) or 'none'}")
    values = obs[column]
    missing = np.flatnonzero(values.isna().to_numpy())
    if len(missing):
        raise UserError(f"{where}: obs column {column!r} has no value in row {missing[0]} (obs "
                        f"{str(obs.index[missing[0]])!r}); every cell needs a label: fill them in or drop those cells")
    if isinstance(values.dtype, pd.CategoricalDtype):
        names, codes = np.array([str(c) for c in values.cat.categories], dtype=object), values.cat.codes.to_numpy()
    else:
        array = values.to_numpy()
        if array.dtype.kind in "iuf":
            bad = np.flatnonzero((array < 0) | (array != np.round(array)))
            if len(bad):
                raise UserError(f"{where}: obs column {column!r} holds {_show(float(array[bad[0]]))} in row {bad[0]}; "
                                f"numbers as labels must be 0, 1, 2, ... (or name the classes with strings)")
            return array.astype(np.int64), ()
        names, codes = np.unique(array.astype(str), return_inverse=True)
    order = np.argsort(names.astype(str), kind="stable")
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    return rank[np.asarray(codes, dtype=np.int64).reshape(-1)], tuple(str(n) for n in names[order])


def load_h5ad(path, layer: Optional[str] = None, label_column: Optional[str] = None, test_fraction: float = 0.1,
              stream: str = "auto", budget: float = 0.5) -> ImageData:
    """The counts of the ``.h5ad`` file at ``path`` (``.X``, or the layer ``layer``), split into train and test;
    labelled by the obs column ``label_column`` when given; streamed from disk as ``stream`` and ``budget`` say."""
    read_elem = _read_elem()
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist or is not a file; --dataset anndata needs an .h5ad file")
    source = AnnDataRows(path, "X" if layer is None else f"layers/{layer}")
    n, d = source.shape
    if n == 0 or d == 0:
        raise UserError(f"{path.name}: {source.what} is empty ({n} cells x {d} genes); it needs at least one of each")
    obs = functools.cache(lambda: read_elem(source._file["obs"]))  # read when first needed: labels, a bad value
    try:
        y, classes = _labels(obs(), label_column, path.name) if label_column else (np.zeros(n, np.int64), ())
        names = tuple(str(v) for v in read_elem(source._file["var"]).index) if "var" in source._file else ()
        names = () if names == tuple(str(j) for j in range(d)) else names
        train, test = split_indices(n, test_fraction)
        streamed = should_stream(4 * n * d, stream, budget)
        side, place = np.zeros(n, dtype=bool), np.empty(n, dtype=np.int64)
        side[test], place[train], place[test] = True, np.arange(len(train)), np.arange(len(test))
        xs = [np.empty((0 if streamed else len(rows), d), dtype=np.float32) for rows in (train, test)]
        for start, block in _checked(source, obs):  # streamed: checked only; else also copied into memory
            if not streamed:
                s, p = side[start:start + len(block)], place[start:start + len(block)]
                xs[0][p[~s]], xs[1][p[s]] = block[~s], block[s]
    except BaseException:
        source.close()
        raise
    train_x: Any
    test_x: Any
    if streamed:
        train_x, test_x = source.subset(train), source.subset(test)
    else:
        source.close()
        train_x, test_x = torch.from_numpy(xs[0]), torch.from_numpy(xs[1])
    return ImageData(path.stem, train_x, torch.from_numpy(y[train]), test_x, torch.from_numpy(y[test]),
                     labelled=bool(label_column), classes=classes, source_rows=(train, test),
                     feature_names=names)
