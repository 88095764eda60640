"""Data-parallel SVI across processes: ``torchrun`` launches, ``DistributedDataParallel`` averages.

Every process holds the whole (model, guide) pair and the data; each global minibatch B of the epoch
(one permutation, broadcast from rank 0) is split into W shards B_r = B[r::W], one per rank. Rank r
scores its shard inside ``pyro.plate("data", N, subsample=B_r)`` (scale N / |B_r|) and multiplies its
loss by W |B_r| / |B|, so that DDP's average of the W gradients,

    (1/W) sum_r W |B_r|/|B| * (N/|B_r|) sum_{i in B_r} grad l_i = (N/|B|) sum_{i in B} grad l_i,

is exactly the single-process gradient of the same global batch (also for a short last batch). The
loss is Pyro's own ``ELBO.differentiable_loss`` through ``ELBOModule`` (``elbo(model, guide)``), or
the fast engine's captured graph of it (``inference/capture.py``); DDP wraps that module, so the
model's and guide's parameters are DDP parameters. NCCL on GPUs, gloo on CPU.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Optional

import pyro
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .capture import CapturedObjective
from .errors import UserError
from .evaluation import ELBOReport
from .fast_trainer import AdamState, first_capturing
from .trainer import NumericalFault

TIMEOUT_S = float(os.environ.get("VAE_DIST_TIMEOUT", 60))  # a collective waits this long for a lost worker


class WorkerLost(RuntimeError):
    """A collective failed: another process of the job died or stopped answering."""


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def current() -> Context:
    """This process's place in the job (rank 0 of 1 outside one)."""
    if not (dist.is_available() and dist.is_initialized()):
        return Context()
    return Context(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def main_process() -> bool:
    """Rank 0 of a ``torchrun`` job, or a process outside one (before, during and after the job)."""
    return not launched() or int(os.environ.get("RANK", 0)) == 0


def launched() -> bool:
    """True in a process that ``torchrun`` started as one of several."""
    return int(os.environ.get("WORLD_SIZE", 1)) > 1


def initialize(device: torch.device) -> Context:
    """Join the job ``torchrun`` set up in the environment (no-op outside one, idempotent):
    NCCL when training on CUDA, gloo otherwise; each process takes GPU ``LOCAL_RANK``."""
    if not launched():
        return Context()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend, timeout=timedelta(seconds=TIMEOUT_S))
    return current()


def finish() -> None:
    """Leave the job together: wait for every rank (rank 0 writes the run folder's last files), then
    take the process group down, so that no process exits while another still talks to it."""
    if dist.is_available() and dist.is_initialized():
        barrier()
        dist.destroy_process_group()


def launch(nproc: int, argv: list[str]) -> int:
    """``vae ARGV`` in ``nproc`` processes on this machine (``torchrun --standalone``); its exit status."""
    command = [sys.executable, "-c", "from inference.distributed import torchrun; torchrun()", "--standalone",
               f"--nproc-per-node={nproc}", "-m", "inference.cli", *argv]
    threads = max(1, (os.cpu_count() or 1) // nproc)  # each process its share of the cores
    return subprocess.call(command, env={"OMP_NUM_THREADS": str(threads), **os.environ})


def torchrun() -> None:
    """``torchrun`` (``torch.distributed.run``) on ``sys.argv``; a failed worker ends it with one line
    naming the first failure instead of the launcher's traceback."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main

    try:
        main(sys.argv[1:])
    except SignalException as stopped:  # Ctrl-C or a scheduler's SIGTERM: the workers got it too
        print(f"vae: the job was stopped by {stopped.sigval.name}", file=sys.stderr)
        sys.exit(130)
    except ChildFailedError as failed:
        rank, failure = failed.get_first_failure()
        how = f"signal {failure.signal_name()}" if failure.exitcode < 0 else f"exit status {failure.exitcode}"
        print(f"vae: worker rank {rank} (pid {failure.pid}) ended first, by {how}", file=sys.stderr)
        sys.exit(1)


def without_option(argv: list[str], name: str) -> list[str]:
    """``argv`` less ``name VALUE`` and ``name=VALUE``."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out


def local_device(device: torch.device) -> torch.device:
    """GPU ``LOCAL_RANK`` for a CUDA job; ``device`` otherwise."""
    ctx = current()
    return torch.device("cuda", ctx.local_rank) if device.type == "cuda" and ctx.active else device


def _lost(err: Exception) -> WorkerLost:
    """gloo: connection reset / timeout; NCCL: the watchdog. The first sentence of the backend's message."""
    reason = str(err).splitlines()[0].split("] ", 1)[-1].split(". ")[0]
    return WorkerLost(f"another process of the job stopped answering ({reason})")


def _collective(fn, *args):
    try:
        return fn(*args)
    except (RuntimeError, dist.DistBackendError) as err:
        raise _lost(err) from None


def broadcast(tensor: torch.Tensor) -> torch.Tensor:
    """Rank 0's ``tensor`` on every rank (in place; unchanged outside a job)."""
    if current().active:
        _collective(dist.broadcast, tensor, 0)
    return tensor


def barrier() -> None:
    if current().active:
        _collective(dist.barrier)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if current().active:
        _collective(dist.all_reduce, tensor)
    return tensor


def shard(idx: torch.Tensor, ctx: Context) -> tuple[torch.Tensor, float]:
    """This rank's part ``idx[rank::W]`` of a global batch and its loss weight W |B_r| / |B|
    (a rank left without points scores the batch's first point with weight 0)."""
    mine = idx[ctx.rank::ctx.world_size]
    if mine.numel() == 0:
        return idx[:1], 0.0
    return mine, ctx.world_size * mine.numel() / idx.numel()


def sharded_evaluate(evaluate, x: torch.Tensor, y: Optional[torch.Tensor], seed: int) -> ELBOReport:
    """``evaluate(x_r, y_r, seed + r)`` on each rank's rows ``r::W`` of the test set, summed over ranks."""
    ctx = current()
    rows = torch.arange(ctx.rank, x.shape[0], ctx.world_size, device=x.device)
    if rows.numel():
        report = evaluate(x[rows], None if y is None else y[rows], seed + ctx.rank)
        sums = [report.distortion * rows.numel(), report.rate * rows.numel()]
    else:
        sums = [0.0, 0.0]
    total = all_reduce_sum(torch.tensor(sums, dtype=torch.float64, device=x.device)).tolist()
    d, r = total[0] / x.shape[0], total[1] / x.shape[0]
    return ELBOReport(-(d + r), d, r, x.shape[0], x[0].numel())


def check_objective(objective) -> None:
    """Refuse an objective whose step is more than one differentiable loss (the adversarial autoencoder's)."""
    from .adversarial import AdversarialObjective

    if isinstance(objective, AdversarialObjective) or not hasattr(objective, "differentiable_loss"):
        raise UserError(f"objective {type(objective).__name__} has steps beyond one differentiable loss and does "
                        f"not train data-parallel; train it with --nproc 1")


class _CapturedLoss(nn.Module):
    """The fast engine's captured graph as a module over the model's and guide's parameters, for DDP:
    replaying the graph reaches the same ``nn.Parameter`` objects, so DDP's gradient hooks fire."""

    def __init__(self, model: nn.Module, guide: nn.Module, captured: CapturedObjective):
        super().__init__()
        self.model, self.guide, self.captured = model, guide, captured

    def forward(self, x, y=None, num_data: int = 0, subsample=None):
        return self.captured(x, num_data, subsample, y)


def build_data_parallel_trainer(model: nn.Module, guide: nn.Module, objective, lr: float = 1e-3,
                                clip_norm: Optional[float] = None, compile: str = "auto", planned_steps: int = 0,
                                examples: tuple = ()):
    """``build_trainer``'s choice of engine for a data-parallel job: the captured (or compiled) graph when
    the objective captures, Pyro's ``differentiable_loss`` otherwise; ``examples`` are global batches."""
    check_objective(objective)
    return first_capturing(
        compile, planned_steps, examples, type(objective).__name__,
        lambda backend: DataParallelSVITrainer(model, guide, objective, lr, clip_norm, backend),
        lambda: DataParallelSVITrainer(model, guide, objective, lr, clip_norm), "Pyro's differentiable loss")


class DataParallelSVITrainer(AdamState):
    """SVI steps on the rank's shard: DDP over the loss module (Pyro's ``elbo(model, guide)``, or the
    fast engine's captured graph with ``backend``), backward (DDP averages the gradients over the
    ranks), Pyro's per-parameter norm clipping, one ``torch.optim.Adam`` (per parameter the same update
    as ``pyro.optim.Adam``). Same ``step``/``check``/state interface as ``SVITrainer``; the returned loss
    is the global batch's, the number one process reports."""

    engine = "ddp"

    def __init__(self, model: nn.Module, guide: nn.Module, objective, lr: float = 1e-3,
                 clip_norm: Optional[float] = None, backend: Optional[str] = None):
        self.ctx = current()
        check_objective(objective)
        pyro.clear_param_store()
        self.model, self.guide, self.objective = model, guide, objective
        loss = objective(model, guide) if backend is None else \
            _CapturedLoss(model, guide, CapturedObjective(model, guide, objective, backend))
        device = next(guide.parameters()).device
        self.module = DistributedDataParallel(loss, device_ids=[device] if device.type == "cuda" else None,
                                              static_graph=True)
        self.params = [p for p in self.module.parameters() if p.requires_grad]
        self.optim = torch.optim.Adam(self.params, lr=lr, fused=True if backend else None)
        self.clip_norm, self.steps, self.backend, self.grad_norm = clip_norm, 0, backend, None

    def prepare(self, x: torch.Tensor, num_data: int, subsample: torch.Tensor,
                y: Optional[torch.Tensor] = None) -> None:
        """Capture the graph of this rank's shard of a global batch shaped like ``x`` now."""
        mine, _ = shard(torch.arange(subsample.numel(), device=subsample.device), self.ctx)
        self.module.module.captured.prepare(x[mine], num_data, subsample[mine], None if y is None else y[mine])

    def step(self, x: torch.Tensor, num_data: int, subsample: torch.Tensor,
             y: Optional[torch.Tensor] = None) -> float:
        """``x``, ``subsample``, ``y``: the global batch, as one process would see it."""
        mine, weight = shard(torch.arange(subsample.numel(), device=subsample.device), self.ctx)
        try:
            loss = self.module(x[mine], y=None if y is None else y[mine], num_data=num_data,
                               subsample=subsample[mine])
            (weight * loss).backward()
            total = all_reduce_sum((weight * loss).detach().double().reshape(1))
        except (RuntimeError, dist.DistBackendError) as err:
            if "invalid values" in str(err):  # distribution validation: NaN reached a parameter
                raise NumericalFault(self.steps + 1, "distribution parameter") from None
            if isinstance(err, WorkerLost):
                raise
            raise _lost(err) from None
        grads = [p.grad for p in self.params if p.grad is not None]
        self.grad_norm = torch.stack(torch._foreach_norm(grads)).norm()
        value, norm = torch.stack([total[0] / self.ctx.world_size, self.grad_norm.double()]).tolist()  # one read
        if not math.isfinite(value) or not math.isfinite(norm):
            self.optim.zero_grad(set_to_none=True)
            raise NumericalFault(self.steps + 1, "loss" if not math.isfinite(value) else "gradient")
        if self.clip_norm:
            for p in self.params:  # pyro.optim's clip_args: each parameter's gradient on its own
                if p.grad is not None:
                    torch.nn.utils.clip_grad_norm_(p, self.clip_norm)
        self.optim.step()
        self.optim.zero_grad(set_to_none=True)
        self.steps += 1
        if hasattr(self.objective, "step"):  # the KL schedules of BetaELBO count steps
            self.objective.step += 1
        return value

    def check(self) -> None:
        """Faults are raised by ``step`` itself on this engine."""
