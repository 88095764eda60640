"""``MinibatchStream``: the shuffled minibatches ``(indices, x)`` of one epoch, from a tensor in memory or from a
source read on demand (``inference/data/sources.py``), as ``pyro.plate("data", N, subsample=indices)`` wants them.

The epoch's order is one permutation from the global torch RNG, whatever holds the data, so a run on a
streamed set draws exactly what the same run on the set in memory draws (the same order, the same dynamic
binarization, the same steps): the differential test of streaming. Rows that are costly to read (image files,
a user's ``Dataset``) are read by ``workers`` ``DataLoader`` processes, which draw from a private generator,
never the global one, so that starting them changes no draw and a run resumed mid-epoch goes on exactly.
"""
from __future__ import annotations

from typing import Iterator, Optional

import torch

from pyro_vae.inference.data.sources import RowSource, is_source
from pyro_vae.inference.errors import UserError


class UnreadableData(UserError):
    """A data point could not be read while training (a file damaged since the run started, a user's
    ``Dataset`` that raised): the message names it."""


def same_device(a, b) -> bool:
    """``cuda`` and ``cuda:0`` are one device when 0 is the current one (``torch.device`` compares them unequal)."""
    a, b = torch.device(a), torch.device(b)
    if a.type != b.type:
        return False
    if a.type == "cuda" and (a.index is None) != (b.index is None):
        return (a.index if a.index is not None else b.index) == torch.cuda.current_device()
    return a == b


class _Unread:
    """What a worker returns in place of a batch it could not read: the reason, raised in the main process."""

    def __init__(self, reason: str):
        self.reason = reason


class _Items(torch.utils.data.Dataset):
    """One row per item of a source, for ``DataLoader`` workers; a failure comes back as ``_Unread``."""

    def __init__(self, source: RowSource):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i):
        try:
            return self.source.read_item(int(i))
        except UserError as err:
            return _Unread(str(err))
        except Exception as err:  # noqa: BLE001 -- a user's Dataset may raise anything: named, in one line
            reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
            return _Unread(f"reading item {int(i)} of {self.source.describe()} raised {type(err).__name__}"
                           f"{': ' + reason if reason else ''}")


class _Batches:
    """The epoch's minibatches of indices, as a ``DataLoader``'s ``batch_sampler``: each made into a list when
    reached (not the whole epoch's at once)."""

    def __init__(self, chunks: list):
        self.chunks = chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __iter__(self):
        return (c.tolist() for c in self.chunks)


def _collate(items):
    failed = next((item for item in items if isinstance(item, _Unread)), None)
    return failed if failed is not None else torch.stack(items)


class MinibatchStream:
    """Shuffled minibatches ``(indices, x)``; a fresh permutation each epoch from the global torch RNG.
    With ``dynamic=True`` each batch is a fresh Bernoulli draw of its grey levels, made on ``device``;
    ``shuffle=False`` keeps the data's own order (a ``DataLoader`` with ``shuffle=False``).

    ``x`` is a tensor or a ``RowSource``. Images already on ``device`` are indexed there (no host-device traffic
    inside the epoch). Images left on the host (``device`` elsewhere: a dataset too large for the GPU) are
    streamed: each batch is gathered into one of two pinned host buffers and copied asynchronously, so the copy
    of the next batch overlaps the step on this one. A source is read a batch at a time, by ``workers``
    ``DataLoader`` processes when its rows are costly to read (``reads_in_workers``), else in this process."""

    def __init__(self, x, batch_size: int, dynamic: bool = False, device: Optional[torch.device] = None,
                 workers: int = 0, shuffle: bool = True):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.x, self.batch_size, self.dynamic, self.workers, self.shuffle = x, batch_size, dynamic, workers, shuffle
        self.device = torch.device(device) if device is not None else x.device
        self.source = is_source(x)
        self.streaming = self.source or not same_device(self.device, x.device)
        self._buffers: list = []

    @property
    def num_data(self) -> int:
        """N, the number of data points streamed."""
        return self.x.shape[0]

    def __len__(self) -> int:
        return -(-self.num_data // self.batch_size)

    def permutation(self) -> torch.Tensor:
        """The data order of one epoch, from the global torch RNG (on the images' device; for a source, on the
        training device, as for the same set held there); the data's own order without ``shuffle``."""
        device = self.device if self.source else self.x.device  # a source: drawn where the data in memory would be
        return torch.randperm(self.num_data, device=device) if self.shuffle else torch.arange(self.num_data,
                                                                                              device=device)

    def _to_device(self, idx: torch.Tensor, step: int) -> torch.Tensor:
        if self.device.type != "cuda":
            return self.x[idx].to(self.device)
        if not self._buffers:  # two pinned buffers, each with the event that says its copy is done
            self._buffers = [(torch.empty((self.batch_size,) + self.x.shape[1:], dtype=self.x.dtype).pin_memory(),
                              torch.cuda.Event()) for _ in range(2)]
        buffer, copied = self._buffers[step % 2]
        copied.synchronize()  # the copy from this buffer two batches ago has finished
        host = buffer[: len(idx)]
        torch.index_select(self.x, 0, idx, out=host)
        batch = host.to(self.device, non_blocking=True)
        copied.record()
        return batch

    def _read(self, chunks: list) -> Iterator[torch.Tensor]:
        """The rows of each chunk of indices, in order, on the host."""
        if self.workers > 0 and self.x.reads_in_workers and chunks:
            import multiprocessing as mp

            fork = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None  # (lambdas inside)
            loader = torch.utils.data.DataLoader(
                _Items(self.x.cpu()), batch_sampler=_Batches(chunks), num_workers=self.workers,
                collate_fn=_collate, pin_memory=self.device.type == "cuda", worker_init_fn=self.x.worker_init_fn,
                multiprocessing_context=fork,
                generator=torch.Generator().manual_seed(0))  # a private generator: no global draw
            for batch in loader:
                if isinstance(batch, _Unread):
                    raise UnreadableData(batch.reason)
                yield batch
            return
        source = self.x.cpu()
        for c in chunks:
            try:
                yield source[c]
            except UserError as err:
                raise UnreadableData(str(err)) from None
            except OSError as err:  # a disk that fails to read (EIO), a file changed underneath
                raise UnreadableData(f"cannot read {source.describe()}: {err}") from None

    def batches(self, perm: torch.Tensor, start: int = 0, shard=None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The minibatches of the epoch with order ``perm``, from batch number ``start`` on
        (a resumed epoch); each batch is binarized only when it is drawn. With ``shard`` (a data-parallel job's
        context) it yields each global batch's indices with this rank's rows only (``process_group.shard``): each
        rank reads, and binarizes, its own part of every epoch (``DistributedSampler`` semantics)."""
        from pyro_vae.inference.process_group import shard as rank_part

        chunks = list(perm.split(self.batch_size)[start:])
        mine = [c if shard is None or not shard.active else rank_part(c, shard)[0] for c in chunks]
        if self.source:
            for idx, batch in zip(chunks, self._read([c.cpu() for c in mine])):
                batch = batch.to(self.device, non_blocking=True)
                yield idx.to(self.device), torch.bernoulli(batch) if self.dynamic else batch
            return
        for step, (idx, rows) in enumerate(zip(chunks, mine)):
            if self.streaming:
                batch, idx = self._to_device(rows, step), idx.to(self.device, non_blocking=True)
            else:
                batch = self.x[rows]
            yield idx, torch.bernoulli(batch) if self.dynamic else batch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.batches(self.permutation())
