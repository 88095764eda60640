"""Resumable training: a checkpoint that holds everything the next step depends on.

``checkpoint.pt`` (written atomically every N steps, at each epoch end and on
SIGINT/SIGTERM) holds the model and guide parameters, the optimizer state, the
random states of torch (CPU and CUDA), NumPy and Python, the completed epochs,
the position and data order of the current epoch, the per-step train values so
far and the metrics. Restoring all of it makes a resumed run take exactly the
steps an uninterrupted one would, so on CPU both end with identical parameters.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from pyro_vae.inference.runs.files import load_state, save_state
from pyro_vae.inference.errors import UserError

CHECKPOINT = "checkpoint.pt"


class TrainingInterrupted(Exception):
    """Raised after a signal: the checkpoint is written, the message says how to resume."""


def rng_state() -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                      "gauss": float(gauss)},
            "python": {"version": version, "internal": list(internal),
                       "gauss": py_gauss if py_gauss is None else float(py_gauss)}}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))


@dataclass
class TrainingState:
    """Where training stands: ``epoch`` epochs done, ``step_in_epoch`` batches of the next."""

    epoch: int = 0
    step_in_epoch: int = 0
    steps: int = 0
    perm: Optional[torch.Tensor] = None
    epoch_values: list = field(default_factory=list)  # per-step train objective of the current epoch
    metrics: list = field(default_factory=list)
    optimizer: Optional[dict] = None
    objective_step: int = 0
    rng: Optional[dict] = None


def save_checkpoint(path: Path, model, guide, state: TrainingState, params: Optional[dict] = None) -> None:
    """``params``: the run's ``pyro.param`` values that are not module parameters (``Run.store_params``)."""
    save_state(path, {"model": model.state_dict(), "guide": guide.state_dict(), "params": params or {},
                      "epoch": state.epoch,
                      "step_in_epoch": state.step_in_epoch, "steps": state.steps, "perm": state.perm,
                      "epoch_values": list(state.epoch_values), "metrics": list(state.metrics),
                      "optimizer": state.optimizer, "objective_step": state.objective_step, "rng": rng_state()})


def load_checkpoint(path: Path, map_location="cpu") -> tuple[dict, TrainingState]:
    """``(state dicts of model and guide, TrainingState)`` from a checkpoint written by ``vae train``."""
    raw = load_state(path, map_location=map_location)
    missing = [k for k in ("model", "guide", "epoch", "step_in_epoch", "optimizer", "rng") if k not in raw]
    if missing:
        raise UserError(f"{path} is not a training checkpoint (no {missing[0]!r}); cannot resume from it")
    state = TrainingState(raw["epoch"], raw["step_in_epoch"], raw["steps"], raw["perm"], raw["epoch_values"],
                          raw["metrics"], raw["optimizer"], raw["objective_step"], raw["rng"])
    return {"model": raw["model"], "guide": raw["guide"], "params": raw.get("params") or {}}, state
