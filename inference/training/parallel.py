"""Data-parallel SVI across processes: ``torchrun`` launches, every process steps the same parameters.

Every process holds the whole (model, guide) pair and the data; each global minibatch B of the epoch
(one permutation, broadcast from rank 0) is split into W shards B_r = B[r::W], one per rank. Rank r
scores its shard inside ``pyro.plate("data", N, subsample=B_r)`` (scale ``N / |B_r|``) and weights its loss
by ``|B_r| / |B|``; the gradients are then summed over the ranks (one all-reduce of one flat buffer, the
loss in the same buffer),

::

    sum_r |B_r|/|B| * (N/|B_r|) sum_{i in B_r} grad l_i = (N/|B|) sum_{i in B} grad l_i,

which is exactly the single-process gradient of the same global batch (also for a short last batch).
``DataParallelEngine`` wraps whichever engine runs the loss module (Pyro's interpreter or the captured
graph), so the parameters reduced are exactly those the program reads (``ProgramLoss.params``), a
``pyro.param`` site included: ``DistributedDataParallel`` would see only the ``nn.Parameter`` s of
modules. Rank 0's parameter values are broadcast once before the first step. NCCL on GPUs, gloo on CPU.
"""
from __future__ import annotations

import torch
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from pyro_vae.inference.errors import UserError
from pyro_vae.inference.process_group import (  # noqa: F401  (the job's context, read through this module too)
    Context, WorkerLost, all_reduce_sum, barrier, broadcast, current, finish, initialize, launched, local_device,
    main_process, shard, sharded_evaluate)

def check_objective(objective) -> None:
    """Refuse an objective whose step is more than one differentiable loss (the adversarial autoencoder's)."""
    if hasattr(objective, "extend_trainer") or not hasattr(objective, "differentiable_loss"):
        raise UserError(f"objective {type(objective).__name__} has steps beyond one differentiable loss and does "
                        f"not train data-parallel; train it with --nproc 1")


class DataParallelEngine:
    """``engine`` on this rank's shard of each global batch; ``reduce`` sums gradients and loss over ranks. The
    parameters are read before the first step (on a private stream), so that every rank starts from rank 0's
    values: an autoguide is initialized from other draws than one process's ``SVI`` would take."""

    deferred_checks = False

    def __init__(self, engine):
        self.inner, self.ctx = engine, current()
        self.name = f"{engine.name}"
        model, _ = engine.loss.calls
        if model.names is not None and not {"num_data", "subsample"} <= model.names:
            raise UserError("data-parallel training scores each process's shard inside the data plate, so the model "
                            "must take num_data and subsample (pyro.plate('data', num_data, subsample=subsample))")

    def _shard(self, x, num_data, subsample, y):
        """This rank's rows of the global batch, the plate's keywords (the global batch's, by default) and weight.
        ``x`` is the global batch, or already this rank's rows of it (``MinibatchStream.batches(shard=...)``: fewer
        rows than ``subsample`` has; where both counts agree the two readings give the same rows)."""
        if subsample is None:
            subsample = torch.arange(x.shape[0], device=x.device)
        num_data = x.shape[0] if num_data is None else num_data
        mine, weight = shard(torch.arange(subsample.numel(), device=subsample.device), self.ctx)
        rows = x if x.shape[0] != subsample.numel() else x[mine]  # a streamed set gives this rank's rows only
        return (rows,), {"num_data": num_data, "subsample": subsample[mine],
                            "y": None if y is None else y[mine]}, weight

    @staticmethod
    def _only_data(extra, other) -> None:
        if extra or other:
            what = ", ".join([f"#{i + 5} (positional)" for i in range(len(extra))] + sorted(other))
            raise UserError(f"data-parallel training passes each process its shard of x, num_data, subsample and y "
                            f"only, not the step argument(s) {what}; train this program in one process")

    def prepare(self, x, num_data=None, subsample=None, y=None, *extra, **other) -> None:
        self._only_data(extra, other)
        args, kwargs, _ = self._shard(x, num_data, subsample, y)
        self._read(args, kwargs)
        self.inner.prepare(*args, **kwargs)
        self._sync(self.inner.loss)

    def _read(self, args, kwargs) -> None:
        """The parameters, before the first step: every rank starts from rank 0's values of all of them."""
        if not self.inner.loss.params:
            self.inner.loss.read_params(*args, **kwargs)

    def _sync(self, loss) -> None:
        """Every rank starts from rank 0's values, once per loss module (also when an engine is given up later)."""
        if getattr(loss, "synced_over_ranks", False) or not self.ctx.active:
            return
        for p in loss.params:
            with torch.no_grad():
                broadcast(p.data)
        loss.synced_over_ranks = True

    def loss_and_grads(self, x, num_data=None, subsample=None, y=None, *extra, **other):
        self._only_data(extra, other)
        args, kwargs, weight = self._shard(x, num_data, subsample, y)
        if not getattr(self.inner.loss, "synced_over_ranks", False):
            self._read(args, kwargs)
            self.inner.prepare(*args, **kwargs)
            self._sync(self.inner.loss)
        loss, params = self.inner.loss_and_grads(*args, **kwargs)
        for p in params:  # the shard's weight on the gradient (one scaling, after backward)
            if p.grad is not None and weight != 1.0:
                p.grad.mul_(weight)
        return loss * weight, params

    def reduce(self, params, loss):
        """Gradients and loss summed over the ranks: one all-reduce of one flat buffer, which also counts the
        ranks that had a gradient for each parameter (none anywhere: it stays None, as in one process)."""
        if not self.ctx.active:
            return loss
        had = [p.grad is not None for p in params]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        tail = torch.tensor(had + [0.0], dtype=grads[0].dtype, device=grads[0].device)
        tail[-1] = loss.detach().to(tail.dtype)
        flat = all_reduce_sum(_flatten_dense_tensors(grads + [tail]))
        reduced = _unflatten_dense_tensors(flat, grads + [tail])
        for p, g, r, anywhere in zip(params, grads, reduced[:-1], reduced[-1][:-1].tolist()):
            p.grad = g.copy_(r) if anywhere else None
        return reduced[-1][-1]
