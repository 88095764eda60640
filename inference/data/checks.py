"""What the data's values must be for the likelihood that models them, checked once the data is read (the
pairings known from the config alone are refused before: ``RunConfig._check_likelihood_matches_data``), and
the per-feature standardisation of ``--standardize``."""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

import torch

from pyro_vae.models import LIKELIHOODS
from pyro_vae.models.likelihoods import BINARY, COUNT, DATA_KINDS, EIGHT_BIT, REAL, UNIT_INTERVAL

from pyro_vae.inference.data.datasets import ImageData
from pyro_vae.inference.data.sources import RowSource, Subset, Transformed, is_source, passes
from pyro_vae.inference.errors import UserError

EXACT_INTEGERS = 2 ** 24  # float32 holds every integer below this
REMEDY = {
    BINARY: "for counts use --likelihood poisson or negative_binomial, for real values gaussian or laplace",
    UNIT_INTERVAL: "scale the data to [0, 1], or use a Gaussian or Laplace likelihood",
    EIGHT_BIT: "8-bit levels are k / 255 (divide 0..255 arrays by 255), or use a likelihood for real values",
    COUNT: "counts are integers from 0 to 2**24; for real values use a Gaussian or Laplace likelihood",
    REAL: "remove or impute those rows",
}


def _fits(x: torch.Tensor, kind: str, binarized: bool) -> torch.Tensor:
    """Per value: whether the likelihood's kind of data (after binarization, if any) can hold it."""
    finite = torch.isfinite(x)
    if kind == BINARY and binarized or kind == UNIT_INTERVAL:
        return finite & (x >= 0) & (x <= 1)
    if kind == BINARY:
        return (x == 0) | (x == 1)
    if kind == EIGHT_BIT:
        levels = x * 255
        return finite & (x >= 0) & (x <= 1) & ((levels - levels.round()).abs() < 1e-3)
    if kind == COUNT:
        return finite & (x >= 0) & (x == x.round()) & (x < EXACT_INTEGERS)
    return finite


def check_fits(data: ImageData, likelihood: str, binarize: str = "none") -> ImageData:
    """Refuse data the likelihood is not a density for, naming the first row that does not fit. Returns the data;
    a user's dataset comes back wrapped in ``Checked`` (each item checked when read, not in a pass of its own)."""
    kind = LIKELIHOODS.get(likelihood).data
    for split in ("train", "test"):
        whole = getattr(data, f"{split}_x")
        if whole.numel() == 0:
            raise UserError(f"the {data.name} {split} set is empty; it needs at least one data point")
        if is_source(whole) and whole.reads_in_workers and not whole.eight_bit:
            data = data.replace(**{f"{split}_x": Checked(whole, lambda x: _fits(x, kind, binarize != "none"),
                                                         _refusal(likelihood, kind, binarize))})
            continue
        if getattr(whole, "eight_bit", False) and (kind in (UNIT_INTERVAL, EIGHT_BIT, REAL) or
                                                   kind == BINARY and binarize != "none"):
            continue  # decoded images are k / 255 by construction: no pass over the files needed
        for start, x in _chunks(whole):  # the whole tensor at once in memory; a streamed set a chunk at a time
            _check_rows(data, split, start, x, kind, likelihood, binarize)
    return data


def _refusal(likelihood: str, kind: str, binarize: str) -> Callable[[str, float], str]:
    what = DATA_KINDS[BINARY if binarize == "none" else UNIT_INTERVAL] if kind == BINARY else DATA_KINDS[kind]
    return lambda where, value: f"likelihood {likelihood!r} models {what}, but {where} holds {value:g}; {REMEDY[kind]}"


class Checked(RowSource):
    """A user's data points checked as they are read (``fits(rows)`` per value): the first that does not fit
    raises one line naming it, in whichever pass reads it first (training, evaluation)."""

    checked = True

    def __init__(self, base: RowSource, fits: Callable[[torch.Tensor], torch.Tensor],
                 refusal: Callable[[str, float], str]):
        super().__init__(base.shape, base.device, base.name)
        self.base, self.fits, self.refusal = base, fits, refusal
        self.reads_in_workers, self.worker_init_fn = base.reads_in_workers, base.worker_init_fn

    def _check(self, rows: torch.Tensor, idx) -> torch.Tensor:
        ok = self.fits(rows)
        bad = ~ok.reshape(len(rows), -1).all(1)
        if bad.any():
            row = int(bad.nonzero()[0])
            value = rows[row].flatten()[~ok[row].flatten()][0].item()
            item = int(idx[row])
            item = self.base.source_row(item) if isinstance(self.base, Subset) else item  # the dataset's own index
            raise UserError(self.refusal(f"item {item} of the {self.base.describe()}", value))
        return rows

    def _rows(self, idx):
        return self._check(torch.from_numpy(np.ascontiguousarray(self.base._rows(idx), dtype=np.float32)),
                           idx).numpy()

    def read_item(self, i):
        return self._check(self.base.read_item(i)[None], [i])[0]

    def describe(self) -> str:
        return self.base.describe()


def _chunks(x, rows: int = 8192):
    if not is_source(x):
        yield 0, x
        return
    for start, chunk in zip(range(0, len(x), rows), passes(x, rows)):
        yield start, chunk


def _check_rows(data: ImageData, split: str, start: int, x: torch.Tensor, kind: str, likelihood: str,
                binarize: str) -> None:
    bad = ~_fits(x, kind, binarize != "none").reshape(len(x), -1).all(1)
    if bad.any():
        row = int(bad.nonzero()[0])
        where = f"row {start + row} of the {split} set ({data.name})" if data.source_rows is None else \
            f"data row {int(data.source_rows[split == 'test'][start + row])} of {data.name} (0-based)"
        value = x[row].flatten()[~_fits(x[row], kind, binarize != "none").flatten()][0].item()
        what = f"{DATA_KINDS[BINARY if binarize == 'none' else UNIT_INTERVAL]}" if kind == BINARY else \
            DATA_KINDS[kind]
        raise UserError(f"likelihood {likelihood!r} models {what}, but {where} holds {value:g}; "
                        f"{REMEDY[kind]}")


def standardize(data: ImageData) -> ImageData:
    """Each feature shifted and scaled by its training-set mean and sd (sd 0: scale 1); ``data.original``
    undoes it."""
    if is_source(data.train_x):  # one pass of float64 sums, then each row standardized when it is read
        total = squares = 0.0
        for chunk in passes(data.train_x):
            total, squares = total + chunk.double().sum(0), squares + chunk.double().pow(2).sum(0)
        n = len(data.train_x)
        shift = (total / n).float()
        scale = (squares / n - (total / n) ** 2).clamp_min(0).sqrt().float()
    else:
        shift = data.train_x.mean(0)
        scale = data.train_x.std(0, unbiased=False)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    if is_source(data.train_x):
        a, b = shift.numpy(), scale.numpy()
        return data.replace(train_x=Transformed(data.train_x, lambda v: (v - a) / b),
                            test_x=Transformed(data.test_x, lambda v: (v - a) / b), shift=shift, scale=scale)
    return data.replace(train_x=(data.train_x - shift) / scale, test_x=(data.test_x - shift) / scale,
                        shift=shift, scale=scale)


def check_labels(data: ImageData, num_classes: Optional[int]) -> None:
    """A conditional VAE needs labels 0..K-1 with K = ``num_classes``."""
    if not data.labelled:
        raise UserError(f"--conditional needs labels, and {data.name} has none: use class subfolders (image folders) "
                        f"or train_y and test_y (.npz), --label-column (an .h5ad file), or (x, y) items (a Dataset)")
    for split in ("train", "test"):
        y = getattr(data, f"{split}_y")
        if y.numel() and not (0 <= int(y.min()) and int(y.max()) < num_classes):
            raise UserError(f"the {split} labels lie in [{int(y.min())}, {int(y.max())}], outside 0..{num_classes - 1}; "
                            f"the conditional VAE needs labels 0..K-1: pass --num-classes {int(y.max()) + 1}")
