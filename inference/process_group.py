"""The processes of a data-parallel job that ``torchrun`` launched: which one this is, and what they exchange.

Outside a job every function is a no-op for one process (rank 0 of 1). Training
(``pyro_vae.inference.training.parallel``), evaluation (``Run.evaluate``) and the run folder's writer (rank 0
alone writes) all ask ``current()``; a collective that fails because another process died raises
``WorkerLost``. NCCL on GPUs, gloo on CPU.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Optional

import torch
import torch.distributed as dist

from pyro_vae.inference.errors import UserError
from pyro_vae.inference.evaluate.elbo import ELBOReport

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


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system says, else all of them)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


PROCESSES_PER_CORE = 4  # a CPU job may share cores (gloo, a test of a larger job), up to this many per core


def check_processes(nproc: int, device: torch.device) -> None:
    """Refuse a job of more processes than this machine can run, before ``torchrun`` starts them (``--nproc 100000``
    started that many): on CUDA one per GPU (each takes GPU ``LOCAL_RANK``); on the CPU ``PROCESSES_PER_CORE``
    per core it may use, at least 8."""
    if device.type == "cuda":
        most, what = torch.cuda.device_count(), "the CUDA GPUs here (NCCL trains one process per GPU)"
    else:
        cores = usable_cores()
        most = max(8, PROCESSES_PER_CORE * cores)
        what = f"{PROCESSES_PER_CORE} per core this process may use ({cores}), or 8"
    if nproc > most:
        raise UserError(f"--nproc {nproc} is more than {what}; use --nproc {most} or fewer")


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
    """This rank's part ``idx[rank::W]`` of a global batch and its loss weight |B_r| / |B|
    (a rank left without points scores the batch's first point with weight 0)."""
    mine = idx[ctx.rank::ctx.world_size]
    if mine.numel() == 0:
        return idx[:1], 0.0
    return mine, mine.numel() / idx.numel()


def sharded_evaluate(evaluate, x: torch.Tensor, y: Optional[torch.Tensor], seed: int) -> ELBOReport:
    """``evaluate(x_r, y_r, seed + r)`` on each rank's rows ``r::W`` of the test set, summed over ranks."""
    ctx = current()
    rows = torch.arange(ctx.rank, x.shape[0], ctx.world_size, device=x.device)
    if rows.numel():
        part = x.subset(rows) if hasattr(x, "subset") else x[rows]  # a streamed set: read in chunks, not held
        report = evaluate(part, None if y is None else y[rows], seed + ctx.rank)
        sums = [report.distortion * rows.numel(), report.rate * rows.numel()]
    else:
        sums = [0.0, 0.0]
    total = all_reduce_sum(torch.tensor(sums, dtype=torch.float64, device=x.device)).tolist()
    d, r = total[0] / x.shape[0], total[1] / x.shape[0]
    return ELBOReport(-(d + r), d, r, x.shape[0], x[0].numel())
