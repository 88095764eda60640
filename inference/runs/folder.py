"""``vae train`` and ``vae train --resume`` as library functions: a run folder from a config, or continued.

``train_run(config, out)`` checks ``out``, holds its writer lock, sets the run up, trains it with the run
folder's writer (``pyro_vae.inference.runs.writer.RunFolder``), ``train.log``, TensorBoard and the caller's
monitors, and draws the pictures. The folder's files are named in ``pyro_vae.inference.runs.layout``.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Optional, Sequence

from pyro_vae.inference import process_group
from pyro_vae.inference.deprecation import moved_names
from pyro_vae.inference.config.sections import RunConfig
from pyro_vae.inference.errors import UserError
from pyro_vae.inference.report.outputs import save_run_reconstructions, save_samples
from pyro_vae.inference.report.plots import write_plots
from pyro_vae.inference.runs import digest, layout, lock
from pyro_vae.inference.runs.build import resolve_device
from pyro_vae.inference.runs.files import load_module_state
from pyro_vae.inference.runs.run import Run, check_same_data, setup
from pyro_vae.inference.runs import writer
from pyro_vae.inference.runs.writer import RunFolder, default_monitors, load_checkpoint, record_data_dir_absolute, start_folder
from pyro_vae.inference.training.loop import stop_on_signals, train
from pyro_vae.inference.training.monitors import Monitor
from pyro_vae.inference.training.state import TrainingInterrupted, TrainingState


def _finish(run: Run, out: Path, quiet: bool, resume: Optional[TrainingState], checkpoint_every: int,
            tensorboard: Optional[bool], plots: bool, monitors: Sequence[Monitor]) -> list[dict]:
    main = process_group.current().is_main
    monitors = [*default_monitors(out, tensorboard), *monitors, RunFolder(out, checkpoint_every, start=False)] \
        if main else []
    with stop_on_signals() as stop_requested:
        try:
            metrics = train(run, resume, monitors, quiet=quiet, stop_requested=stop_requested)
        except TrainingInterrupted as stopped:
            world = process_group.current().world_size
            raise TrainingInterrupted(f"{stopped}; checkpoint written; resume with: vae train --resume {out}"
                                      + (f" --nproc {world}" if world > 1 else "")) from None
        if stop_requested():  # a signal after the last step (the last evaluation, the last snapshot): said too
            raise TrainingInterrupted(f"stopped after the last epoch: {out} holds the trained run (weights, metrics, "
                                      f"checkpoint); its pictures were not drawn ('vae report {out}' draws the plots)")
    if main:
        with run.params():
            _write_pictures(run, out, metrics, plots)
    process_group.finish()
    return metrics


def _write_pictures(run: Run, out: Path, metrics: list[dict], plots: bool) -> None:
    if run.can_sample:
        save_samples(run, out / layout.SAMPLES, seed=run.config.train.seed, label=run.sample_label)
    save_run_reconstructions(run, out / layout.RECONSTRUCTIONS)
    if plots:
        write_plots(run, out, metrics)


def train_run(config: RunConfig, out: Path, force: bool = False, quiet: bool = False, checkpoint_every: int = 0,
              tensorboard: Optional[bool] = None, plots: bool = True, monitors: Sequence[Monitor] = (),
              data=None) -> list[dict]:
    """``vae train``: validate everything, then train into the run folder ``out``; ``train.log`` always,
    TensorBoard events in ``out/tensorboard`` (``None``: when installed), the plots of
    ``pyro_vae.inference.report.plots``, and the caller's own ``monitors``. The folder's writer lock
    (``pyro_vae.inference.runs.lock``) is held throughout: a second writer is refused, by name.

    Parameters
    ----------
    config : RunConfig
        The run to train (left as it is: a checked copy is trained).
    out : path-like
        The run folder to write: ``config.json``, ``metrics.jsonl``, ``weights.pt``, ``checkpoint.pt``, ...
    force : bool
        Overwrite a folder that already holds a run.
    quiet : bool
        No progress bar and no epoch lines on stderr.
    checkpoint_every : int
        Also save ``checkpoint.pt`` every this many steps (0: at the end of each epoch only).
    tensorboard : bool, optional
        Write TensorBoard events (None: when TensorBoard is installed).
    plots : bool
        Write the plots (training curves, latent space, ...) after training.
    monitors : sequence of Monitor
        More monitors to run beside the folder's own.
    data : Dataset, DataLoader, (train, test) or ImageData, optional
        Data given in Python instead of the files ``config.data`` names (``setup``'s ``data``).

    Returns
    -------
    list of dict
        The metrics, one row per epoch (``epoch``, ``steps``, ``train_objective``, ``test_elbo``,
        ``test_distortion``, ``test_rate``, ``seconds``), as written to ``metrics.jsonl``.
    """
    out = Path(out)
    config = config.copy()  # the caller's config is left as it is
    record_data_dir_absolute(config)
    config = config.validate()  # checked once, here: setup below takes it as it is
    ctx = process_group.initialize(resolve_device(config.train.device))  # a torchrun job: join it
    writer.check_output_folder(out, force, writer_lock=ctx.is_main)  # before the data load: fail fast, touch nothing
    with lock.writing(out) if ctx.is_main else contextlib.nullcontext():  # rank 0 writes, so rank 0 holds it
        if ctx.is_main:
            writer.check_output_folder(out, force)  # again, now that nobody else can be writing it
        process_group.barrier()  # every rank has looked before rank 0 writes
        run = setup(config, data=data)
        run.path = out
        if ctx.is_main:
            start_folder(run, out)
        return _finish(run, out, quiet, None, checkpoint_every, tensorboard, plots, monitors)


def resume_run(out: Path, quiet: bool = False, checkpoint_every: int = 0, tensorboard: Optional[bool] = None,
               plots: bool = True, monitors: Sequence[Monitor] = (), data=None) -> list[dict]:
    """``vae train --resume RUN``: continue a run from its ``checkpoint.pt`` exactly where it stopped, holding
    the folder's writer lock (``data``: the same data given in Python, for a run trained on it)."""
    out = Path(out)
    if process_group.main_process():  # a job's rank 0 holds it
        lock.refuse_if_writing(out, remedy="wait for it to end")
    if out.is_dir():
        layout.check_entries(out)  # no link, pipe or device in it: nothing read or written through one
    if not os.path.lexists(out / layout.CHECKPOINT):
        raise UserError(f"{out} has no {layout.CHECKPOINT} to resume from; was it written by 'vae train'?")
    config = RunConfig.load(out / layout.CONFIG)
    ctx = process_group.initialize(resolve_device(config.train.device))
    with lock.writing(out, remedy="wait for it to end") if ctx.is_main else contextlib.nullcontext():
        config = RunConfig.load(out / layout.CONFIG)  # as the last writer left it
        raw_config = layout.read_json(out, layout.CONFIG)
        if data is None and config.data.dataset == "python":
            raise UserError(f"{out} was trained on data given in Python; resume it with resume_run(out, data=...) "
                            f"and the same Dataset")
        run = setup(config, data=data)
        if data is not None:
            check_same_data(out, run.data)
        modules, state = load_checkpoint(out / layout.CHECKPOINT, map_location=run.device)
        digest.check_config(modules, out / layout.CONFIG, raw_config, out / layout.CHECKPOINT)
        state.check(run.config.train.epochs, int(run.data.train_x.shape[0]), run.config.train.batch_size,
                    out / layout.CHECKPOINT)
        load_module_state(run.model, modules["model"], "model")
        load_module_state(run.guide, modules["guide"], "guide")
        run.path = out
        run.load_params(dict(modules.get("params") or {}))
        return _finish(run, out, quiet, state, checkpoint_every, tensorboard, plots, monitors)


_MOVED = {  # 0.3.0 names of this module -> where they live since 0.4.0 (a shim, for one minor version)
    **{name: "pyro_vae.inference.runs.layout" for name in (
        "CONFIG", "CONFIG_FILE", "VERSIONS", "DATA", "SAMPLES", "RECONSTRUCTIONS", "EVALUATION", "SAMPLES_EX_POST",
        "REPORT", "DIAGNOSTICS", "RUN_MARKERS", "WEIGHTS", "read_metrics")},
    **{name: "pyro_vae.inference.runs.writer" for name in (
        "library_versions", "describe_data", "check_output_folder", "started_folder")},
    "write_json": "pyro_vae.inference.runs.files", "load_run": "pyro_vae.inference.runs.run",
}


__getattr__ = moved_names(__name__, _MOVED)
