"""Where training stands, as one value: everything the next step depends on besides the parameters.

``TrainingState`` holds the completed epochs, the position and data order of the current epoch, the
per-step train values so far, the metrics, the optimizer state and the random states of torch (CPU and
CUDA), NumPy and Python. ``train(run, state)`` continues from it exactly, so a resumed run takes the steps
an uninterrupted one would and, on CPU, ends with identical parameters. Saving it is a monitor's business
(the run folder's ``checkpoint.pt``: ``pyro_vae.inference.runs.writer``); ``TrainingState.check`` refuses, in one
line, counters that cannot belong to the run (another batch size, other data, a negative epoch).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from pyro_vae.inference.errors import UserError


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


def rng_problem(state) -> Optional[str]:
    """What keeps ``set_rng_state(state)`` from restoring ``state`` (tried, then the current states put back);
    None when it can."""
    if not isinstance(state, dict) or any(k not in state for k in ("torch", "cuda", "numpy", "python")):
        return "not a dict of torch, cuda, numpy and python states"
    if not isinstance(state["cuda"], list) or not all(torch.is_tensor(t) for t in state["cuda"]):
        return "the cuda states are not a list of tensors"
    current = rng_state()
    try:
        set_rng_state(state)
    except (TypeError, ValueError, RuntimeError, KeyError, IndexError, AttributeError, OverflowError) as err:
        return f"{type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else 'unreadable'}"
    finally:
        set_rng_state(current)
    return None


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
    batch_size: Optional[int] = None  # the batch size it was written under (None: 0.4.0 and earlier, or not saved yet)

    def check(self, epochs: int, num_data: int, batch_size: int, path: Path) -> None:
        """Refuse, in one line naming ``path``, a state that cannot be where a run of ``epochs`` epochs over
        ``num_data`` points in batches of ``batch_size`` stands: an epoch outside 0..epochs, a position outside
        the epoch, a step count, data order, per-step values or metrics that do not fit, another batch size."""
        batches = -(-num_data // batch_size)
        position = f"epoch {self.epoch}, step {self.step_in_epoch}"
        problem = None
        if self.batch_size is not None and self.batch_size != batch_size:
            problem = f"it was written under batch size {self.batch_size}, the run's config says {batch_size}"
        elif not 0 <= self.epoch <= epochs:
            problem = f"its epoch {self.epoch} is outside 0..{epochs} (the config's train.epochs)"
        elif self.perm is None and self.step_in_epoch != 0:
            problem = f"it stands at {position} without the epoch's data order"
        elif not 0 <= self.step_in_epoch <= batches:
            problem = f"its step {self.step_in_epoch} is outside an epoch of {batches} batches"
        elif self.steps != self.epoch * batches + self.step_in_epoch:
            problem = (f"its step count {self.steps} is not that of {position} with {batches} batches an epoch "
                       f"({num_data} points in batches of {batch_size}): it was written under another batch size "
                       f"or for other data")
        elif self.perm is not None and (self.perm.numel() != num_data or not torch.equal(
                self.perm.sort().values.cpu(), torch.arange(num_data))):
            problem = f"its data order is not an order of the {num_data} training points"
        elif len(self.epoch_values) != self.step_in_epoch:
            problem = f"it holds {len(self.epoch_values)} per-step values at {position}"
        elif len(self.metrics) != self.epoch or any(m.get("epoch") != i + 1 for i, m in enumerate(self.metrics)):
            problem = f"its metrics are not one row for each of its {self.epoch} epochs"
        if problem:
            raise UserError(f"{path} does not fit this run: {problem}; restore the run's own checkpoint, or train a "
                            f"new run")
