"""A run folder: everything needed to reload, evaluate or retrain a model.

    config.json          RunConfig (rebuilds model and guide without the command line)
    config.yaml          the same, as a file for ``vae train --config`` (inference/config/files.py)
    versions.json        Python, torch, Pyro, NumPy versions, seed, device
    data.json            the data as trained on: name, shape, sizes, class names (label i is classes[i]), columns
    weights.pt           {"model": state_dict, "guide": state_dict, "params": the pyro.param values, if any}
    run.lock             the writer's lock: its pid and command while it writes (inference/runs/lock.py)
    snapshot.lock        held while a snapshot (config; metrics, weights, checkpoint) is replaced
    checkpoint.pt        everything ``vae train --resume`` needs (inference/training/checkpoint.py)
    metrics.jsonl        one line per epoch: train objective, test ELBO, distortion D, rate R, seconds
    samples.png          E[x | z], z ~ p(z): an image grid, or for arrays a heat map beside test rows (and samples.csv)
    samples_ex_post.png  E[x | z], z from a mixture fitted to the codes (``vae sample --ex-post K``, inference/experiments/ex_post.py)
    reconstructions.png  test images above their reconstructions (arrays: heat maps, and reconstructions.csv)
    train.log            notices, logged steps and epochs (inference/training/monitors.py)
    tensorboard/         TensorBoard events, when installed (off: --no-tensorboard)
    curves.png, latent_space.png, interpolations.png, neighbours.png, manifold.png (2-D codes): inference/report/plots.py
    report.html          ``vae report RUN`` (inference/report/html.py)
"""
from __future__ import annotations

import contextlib
import json
import platform
import shutil
import sys
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import pyro
import torch

from pyro_vae.inference.config.files import write_config_file
from pyro_vae.inference.config.sections import RunConfig
from pyro_vae.inference.errors import UserError
from pyro_vae.inference.report.outputs import csv_path, save_run_reconstructions, save_samples
from pyro_vae.inference.report.plots import PLOTS, write_plots
from pyro_vae.inference.runs import lock
from pyro_vae.inference.runs.build import resolve_device
from pyro_vae.inference.runs.files import atomic_write_text, load_module_state
from pyro_vae.inference.runs.run import WEIGHTS, Run, load_run, setup  # noqa: F401  (load_run: the run folder's reader)
from pyro_vae.inference.training import parallel as distributed
from pyro_vae.inference.training.checkpoint import CHECKPOINT, TrainingInterrupted, TrainingState, load_checkpoint
from pyro_vae.inference.training.loop import METRICS, stop_on_signals, train_epochs
from pyro_vae.inference.training.monitors import LOG, TENSORBOARD, Monitor, default_monitors

CONFIG, VERSIONS, DATA = "config.json", "versions.json", "data.json"
CONFIG_FILE = "config.yaml"
SAMPLES, RECONSTRUCTIONS, EVALUATION = "samples.png", "reconstructions.png", "evaluation.json"
SAMPLES_EX_POST, REPORT = "samples_ex_post.png", "report.html"  # written after training, by vae sample / report
DIAGNOSTICS = "diagnostics"  # a folder, written by vae diagnose
RUN_MARKERS = (CONFIG, WEIGHTS, METRICS, CHECKPOINT)


def library_versions() -> dict:
    import arviz

    return {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
            "pyro": pyro.__version__, "numpy": np.__version__, "arviz": arviz.__version__}


def describe_data(data) -> dict:
    """What ``data.json`` records: enough to read the labels and columns of a run's outputs."""
    return {"name": data.name, "event_shape": list(data.event_shape), "train": int(data.train_x.shape[0]),
            "test": int(data.test_x.shape[0]), "labelled": data.labelled, "classes": list(data.classes),
            "feature_names": list(data.feature_names), "standardized": data.shift is not None}


def check_output_folder(out: Path, force: bool, writer_lock: bool = True) -> None:
    """Refuse a folder another process is writing (``writer_lock``: not for the other ranks of a data-parallel
    job, whose rank 0 holds it), one that holds a run unless ``force``, and a file."""
    if writer_lock:
        lock.refuse_if_writing(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"output path {out} exists and is not a folder; choose another --out")
    if not force and out.is_dir() and any((out / name).exists() for name in RUN_MARKERS):
        raise UserError(f"output folder {out} already holds a run; pass --force to overwrite it or choose another --out")


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_metrics(folder: Path) -> list[dict]:
    """The rows of ``folder/metrics.jsonl``, one per finished epoch ([] before the first)."""
    path = Path(folder) / METRICS
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def _finish(run: Run, out: Path, quiet: bool, resume: Optional[TrainingState], checkpoint_every: int,
            tensorboard: Optional[bool], plots: bool, monitors: Sequence[Monitor]) -> list[dict]:
    main = distributed.current().is_main
    monitors = default_monitors(out, tensorboard) + list(monitors) if main else []
    try:
        with stop_on_signals() as stop_requested:
            try:
                metrics = train_epochs(run, out, quiet, resume, checkpoint_every, stop_requested, monitors)
            except TrainingInterrupted as stopped:
                world = distributed.current().world_size
                raise TrainingInterrupted(f"{stopped}; checkpoint written; resume with: vae train --resume {out}"
                                          + (f" --nproc {world}" if world > 1 else "")) from None
    finally:
        for monitor in monitors:
            monitor.close()
    if main:
        with run.params():
            _write_pictures(run, out, metrics, plots)
    distributed.finish()
    return metrics


def _write_pictures(run: Run, out: Path, metrics: list[dict], plots: bool) -> None:
    if run.can_sample:
        save_samples(run, out / SAMPLES, seed=run.config.train.seed, label=run.sample_label)
    save_run_reconstructions(run, out / RECONSTRUCTIONS)
    if plots:
        write_plots(run, out, metrics)


def train_run(config: RunConfig, out: Path, force: bool = False, quiet: bool = False, checkpoint_every: int = 0,
              tensorboard: Optional[bool] = None, plots: bool = True, monitors: Sequence[Monitor] = ()) -> list[dict]:
    """``vae train``: validate everything, then train into the run folder ``out``; ``train.log`` always,
    TensorBoard events in ``out/tensorboard`` (``None``: when installed), the plots of ``pyro_vae.inference.report.plots``,
    and the caller's own ``monitors``. The folder's writer lock (``pyro_vae.inference.runs.lock``) is held throughout:
    a second writer is refused, by name."""
    out = Path(out)
    config.validate()
    _record_data_dir_absolute(config)
    ctx = distributed.initialize(resolve_device(config.train.device))  # a torchrun job: join it
    check_output_folder(out, force, writer_lock=ctx.is_main)  # before the data load: fail fast, touch nothing
    with lock.writing(out) if ctx.is_main else contextlib.nullcontext():  # rank 0 writes, so rank 0 holds it
        if ctx.is_main:
            check_output_folder(out, force)  # again, now that nobody else can be writing it
        distributed.barrier()  # every rank has looked before rank 0 writes
        run = setup(config)
        run.path = out
        if ctx.is_main:
            _start(run, out)
        return _finish(run, out, quiet, None, checkpoint_every, tensorboard, plots, monitors)


def _record_data_dir_absolute(config: RunConfig) -> None:
    """Recorded absolute: the run folder reloads from any working directory."""
    if config.data.data_dir:
        config.data.data_dir = str(Path(config.data.data_dir).expanduser().resolve())


def _start(run: Run, out: Path) -> None:
    """The files a run folder holds from its first step: config, data and versions; nothing of an older run."""
    with lock.snapshot(out, write=True):  # readers see the old run or the new one, never a mixture
        for stale in (WEIGHTS, METRICS, EVALUATION, CHECKPOINT, LOG, SAMPLES_EX_POST, REPORT, DATA, *PLOTS,
                      *(csv_path(p) for p in (SAMPLES, SAMPLES_EX_POST, RECONSTRUCTIONS))):
            (out / stale).unlink(missing_ok=True)  # --force: nothing of the old run survives
        for folder in (TENSORBOARD, DIAGNOSTICS):
            shutil.rmtree(out / folder, ignore_errors=True)
        config = run.config
        write_json(out / CONFIG, config.to_dict())
        write_config_file(out / CONFIG_FILE, config.to_dict())
        write_json(out / DATA, describe_data(run.data))
        write_json(out / VERSIONS, {**library_versions(), "seed": config.train.seed, "device": str(run.device),
                                    "processes": distributed.current().world_size})


@contextlib.contextmanager
def started_folder(run: Run, out: Path) -> Iterator[None]:
    """``train(run, out)``: ``out`` checked before anything trains (as ``vae train`` checks it, without
    ``--force``), made, held by this process's writer lock and started (``_start``) for the block."""
    _record_data_dir_absolute(run.config)
    check_output_folder(out, force=False)
    with lock.writing(out):
        check_output_folder(out, force=False)
        run.path = out
        _start(run, out)
        yield


def resume_run(out: Path, quiet: bool = False, checkpoint_every: int = 0, tensorboard: Optional[bool] = None,
               plots: bool = True, monitors: Sequence[Monitor] = ()) -> list[dict]:
    """``vae train --resume RUN``: continue a run from its ``checkpoint.pt`` exactly where it stopped, holding
    the folder's writer lock."""
    out = Path(out)
    if distributed.main_process():  # a job's rank 0 holds it
        lock.refuse_if_writing(out, remedy="wait for it to end")
    if not (out / CHECKPOINT).is_file():
        raise UserError(f"{out} has no {CHECKPOINT} to resume from; was it written by 'vae train'?")
    config = RunConfig.load(out / CONFIG)
    ctx = distributed.initialize(resolve_device(config.train.device))
    with lock.writing(out, remedy="wait for it to end") if ctx.is_main else contextlib.nullcontext():
        config = RunConfig.load(out / CONFIG)  # as the last writer left it
        run = setup(config)
        modules, state = load_checkpoint(out / CHECKPOINT, map_location=run.device)
        load_module_state(run.model, modules["model"], "model")
        load_module_state(run.guide, modules["guide"], "guide")
        run.path = out
        run.load_params(dict(modules.get("params") or {}))
        return _finish(run, out, quiet, state, checkpoint_every, tensorboard, plots, monitors)
