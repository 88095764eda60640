"""Writing a run folder (``pyro_vae.inference.runs.layout`` names its files): the folder's checks, its first
files, the weights, the checkpoint, and ``RunFolder``, the training monitor that keeps all of them current.

``train(run, monitors=[RunFolder(out)])`` checks ``out`` before the first step (a file, a folder that holds a
run or that another process writes is refused in one line), takes its writer lock, writes ``config.json``
and the rest of a new run, then each epoch ``metrics.jsonl``, ``weights.pt`` and ``checkpoint.pt`` as one
snapshot (``pyro_vae.inference.runs.lock``), ``checkpoint.pt`` also every ``checkpoint_every`` steps and when
training is asked to stop.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import pyro
import torch

from pyro_vae.inference import process_group
from pyro_vae.inference.config.files import write_config_file
from pyro_vae.inference.errors import UserError
from pyro_vae.inference.runs import digest, layout, lock
from pyro_vae.inference.runs.files import atomic_write_text, kind_of, load_state, save_state, write_json
from pyro_vae.inference.training.monitors import LogFile, Monitor, Progress, TensorBoard, tensorboard_available
from pyro_vae.inference.training.state import TrainingState, rng_problem, rng_state


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
    job, whose rank 0 holds it), a file, and unless ``force`` a folder that holds a run or any file or folder
    starting one would remove (a user's own ``diagnostics/`` or ``report.html``, data named ``samples.csv``)."""
    if writer_lock:
        lock.refuse_if_writing(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"output path {out} exists and is not a folder; choose another --out")
    if not out.is_dir():
        return
    if not force and any(os.path.lexists(out / name) for name in layout.RUN_MARKERS):
        raise UserError(f"output folder {out} already holds a run; pass --force to overwrite it or choose another --out")
    replaced = (*layout.results(), *layout.FOLDERS, layout.CONFIG_FILE, layout.VERSIONS)
    taken = [name + "/" * (name in layout.FOLDERS) for name in replaced if os.path.lexists(out / name)]
    if not force and taken:  # not a run's (no marker), yet starting one would remove or replace these
        shown = taken[:3] + ["more"] * (len(taken) > 3)
        named = " and ".join([", ".join(shown[:-1]), shown[-1]] if len(shown) > 1 else shown)
        raise UserError(f"output folder {out} holds no run but holds {named}, which training would replace; train "
                        f"into another folder, or replace them with vae train --force (force=True)")


def record_data_dir_absolute(config) -> None:
    """Recorded absolute: the run folder reloads from any working directory."""
    if config.data.data_dir:
        config.data.data_dir = str(Path(config.data.data_dir).expanduser().resolve())


def start_folder(run, out: Path) -> None:
    """The files a run folder holds from its first step: config, data and versions; nothing of an older run."""
    with lock.snapshot(out, write=True):  # readers see the old run or the new one, never a mixture
        for stale in (*layout.results(), *layout.FOLDERS, layout.CONFIG, layout.CONFIG_FILE, layout.VERSIONS):
            if kind_of(out / stale) not in (None, "a folder"):  # a link (or pipe) itself: never what it points to
                (out / stale).unlink()
        for stale in layout.results():
            (out / stale).unlink(missing_ok=True)  # --force: nothing of the old run survives
        for folder in layout.FOLDERS:
            shutil.rmtree(out / folder, ignore_errors=True)
        config = run.config
        write_json(out / layout.CONFIG, config.to_dict())
        write_config_file(out / layout.CONFIG_FILE, config.to_dict())
        write_json(out / layout.DATA, describe_data(run.data))
        write_json(out / layout.VERSIONS, {**library_versions(), "seed": config.train.seed, "device": str(run.device),
                                           "processes": process_group.current().world_size})


@contextlib.contextmanager
def started_folder(run, out: Path) -> Iterator[None]:
    """``out`` checked before anything trains (as ``vae train`` checks it, without ``--force``), made, held by
    this process's writer lock and started (``start_folder``) for the block."""
    record_data_dir_absolute(run.config)
    check_output_folder(out, force=False)
    with lock.writing(out):
        check_output_folder(out, force=False)
        run.path = out
        start_folder(run, out)
        yield


CHECKPOINT_ENTRIES = ("model", "guide", "params", "epoch", "step_in_epoch", "steps", "perm", "epoch_values", "metrics",
                      "optimizer", "objective_step", "rng", "batch_size", digest.CONFIG)


def save_weights(run, path: Path, config: Optional[dict] = None) -> None:
    """``{"model", "guide"}`` state dicts, and ``"params"``: the run's ``pyro.param`` values, if any; ``"config"``:
    the config they are trained under (``config``, the run folder's ``config.json``; default ``run.config``)."""
    state = {"model": run.model.state_dict(), "guide": run.guide.state_dict(),
             "event_shape": list(run.data.event_shape),
             digest.CONFIG: digest.recorded_config(run.config.to_dict() if config is None else config)}
    extra = run.store_params()
    if extra:
        state["params"] = extra
    save_state(path, state)


def save_checkpoint(path: Path, model, guide, state: TrainingState, params: Optional[dict] = None,
                    config: Optional[dict] = None) -> None:
    """``checkpoint.pt``: the parameters, ``state`` and the random states as of now. ``params``: the run's
    ``pyro.param`` values that are not module parameters (``Run.store_params``); ``config``: the run's config
    dict (``config.json``), recorded to tell this run's checkpoint from another's."""
    extra: dict = {} if config is None else {digest.CONFIG: digest.recorded_config(config)}
    if state.batch_size is not None:
        extra["batch_size"] = int(state.batch_size)
    save_state(path, {"model": model.state_dict(), "guide": guide.state_dict(), "params": params or {},
                      "epoch": state.epoch, "step_in_epoch": state.step_in_epoch, "steps": state.steps,
                      "perm": state.perm, "epoch_values": list(state.epoch_values), "metrics": list(state.metrics),
                      "optimizer": state.optimizer,
                      "objective_step": state.steps,  # read by releases before 0.4.0
                      "rng": rng_state(), **extra})


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _tensors(v) -> bool:
    return isinstance(v, dict) and all(torch.is_tensor(t) for t in v.values())


CHECKPOINT_TYPES = {  # entry -> (what it must be, the test)
    "model": ("a dict of tensors", _tensors), "guide": ("a dict of tensors", _tensors),
    "epoch": ("an integer", _integer), "step_in_epoch": ("an integer", _integer), "steps": ("an integer", _integer),
    "perm": ("a tensor of indices or None", lambda v: v is None or (torch.is_tensor(v) and v.dim() == 1
                                                                  and v.dtype == torch.int64)),
    "epoch_values": ("a list of numbers", lambda v: isinstance(v, list) and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)),
    "metrics": ("a list of dicts", lambda v: isinstance(v, list) and all(isinstance(m, dict) for m in v)),
    "optimizer": ("a dict or None", lambda v: v is None or isinstance(v, dict)),
    "rng": ("a dict of random states", lambda v: isinstance(v, dict)),
}
OPTIONAL_TYPES = {
    "params": ("a dict of tensors", lambda v: v is None or _tensors(v)),
    "objective_step": ("an integer", _integer), "batch_size": ("a positive integer", lambda v: _integer(v) and v > 0),
    digest.CONFIG: ("a string", lambda v: isinstance(v, str)),
}


def load_checkpoint(path: Path, map_location="cpu") -> tuple[dict, TrainingState]:
    """``(state dicts of model and guide, TrainingState)`` from a checkpoint written by ``vae train``; the first
    dict also holds ``"config"``, the config it was written under (None from 0.4.0 and earlier: ``digest.check_config``).
    Refused in one line: damaged content (its digest), an entry missing, of the wrong type or unexpected,
    random states that cannot be restored, parameters that are NaN or infinite. Its counters are checked
    against the run's config and data by ``TrainingState.check``."""
    raw = load_state(path, map_location=map_location)
    missing = [k for k in CHECKPOINT_TYPES if k not in raw]
    if missing:
        raise UserError(f"{path} is not a complete training checkpoint (no {missing[0]!r}); cannot resume from it: "
                        f"restore it, or train a new run")
    digest.refuse_unknown_entries(raw, CHECKPOINT_ENTRIES, path, "a checkpoint")
    for key, (what, test) in [*CHECKPOINT_TYPES.items(), *OPTIONAL_TYPES.items()]:
        if key in raw and not test(raw[key]):
            raise UserError(f"{path} has a malformed {key!r} entry (not {what}); it was not written by 'vae train': "
                            f"restore it, or train a new run")
    problem = rng_problem(raw["rng"])
    if problem:
        raise UserError(f"{path} has malformed random states ({problem}); restore it, or train a new run")
    digest.check_finite(raw, path)
    state = TrainingState(raw["epoch"], raw["step_in_epoch"], raw["steps"], raw["perm"], raw["epoch_values"],
                          raw["metrics"], raw["optimizer"], raw["rng"], raw.get("batch_size"))
    return {"model": raw["model"], "guide": raw["guide"], "params": raw.get("params") or {},
            digest.CONFIG: raw.get(digest.CONFIG)}, state


def default_monitors(out: Path, tensorboard: Optional[bool] = None) -> list[Monitor]:
    """``out/train.log``, and TensorBoard in ``out/tensorboard`` when asked for (None: when installed)."""
    chosen: list[Monitor] = [LogFile(Path(out) / layout.LOG)]
    if tensorboard or (tensorboard is None and tensorboard_available()):
        chosen.append(TensorBoard(Path(out) / layout.TENSORBOARD))
    return chosen


class RunFolder(Monitor):
    """Keeps the run folder ``out`` current while ``train`` runs: metrics, weights and checkpoint each epoch (one
    snapshot), the checkpoint every ``checkpoint_every`` steps (0: never between epochs) and when training is
    asked to stop. ``start``: check, lock and start ``out`` as a new run before the first step (``vae train``
    and ``--resume`` hold the lock themselves and pass False)."""

    def __init__(self, out: Path, checkpoint_every: int = 0, start: bool = True):
        self.out, self.checkpoint_every, self.start = Path(out), int(checkpoint_every), start
        self._held = contextlib.ExitStack()
        self._config: Optional[dict] = None  # config.json as training began: what weights and checkpoint record

    def begin(self, run, state: TrainingState) -> None:
        """Check, lock and start the folder as a new run (when ``start``); read the config it holds."""
        if self.start:
            self._held.enter_context(started_folder(run, self.out))
        self._config = layout.read_json(self.out, layout.CONFIG)

    def _config_of(self, run) -> dict:
        return self._config if self._config is not None else run.config.to_dict()

    def after_step(self, progress: Progress) -> None:
        """Save the checkpoint every ``checkpoint_every`` steps, and when training is asked to stop."""
        every = self.checkpoint_every
        if progress.stopping or (every and progress.trainer.steps % every == 0):
            self._save_checkpoint(progress)

    def after_epoch(self, progress: Progress) -> None:
        """Write the metrics, the weights and the checkpoint as one snapshot."""
        state = progress.snapshot()
        with lock.snapshot(self.out, write=True):  # a reader loads weights and metrics of one epoch
            atomic_write_text(self.out / layout.METRICS,
                              "".join(json.dumps(m, sort_keys=True) + "\n" for m in state.metrics))
            save_weights(progress.run, self.out / layout.WEIGHTS, self._config_of(progress.run))
            self._save_checkpoint(progress)

    def _save_checkpoint(self, progress: Progress) -> None:
        state, run = progress.snapshot(), progress.run
        state.batch_size = run.config.train.batch_size
        save_checkpoint(self.out / layout.CHECKPOINT, run.model, run.guide, state, run.store_params(),
                        self._config_of(run))
        self.last_checkpoint = f"{self.out / layout.CHECKPOINT} (after step {state.steps})"

    def close(self) -> None:
        """Release the folder's writer lock."""
        self._held.close()
