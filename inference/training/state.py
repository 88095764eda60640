"""Where training stands, as one value: everything the next step depends on besides the parameters.

``TrainingState`` holds the completed epochs, the position and data order of the current epoch, the
per-step train values so far, the metrics, the optimizer state and the random states of torch (CPU and
CUDA), NumPy and Python. ``train(run, state)`` continues from it exactly, so a resumed run takes the steps
an uninterrupted one would and, on CPU, ends with identical parameters. Saving it is a monitor's business
(the run folder's ``checkpoint.pt``: ``pyro_vae.inference.runs.writer``).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch


class TrainingInterrupted(Exception):
    """Raised after a signal: the checkpoint is written, the message says how to resume."""


def rng_state() -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    version, internal, py_gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {"keys": torch.from_numpy(np.asarray(keys).astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
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
    rng: Optional[dict] = None  # rng_state() when saved
