"""The epoch loop: minibatches, SVI steps, progress, per-epoch evaluation; a state value in, monitors out.

``train(run, state, monitors)`` drives one ``SVITrainer`` (``inference/training/trainer.py``) over the
epochs from ``state`` (``inference/training/state.py``: a new run, or where a checkpoint left off). It
writes no file: the monitors (``inference/training/monitors.py``) see the steps and epochs, and one of them,
``pyro_vae.inference.runs.writer.RunFolder``, keeps a run folder current.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator, Optional, Sequence

import pyro
import torch
from tqdm import tqdm

from pyro_vae.inference.data.stream import MinibatchStream, UnreadableData
from pyro_vae.inference.errors import UserError
from pyro_vae.inference.objectives import build_objective
from pyro_vae.inference.training import parallel as distributed
from pyro_vae.inference.training.monitors import Monitor, Progress, epoch_line, step_values
from pyro_vae.inference.training.optim import OptimizerStateError
from pyro_vae.inference.training.state import TrainingInterrupted, TrainingState, set_rng_state
from pyro_vae.inference.training.step import NumericalFault
from pyro_vae.inference.training.trainer import make_trainer

if TYPE_CHECKING:
    from pyro_vae.inference.runs.run import Run

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


_stopped_by: list[int] = []  # the signal that asked the last stop_on_signals block to stop training


def stop_signal() -> Optional[int]:
    """The signal (SIGINT or SIGTERM) that asked training to stop in the last ``stop_on_signals`` block, None
    if none did: ``vae`` exits 130 after a SIGINT, 143 after a SIGTERM."""
    return _stopped_by[0] if _stopped_by else None


SECOND_SIGNAL = "{} again: stopped at once, the step in progress not saved (the run folder keeps its last complete " \
                "checkpoint, if one was written)"


def _pass_on(signum: int, old, frame) -> None:
    """What signal ``signum`` would have done without ``stop_on_signals``: the handler in place before it (its
    exception worded for a second signal), nothing if it was ignored, else the default action."""
    if old == signal.SIG_IGN:
        return
    if not callable(old):  # SIG_DFL, or a handler set outside Python: the signal's default action
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    try:
        old(signum, frame)
    except BaseException as stopped:  # KeyboardInterrupt, vae's Terminated: say that the step was not waited for
        if not stopped.args:
            stopped.args = (SECOND_SIGNAL.format("interrupted" if signum == signal.SIGINT else "terminated"),)
        raise


@contextmanager
def stop_on_signals() -> Iterator[Callable[[], bool]]:
    """SIGINT and SIGTERM ask training to stop after the current step (a flag, not an exception): the monitors
    see it, the run folder's writer saves a checkpoint, and ``TrainingInterrupted`` says how to resume.

    A second signal does not wait for the step (which may be long, or not yet begun: capturing graphs, an
    epoch's evaluation): it gets what it would have got outside training, the previous handler's answer. Under
    ``vae`` that ends the command at once in one line (``KeyboardInterrupt`` or ``Terminated``: exit 130 or 143,
    ``pyro_vae.inference.cli.entry``); atomic writes leave each file whole, so the run folder keeps its last
    complete checkpoint. A signal that was ignored (``SIG_IGN``) stays ignored. Off the main thread, where no
    handler can be set, the flag never turns true."""
    requested: list[int] = []
    _stopped_by.clear()
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        if requested:
            _pass_on(signum, previous[signum], frame)
        else:
            requested.append(signum)
            _stopped_by[:] = [signum]

    for sig, old in previous.items():
        if old != signal.SIG_IGN:
            signal.signal(sig, handler)
    try:
        yield lambda: bool(requested)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


def _each(monitors: Sequence[Monitor], hook: str, *args) -> None:
    """``hook(*args)`` of each monitor that has it (a monitor need not subclass ``Monitor``: its hooks are
    looked up by name)."""
    for monitor in monitors:
        method = getattr(monitor, hook, None)
        if method is not None:
            method(*args)


def _train(run: Run, state: TrainingState, monitors: Sequence[Monitor], quiet: bool,
           stop_requested: Callable[[], bool]) -> list[dict]:
    cfg, ctx = run.config.train, distributed.current()
    if not ctx.is_main:  # rank 0 alone reports (and writes the run folder)
        quiet, monitors = True, ()
    _each(monitors, "begin", run, state)  # before anything is built: a run folder is checked and started first
    objective = build_objective(run.config.objective)
    stream = MinibatchStream(run.data.train_x, cfg.batch_size, dynamic=run.config.data.binarize == "dynamic",
                             device=run.device, workers=run.config.data.workers, shuffle=run.config.data.shuffle)
    labels = run.labels("train")
    if ctx.active:
        distributed.check_objective(objective)
    trainer, notice = make_trainer(run.model, run.guide, objective, cfg.lr, cfg.clip_norm, cfg.compile,
                                   planned_steps=cfg.epochs * len(stream), examples=_example_batches(stream, labels),
                                   param_state=None,  # the run's store is current (train() below)
                                   parallel=distributed.DataParallelEngine if ctx.active else None,
                                   cuda_graph=cfg.cuda_graph)
    if notice:  # one line even when quiet (quiet silences progress, not what differs from what was asked)
        print(notice, file=sys.stderr)
        _each(monitors, "note", notice)
    if state.optimizer is not None:  # a saved state
        try:
            trainer.load_optimizer_state(state.optimizer)
        except (OptimizerStateError, KeyError, ValueError) as err:
            raise UserError(f"cannot resume {run.path}: {err}") from None
    trainer.steps = state.steps  # the objective's schedule follows the step count
    if state.rng is not None:
        set_rng_state(state.rng)
    if ctx.rank:  # its own draws (the data order comes from rank 0)
        pyro.set_rng_seed((cfg.seed + 7919 * ctx.rank + trainer.steps) % 2**32)  # numpy's legacy seeds: < 2**32

    def last_good() -> str:
        saved = [getattr(m, "last_checkpoint", None) for m in monitors]
        return next((where for where in reversed(saved) if where), "none was written yet")

    def fail(fault: NumericalFault | distributed.WorkerLost, epoch: int):
        if isinstance(fault, distributed.WorkerLost):
            raise UserError(f"training stopped: {fault} (epoch {epoch}); last complete checkpoint: {last_good()}; "
                            f"resume with: vae train --resume {run.path} --nproc {ctx.world_size}") from None
        raise UserError(f"training stopped: {fault} (epoch {epoch}); the parameters were not updated "
                        f"with it; last good checkpoint: {last_good()}; try a lower --lr or --clip-norm") from None

    def check_faults(epoch: int) -> None:
        try:
            trainer.check()
        except (NumericalFault, distributed.WorkerLost) as fault:
            fail(fault, epoch)

    def progress(epoch: int, stopping: bool = False) -> Progress:
        def snapshot() -> TrainingState:
            check_faults(epoch)
            state.steps, state.optimizer = trainer.steps, trainer.optimizer_state()
            state.epoch_values = _floats(state.epoch_values)
            return state

        return Progress(run, trainer, epoch, stopping, snapshot)

    @contextmanager
    def unreadable_stops(epoch: int):
        """A data point that cannot be read mid-epoch stops training cleanly: the state after the last step is
        saved (as on SIGINT) and one line names the point and how to go on."""
        try:
            yield
        except UnreadableData as err:
            if trainer.svi_step is not None and trainer.svi_step.updater is not None:  # a step was taken here
                _each(monitors, "after_step", progress(epoch, True))
            how = f"resume_run({str(run.path)!r}, data=...)" if run.config.data.dataset == "python" else \
                f"vae train --resume {run.path or 'RUN'}"
            raise UserError(f"training stopped at epoch {epoch}, step {state.step_in_epoch}: {err}; the state after "
                            f"the last step is saved ({last_good()}): replace the file (or mend the data) and resume "
                            f"with: {how}") from None

    log_every = min(LOG_EVERY, max(1, len(stream) // 2))  # at least two reads an epoch
    for epoch in range(state.epoch + 1, cfg.epochs + 1):
        if state.perm is None:
            state.perm, state.step_in_epoch, state.epoch_values = distributed.broadcast(stream.permutation()), 0, []
        start = logged = time.perf_counter()
        batches = stream.batches(state.perm, state.step_in_epoch, shard=ctx)
        with tqdm(batches, total=len(stream), initial=state.step_in_epoch, desc=f"epoch {epoch}/{cfg.epochs}",
                  disable=quiet, leave=False, file=sys.stderr) as bar, unreadable_stops(epoch):
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
                    rows = idx if x.shape[0] == idx.numel() else distributed.shard(idx, ctx)[0]  # this rank's
                    values = step_values(run, trainer, x, None if labels is None else labels[rows], loss,
                                         stream.num_data, cfg.lr, log_every * cfg.batch_size / (now - logged))
                    logged = now
                    bar.set_postfix(elbo=f"{values['elbo']:.2f}", D=f"{values['distortion']:.2f}",
                                    R=f"{values['rate']:.2f}", refresh=False)
                    _each(monitors, "log_step", trainer.steps, values)
                stop = stop_requested()
                _each(monitors, "after_step", progress(epoch, stop))
                if stop:
                    raise TrainingInterrupted(f"stopped at epoch {epoch}, step {state.step_in_epoch}")
        check_faults(epoch)
        seconds = time.perf_counter() - start
        try:
            report = run.evaluate(seed=cfg.seed)
        except distributed.WorkerLost as lost:
            fail(lost, epoch)
        per_step = _floats(state.epoch_values)
        train_value = sum(per_step) / len(per_step)
        state.metrics.append({"epoch": epoch, "steps": trainer.steps, "train_objective": train_value,
                              "test_elbo": report.elbo, "test_distortion": report.distortion,
                              "test_rate": report.rate, "seconds": seconds})
        state.epoch, state.perm, state.step_in_epoch, state.epoch_values = epoch, None, 0, []
        if not quiet:
            print(epoch_line(state.metrics[-1]), file=sys.stderr)
        _each(monitors, "end_epoch", run, state.metrics[-1])
        _each(monitors, "after_epoch", progress(epoch))
    return state.metrics


def train(run: Run, state: Optional[TrainingState] = None, monitors: Sequence[Monitor] = (), *,
          quiet: bool = True, stop_requested: Callable[[], bool] = lambda: False, **deprecated) -> list[dict]:
    """Train ``run`` by SVI for ``config.train.epochs``, in the run's own param store, from ``state`` (None: a
    new run; a ``TrainingState`` from a checkpoint continues it exactly) and return the metrics, one row per
    epoch. Nothing is written: ``monitors`` (``pyro_vae.inference.training.monitors``) see the notices, every
    ``LOG_EVERY``-th step, every step and each epoch, and are closed at the end; to keep a run folder, pass
    ``pyro_vae.inference.runs.writer.RunFolder(out)``. When ``stop_requested()`` turns true after a step, the
    monitors see it (the run folder's writer saves a checkpoint) and ``TrainingInterrupted`` is raised.

    Deprecated (0.4.0) keywords, kept for one minor version: ``out`` and ``checkpoint_every`` (a
    ``RunFolder(out, checkpoint_every)`` monitor instead), ``resume`` (``state``).

    Parameters
    ----------
    run : Run
        The model, guide, data and config to train (``setup``, ``load_run``).
    state : TrainingState, optional
        Where to start: None for a new run, a checkpoint's state to continue one exactly.
    monitors : sequence of Monitor
        What watches the run (``LogFile``, ``TensorBoard``, ``RunFolder``, your own); closed at the end.
    quiet : bool
        No progress bar and no epoch lines on stderr (an engine's one-line ``note:`` is printed all the same).
    stop_requested : callable
        Asked after each step; True stops training after that step (``TrainingInterrupted``).

    Returns
    -------
    list of dict
        The metrics, one row per epoch: ``epoch``, ``steps``, ``train_objective``, ``test_elbo``,
        ``test_distortion``, ``test_rate`` (nats per point) and ``seconds``.
    """
    if isinstance(monitors, bool):  # 0.3's train(run, out, quiet, ...): the third argument was quiet
        quiet, monitors, deprecated = monitors, (), {**deprecated, "quiet_given": True}
    monitors = list(monitors)
    if isinstance(state, (str, os.PathLike)):  # 0.3's train(run, out)
        state, deprecated = None, {**deprecated, "out": state}
    if deprecated:
        state, monitors = _deprecated_call(state, monitors, **deprecated)
    try:
        with run.params():
            return _train(run, state or TrainingState(), monitors, quiet, stop_requested)
    finally:
        _each(monitors, "close")


def _deprecated_call(state, monitors, out=None, resume=None, checkpoint_every: int = 0, quiet_given: bool = False):
    """0.3's ``train(run, out=..., resume=..., checkpoint_every=...)``, with a warning that names the replacement."""
    warnings.warn("train(run, out=..., resume=..., checkpoint_every=...) is deprecated: use train(run, state, "
                  "monitors=[RunFolder(out, checkpoint_every)]) (pyro_vae.inference.runs.writer.RunFolder)",
                  DeprecationWarning, stacklevel=3)
    if out is not None:
        from pyro_vae.inference.runs.writer import RunFolder  # the shim alone reaches the run folder's writer

        monitors.append(RunFolder(out, checkpoint_every, start=resume is None))
    return resume if resume is not None else state, monitors


def train_epochs(run: Run, out=None, quiet: bool = True, resume: Optional[TrainingState] = None,
                 checkpoint_every: int = 0, stop_requested: Callable[[], bool] = lambda: False,
                 monitors: Sequence[Monitor] = ()) -> list[dict]:
    """Deprecated (0.4.0): ``train(run, resume, [*monitors, RunFolder(out, checkpoint_every, start=False)])``."""
    warnings.warn("train_epochs is deprecated: use train(run, state, monitors=[..., RunFolder(out, checkpoint_every, "
                  "start=False)]) (pyro_vae.inference.runs.writer.RunFolder)", DeprecationWarning, stacklevel=2)
    monitors = list(monitors)
    if out is not None:
        from pyro_vae.inference.runs.writer import RunFolder  # the shim alone reaches the run folder's writer

        monitors.append(RunFolder(out, checkpoint_every, start=False))
    return train(run, resume, monitors, quiet=quiet, stop_requested=stop_requested)
