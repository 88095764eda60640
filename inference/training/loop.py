"""The epoch loop of ``vae train``: minibatches, SVI steps, progress, checkpoints, per-epoch evaluation.

``train(run, out)`` drives one ``SVITrainer`` (``inference/training/trainer.py``) over the epochs; the run
folder's files (metrics, weights, checkpoint) are kept current when ``out`` is given, and a checkpoint
restores everything the next step depends on (``inference/training/checkpoint.py``).
"""
from __future__ import annotations

import json
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional, Sequence

import pyro
import torch
from tqdm import tqdm

from pyro_vae.inference.data.datasets import MinibatchStream
from pyro_vae.inference.errors import UserError
from pyro_vae.inference.objectives import build_objective
from pyro_vae.inference.runs import lock
from pyro_vae.inference.runs.files import atomic_write_text
from pyro_vae.inference.runs.run import WEIGHTS, Run, save_weights
from pyro_vae.inference.training import parallel as distributed
from pyro_vae.inference.training.checkpoint import CHECKPOINT, TrainingInterrupted, TrainingState, save_checkpoint, set_rng_state
from pyro_vae.inference.training.monitors import Monitor, epoch_line, step_values
from pyro_vae.inference.training.optim import OptimizerStateError
from pyro_vae.inference.training.step import NumericalFault
from pyro_vae.inference.training.trainer import make_trainer

METRICS = "metrics.jsonl"
LOG_EVERY = 50  # steps between progress-bar reads (each read waits for the device)


def _floats(values: list) -> list[float]:
    """Per-step values as floats; the device tensors among them are read in one transfer."""
    tensors = [v for v in values if torch.is_tensor(v)]
    read = iter(torch.stack(tensors).tolist() if tensors else ())
    return [next(read) if torch.is_tensor(v) else float(v) for v in values]


def _example_batches(stream: MinibatchStream, labels: Optional[torch.Tensor]) -> list:
    """One batch of each size an epoch has (full, and the remainder), for capturing the graphs up front."""
    sizes = sorted({min(stream.batch_size, stream.num_data), stream.num_data % stream.batch_size} - {0})
    idx = [torch.arange(n, device=stream.device) for n in sizes]
    return [((stream.x[: len(i)].to(stream.device),),
             {"num_data": stream.num_data, "subsample": i, "y": None if labels is None else labels[i]}) for i in idx]


@contextmanager
def stop_on_signals():
    """SIGINT and SIGTERM ask training to stop after the current step (a flag, not an exception)."""
    requested = []
    handler = lambda signum, frame: requested.append(signum)  # noqa: E731
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: bool(requested)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _train(run: Run, out: Optional[Path] = None, quiet: bool = True, resume: Optional[TrainingState] = None,
          checkpoint_every: int = 0, stop_requested: Callable[[], bool] = lambda: False,
          monitors: Sequence[Monitor] = ()) -> list[dict]:
    cfg, ctx = run.config.train, distributed.current()
    if not ctx.is_main:  # rank 0 alone writes the run folder and reports
        out, quiet, monitors = None, True, ()
    objective = build_objective(run.config.objective)
    stream = MinibatchStream(run.data.train_x, cfg.batch_size, dynamic=run.config.data.binarize == "dynamic",
                             device=run.device)
    labels = run.labels("train")
    if ctx.active:
        distributed.check_objective(objective)
    trainer, notice = make_trainer(run.model, run.guide, objective, cfg.lr, cfg.clip_norm, cfg.compile,
                                   planned_steps=cfg.epochs * len(stream), examples=_example_batches(stream, labels),
                                   param_state=None,  # the run's store is current (train() below)
                                   parallel=distributed.DataParallelEngine if ctx.active else None,
                                   cuda_graph=cfg.cuda_graph)
    if notice and not quiet:
        print(notice, file=sys.stderr)
    for monitor in monitors if notice else ():
        monitor.note(notice)
    state = resume or TrainingState()
    if resume is not None:
        try:
            trainer.load_optimizer_state(resume.optimizer)
        except (OptimizerStateError, KeyError, ValueError) as err:
            raise UserError(f"cannot resume {run.path}: {err}") from None
        trainer.steps = resume.steps  # the objective's schedule follows the step count
        set_rng_state(resume.rng)
    if ctx.rank:  # its own draws (the data order comes from rank 0)
        pyro.set_rng_seed(cfg.seed + 7919 * ctx.rank + trainer.steps)

    last_good = ["none was written yet"]

    def fail(fault: NumericalFault, epoch: int):
        if isinstance(fault, distributed.WorkerLost):
            raise UserError(f"training stopped: {fault} (epoch {epoch}); last complete checkpoint: {last_good[0]}; "
                            f"resume with: vae train --resume {run.path} --nproc {ctx.world_size}") from None
        raise UserError(f"training stopped: {fault} (epoch {epoch}); the parameters were not updated "
                        f"with it; last good checkpoint: {last_good[0]}; try a lower --lr or --clip-norm") from None

    def check_faults(epoch: int) -> None:
        try:
            trainer.check()
        except (NumericalFault, distributed.WorkerLost) as fault:
            fail(fault, epoch)

    def checkpoint(epoch: int) -> None:
        check_faults(epoch)
        state.steps, state.optimizer = trainer.steps, trainer.optimizer_state()
        state.objective_step = trainer.steps
        state.epoch_values = _floats(state.epoch_values)
        save_checkpoint(out / CHECKPOINT, run.model, run.guide, state, run.store_params())
        last_good[0] = f"{out / CHECKPOINT} (after step {trainer.steps})"

    log_every = min(LOG_EVERY, max(1, len(stream) // 2))  # at least two reads an epoch
    for epoch in range(state.epoch + 1, cfg.epochs + 1):
        if state.perm is None:
            state.perm, state.step_in_epoch, state.epoch_values = distributed.broadcast(stream.permutation()), 0, []
        start = logged = time.perf_counter()
        batches = stream.batches(state.perm, state.step_in_epoch)
        with tqdm(batches, total=len(stream), initial=state.step_in_epoch, desc=f"epoch {epoch}/{cfg.epochs}",
                  disable=quiet, leave=False, file=sys.stderr) as bar:
            for idx, x in bar:
                try:
                    loss = trainer.step(x, num_data=stream.num_data, subsample=idx,
                                        y=None if labels is None else labels[idx])
                except (NumericalFault, distributed.WorkerLost) as fault:
                    fail(fault, epoch)
                except OptimizerStateError as err:  # a saved state loaded at the first step (lazily built programs)
                    raise UserError(f"cannot resume {run.path}: {err}") from None
                state.epoch_values.append(-loss / stream.num_data)  # a device tensor on a captured engine: not read
                state.step_in_epoch += 1
                if (monitors or not quiet) and state.step_in_epoch % log_every == 0:
                    check_faults(epoch)
                    now = time.perf_counter()
                    values = step_values(run, trainer, x, None if labels is None else labels[idx], loss,
                                         stream.num_data, cfg.lr, log_every * cfg.batch_size / (now - logged))
                    logged = now
                    bar.set_postfix(elbo=f"{values['elbo']:.2f}", D=f"{values['distortion']:.2f}",
                                    R=f"{values['rate']:.2f}", refresh=False)
                    for monitor in monitors:
                        monitor.log_step(trainer.steps, values)
                stop = stop_requested()
                if out is not None and (stop or (checkpoint_every and trainer.steps % checkpoint_every == 0)):
                    checkpoint(epoch)
                if stop:
                    raise TrainingInterrupted(f"stopped at epoch {epoch}, step {state.step_in_epoch}")
        check_faults(epoch)
        seconds = time.perf_counter() - start
        try:
            report = run.evaluate(seed=cfg.seed)
        except distributed.WorkerLost as lost:
            fail(lost, epoch)
        values = _floats(state.epoch_values)
        train_value = sum(values) / len(values)
        state.metrics.append({"epoch": epoch, "steps": trainer.steps, "train_objective": train_value,
                              "test_elbo": report.elbo, "test_distortion": report.distortion,
                              "test_rate": report.rate, "seconds": seconds})
        state.epoch, state.perm, state.step_in_epoch, state.epoch_values = epoch, None, 0, []
        if not quiet:
            print(epoch_line(state.metrics[-1]), file=sys.stderr)
        for monitor in monitors:
            monitor.end_epoch(run, state.metrics[-1])
        if out is not None:
            with lock.snapshot(out, write=True):  # a reader loads weights and metrics of one epoch
                atomic_write_text(out / METRICS, "".join(json.dumps(m, sort_keys=True) + "\n" for m in state.metrics))
                save_weights(run, out / WEIGHTS)
                checkpoint(epoch)
    return state.metrics


def train_epochs(run: Run, out: Optional[Path] = None, quiet: bool = True, resume: Optional[TrainingState] = None,
                 checkpoint_every: int = 0, stop_requested: Callable[[], bool] = lambda: False,
                 monitors: Sequence[Monitor] = ()) -> list[dict]:
    """``train`` into a folder that ``vae train`` has already checked and started (or none)."""
    with run.params():
        return _train(run, out, quiet, resume, checkpoint_every, stop_requested, monitors)


def train(run: Run, out: Optional[Path] = None, quiet: bool = True, resume: Optional[TrainingState] = None,
          checkpoint_every: int = 0, stop_requested: Callable[[], bool] = lambda: False,
          monitors: Sequence[Monitor] = ()) -> list[dict]:
    """Train ``run`` by SVI for ``config.train.epochs``, in the run's own param store; with ``out``, keep
    the run folder current: metrics and weights each epoch, ``checkpoint.pt`` every ``checkpoint_every``
    steps and at each epoch end. A new ``out`` is checked before the first step (a file, a folder that holds
    a run or that another process writes is refused in one line) and made, with the run's ``config.json``,
    so that ``load_run`` reads it. ``resume`` continues from a checkpoint's state exactly; when
    ``stop_requested()`` turns true after a step, a checkpoint is written and ``TrainingInterrupted`` raised.
    ``monitors`` (``pyro_vae.inference.training.monitors``) see the notices, every ``LOG_EVERY``-th step and each epoch."""
    if out is None or resume is not None:
        return train_epochs(run, out, quiet, resume, checkpoint_every, stop_requested, monitors)
    from pyro_vae.inference.runs.folder import started_folder

    out = Path(out)
    with started_folder(run, out):
        return train_epochs(run, out, quiet, resume, checkpoint_every, stop_requested, monitors)
