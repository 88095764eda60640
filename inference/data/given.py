"""Data given in Python: a user's ``torch.utils.data.Dataset`` or ``DataLoader`` as the data of a run.

::

    run = setup(RunConfig(), data=MyImages("photos/"))             # a map-style Dataset: x or (x, y) per item
    run = setup(RunConfig(), data=DataLoader(ds, batch_size=64, shuffle=True, num_workers=4))

Each item is ``x`` (a tensor or array: a vector (D,) or an image (C, H, W)), ``(x, y)`` or ``{"x": x, "y": y}``.
The trainer reads the items of each minibatch of its own permutation (``pyro.plate("data", N,
subsample=indices)`` needs the indices, and a run resumed mid-epoch reads on exactly where it stopped), in
``workers`` processes. A ``DataLoader`` says how: its ``batch_size``, ``shuffle`` (a ``RandomSampler``: a new
order each epoch, drawn from the run's seed; a ``SequentialSampler``: the data's own order), ``num_workers`` and
``worker_init_fn`` are the run's. What the trainer cannot do as the loader would is refused in one line: another
sampler (a weighted one would change the ELBO's data-set scaling, ``N / |B|`` per point), a ``collate_fn`` (do its
work in ``__getitem__``), ``drop_last`` that leaves points out of every epoch. An ``IterableDataset`` (its size
from ``len()`` or a ``num_data`` attribute) is read through once into a float32 copy in a temporary folder, which
the trainer indexes like any set (shuffled each epoch unless ``--no-shuffle``). Without a test set,
``test_fraction`` of the points are held out with a fixed seed. Labels (a conditional VAE) are the dataset's
``targets`` when it has them, else read in one pass.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, RandomSampler, SequentialSampler

from pyro_vae.inference.data.datasets import ImageData
from pyro_vae.inference.data.sources import MappedArray, NpyWriter, RowSource
from pyro_vae.inference.errors import UserError


class DatasetRows(RowSource):
    """The ``x`` of each item of a user's map-style ``torch.utils.data.Dataset`` (an item is ``x``, or ``(x, y)``
    / ``[x, y]``, or a dict with ``"x"`` and optionally ``"y"``). Each row is checked against the first one's
    shape and for a floating or integer dtype; a wrong one is refused naming the item."""

    reads_in_workers = True

    def __init__(self, dataset, name: str = "dataset"):
        self.dataset = dataset
        try:
            n = len(dataset)
        except TypeError:
            raise UserError(f"the {name} has no len(); a map-style Dataset needs __len__ and __getitem__ (an "
                            f"IterableDataset needs num_data)") from None
        if n == 0:
            raise UserError(f"the {name} is empty; it needs at least one data point")
        self.name = name
        first = item_x(self.item(0), 0, name)
        super().__init__((n,) + tuple(first.shape), name=name)

    def item(self, i: int):
        """Item ``i`` of the dataset as it gives it; whatever its ``__getitem__`` raises, named in one line."""
        try:
            return self.dataset[int(i)]
        except Exception as err:  # noqa: BLE001 -- a user's Dataset may raise anything: named, in one line
            reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise UserError(f"reading item {int(i)} of the {self.name} raised {type(err).__name__}"
                            f"{': ' + reason if reason else ''}") from None

    def read_item(self, i):
        x = item_x(self.item(i), int(i), self.name)
        if tuple(x.shape) != tuple(self.shape[1:]):
            raise UserError(f"item {int(i)} of the {self.name} has shape {tuple(x.shape)}, item 0 has "
                            f"{tuple(self.shape[1:])}; every x must have one shape")
        return x

    def _rows(self, idx):
        return torch.stack([self.read_item(i) for i in idx]).numpy()

    def label(self, i: int) -> int:
        """Item ``i``'s label (0 when it has none)."""
        return item_y(self.dataset[int(i)])


def item_x(item, i: int, name: str) -> torch.Tensor:
    """The data point of one item of a user's dataset, as a float32 tensor; refused in one line when it is not
    numbers."""
    x = item.get("x") if isinstance(item, dict) else item[0] if isinstance(item, (tuple, list)) else item
    if isinstance(item, dict) and x is None:
        raise UserError(f"item {i} of the {name} is a dict without an 'x' entry; give each item as x, (x, y) or "
                        f"{{'x': x, 'y': y}}")
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not torch.is_tensor(x):
        raise UserError(f"item {i} of the {name} holds a {type(x).__name__}, not a tensor; return x as a tensor "
                        f"(or a numpy array), alone or as (x, y)")
    if not (x.dtype.is_floating_point or x.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
                                                     torch.bool)):
        raise UserError(f"item {i} of the {name} is a {x.dtype} tensor; it needs real or integer values")
    if x.dim() == 0:
        raise UserError(f"item {i} of the {name} is a scalar; each x must be a vector (D,) or an image (C, H, W)")
    return x.float()


def item_y(item, i: int = 0, name: str = "dataset") -> int:
    """The label of one item, ``y`` of ``(x, y)`` or ``{'x':, 'y':}``; an item without one is refused in one line
    (a conditional VAE on labels that are not there would train on zeros)."""
    y = item.get("y") if isinstance(item, dict) else item[1] if isinstance(item, (tuple, list)) and len(item) > 1 \
        else None
    try:
        return int(y)
    except (TypeError, ValueError):
        raise UserError(f"item {i} of the {name} has no integer label y (it holds {type(y).__name__}); a conditional "
                        f"VAE needs (x, y) or {{'x': x, 'y': y}} items, or a targets attribute") from None


def loader_settings(loader: DataLoader, what: str) -> dict:
    """The run's data settings a ``DataLoader`` states (``batch_size``, ``shuffle``, ``workers``), each checked."""
    if loader.batch_size is None:
        raise UserError(f"the {what} DataLoader has a batch_sampler of its own; the trainer draws the minibatches: "
                        f"give DataLoader(dataset, batch_size=B, shuffle=...) instead")
    sampler = type(loader.sampler)
    if sampler not in (RandomSampler, SequentialSampler):
        raise UserError(f"the {what} DataLoader samples with {sampler.__name__}; the ELBO's data-set scaling "
                        f"(N / |B|) assumes every point once per epoch: use shuffle=True or shuffle=False (the "
                        f"trainer shards the data over processes itself)")
    if sampler is RandomSampler and (loader.sampler.replacement or loader.sampler._num_samples is not None):
        raise UserError(f"the {what} DataLoader samples with replacement or a num_samples of its own; use "
                        f"shuffle=True (each point once per epoch)")
    default = getattr(torch.utils.data, "default_collate", None)
    if loader.collate_fn not in (default, torch.utils.data._utils.collate.default_collate):
        raise UserError(f"the {what} DataLoader has a collate_fn; the trainer stacks the items itself: do that "
                        f"work in the Dataset's __getitem__ (each item x, (x, y) or {{'x': x, 'y': y}})")
    n = len(loader.dataset)
    if loader.drop_last and n % loader.batch_size:
        raise UserError(f"the {what} DataLoader has drop_last=True, which leaves {n % loader.batch_size} of its "
                        f"{n} points out of every epoch (the ELBO is over all N); use drop_last=False")
    return {"batch_size": loader.batch_size, "shuffle": sampler is RandomSampler, "workers": loader.num_workers,
            "worker_init_fn": loader.worker_init_fn}


def _copied(data, what: str) -> tuple[RowSource, dict]:
    """An ``IterableDataset`` (or a ``DataLoader`` over one, its workers and batching used) read through once into
    a float32 ``.npy`` in this process's scratch folder (removed at exit), a chunk at a time: a map-style copy of
    its ``N`` points (``len()`` or a ``num_data`` attribute), which the trainer can index, shard and resume."""
    from pyro_vae.inference.data.datasets import scratch_file

    loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=None)
    dataset, name = loader.dataset, f"{what} IterableDataset"
    n = getattr(dataset, "num_data", None)
    if n is None:
        try:
            n = len(dataset)
        except TypeError:
            raise UserError(f"the {name} does not say how many points it gives (the ELBO's data-set scaling needs "
                            f"N): define __len__ or a num_data attribute") from None
    out, labels, start, labelled = None, np.zeros(n, dtype=np.int64), 0, False
    where = scratch_file(what)
    for batch in loader:
        rows = item_x(batch, start, name)
        ys = batch.get("y") if isinstance(batch, dict) else batch[1] if isinstance(batch, (tuple, list)) and \
            len(batch) > 1 else None
        rows = rows[None] if loader.batch_size is None else rows
        if out is None:
            out = NpyWriter(where, np.float32, (n,) + tuple(rows.shape[1:]))
        if tuple(rows.shape[1:]) != out.shape[1:]:
            raise UserError(f"point {start} of the {name} has shape {tuple(rows.shape[1:])}, point 0 has "
                            f"{out.shape[1:]}; every x must have one shape")
        if start + len(rows) > n:
            raise UserError(f"the {name} gave more than the {n} points it declares (with DataLoader workers, each "
                            f"worker must give its own part: torch.utils.data.get_worker_info)")
        out.write(rows.numpy())
        if ys is not None:
            labels[start:start + len(rows)] = torch.as_tensor(ys).reshape(-1).numpy()
            labelled = True
        start += len(rows)
    if start != n or out is None:
        raise UserError(f"the {name} gave {start} points but declares {n}; make len() or num_data say how many it "
                        f"gives (at least one)")
    out.close()
    source = MappedArray(where, name=name)
    source.labels = torch.from_numpy(labels) if labelled else None
    return source, ({"batch_size": loader.batch_size} if loader.batch_size is not None else {})


def _source(data, what: str) -> tuple[RowSource, dict]:
    if isinstance(data, IterableDataset) or isinstance(data, DataLoader) and isinstance(data.dataset,
                                                                                         IterableDataset):
        return _copied(data, what)
    if isinstance(data, DataLoader):
        settings = loader_settings(data, what)
        source = DatasetRows(data.dataset, name=f"{what} DataLoader's dataset")
        source.worker_init_fn = settings.pop("worker_init_fn")
        return source, settings
    if isinstance(data, Dataset) or hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        return DatasetRows(data, name=f"{what} dataset"), {}
    raise UserError(f"the {what} data is a {type(data).__name__}; give a torch Dataset, a DataLoader or ImageData")


def _labels(source: RowSource, rows: Optional[np.ndarray], wanted: bool) -> tuple[torch.Tensor, bool]:
    """The labels of ``source``'s dataset (``targets``, else one pass over its items) when ``wanted``."""
    n = len(source) if rows is None else len(rows)
    if not wanted:
        return torch.zeros(n, dtype=torch.long), False
    if hasattr(source, "labels"):  # an IterableDataset's copy: its labels were read with it
        if source.labels is None:
            raise UserError(f"the {source.name} gave no labels y; a conditional VAE needs (x, y) or "
                            f"{{'x': x, 'y': y}} items")
        return (source.labels if rows is None else source.labels[torch.from_numpy(rows)]), True
    dataset = source.dataset
    targets = getattr(dataset, "targets", None)
    if targets is not None and len(targets) == len(dataset):
        y = torch.as_tensor(np.asarray(targets), dtype=torch.long)
    else:
        y = torch.tensor([item_y(source.item(i), i, source.name) for i in range(len(dataset))], dtype=torch.long)
    return (y if rows is None else y[torch.from_numpy(rows)]), True


def from_dataset(train, test=None, *, test_fraction: float = 0.1, labels: bool = False,
                 name: str = "python") -> tuple[ImageData, dict]:
    """``ImageData`` reading a user's ``Dataset`` or ``DataLoader`` (train, and test when given, else a held-out
    ``test_fraction``), and the data settings the loader states (for the run's config).

    Parameters
    ----------
    train, test : Dataset or DataLoader
        The training data, and the test data (None: ``test_fraction`` of ``train``, held out with a fixed seed).
    test_fraction : float
        The share held out when ``test`` is None.
    labels : bool
        Read the labels (a conditional VAE): the dataset's ``targets``, else the ``y`` of every item.
    name : str
        The data's name in the run folder and messages.

    Returns
    -------
    (ImageData, dict)
        The data, read on demand, and ``{"batch_size", "shuffle", "workers"}`` where a ``DataLoader`` states them.
    """
    from pyro_vae.inference.data.arrays import split_indices

    source, settings = _source(train, "training")
    if test is None:
        train_rows, test_rows = split_indices(len(source), test_fraction)
        train_y, labelled = _labels(source, train_rows, labels)
        test_y, _ = _labels(source, test_rows, labels)
        return ImageData(name, source.subset(train_rows), train_y, source.subset(test_rows), test_y,
                         labelled=labelled, source_rows=(train_rows, test_rows)), settings
    test_source, _ = _source(test, "test")
    if tuple(test_source.shape[1:]) != tuple(source.shape[1:]):
        raise UserError(f"the test data's points have shape {tuple(test_source.shape[1:])}, the training data's "
                        f"{tuple(source.shape[1:])}; both need one shape")
    train_y, labelled = _labels(source, None, labels)
    test_y, _ = _labels(test_source, None, labels)
    return ImageData(name, source, train_y, test_source, test_y, labelled=labelled), settings
