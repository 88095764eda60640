"""The fast SVI engine: a captured objective, one fused Adam, and no host read inside the epoch.

Same semantics as ``SVITrainer`` (``SVI`` + ``pyro.optim.Adam``): the loss is the
objective's own value on the same draws (``inference.capture``), Adam has Pyro's
defaults, and ``clip_norm`` clips each parameter's gradient norm as Pyro's ``clip_args``
do. What changes is where the time goes: one ``torch.optim.Adam(fused=True)`` call
for all parameters instead of one optimizer per parameter, and the finiteness check
runs on the device: a step whose loss or gradient is not finite is skipped by the
fused kernel (its ``found_inf`` input), so NaN never reaches a parameter, and the
first bad step is reported at the next ``check()`` (the caller's read point).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .adversarial import AdversarialObjective, AdversarialTrainer
from .capture import CapturedObjective, CaptureError
from .config import COMPILE_MODES
from .objectives.beta import BetaELBO
from .trainer import NumericalFault, SVITrainer


class AdamState:
    """Checkpointing of a trainer whose optimizer is one ``torch.optim.Adam`` (``self.optim``), under its
    ``engine`` name."""

    def optimizer_state(self) -> dict:
        return {"engine": self.engine, "adam": self.optim.state_dict()}

    def load_optimizer_state(self, state: dict) -> None:
        self.optim.load_state_dict(state["adam"])


class CompiledSVITrainer(AdamState):
    """``step`` returns the loss as a device tensor; call ``check()`` where the loop reads values anyway."""

    engine = "captured"

    def __init__(self, model: nn.Module, guide: nn.Module, objective, lr: float = 1e-3,
                 clip_norm: Optional[float] = None, backend: str = "trace"):
        self.model, self.guide, self.objective = model, guide, objective
        self.loss = CapturedObjective(model, guide, objective, backend)
        self.params = self.loss.params
        self.optim = torch.optim.Adam(self.params, lr=lr, fused=True)
        self.clip_norm = clip_norm
        self.steps = 0
        self._first_bad: Optional[torch.Tensor] = None
        self.grad_norm: Optional[torch.Tensor] = None

    def step(self, x: torch.Tensor, num_data: int, subsample: torch.Tensor,
             y: Optional[torch.Tensor] = None) -> torch.Tensor:
        """One gradient step; returns the minibatch estimate of the full-data loss (not read here)."""
        self.optim.zero_grad(set_to_none=True)
        loss = self.loss(x, num_data, subsample, y)
        loss.backward()
        grads = [p.grad for p in self.params if p.grad is not None]
        norms = torch._foreach_norm(grads)
        stacked = torch.stack(norms)
        self.grad_norm = stacked.norm()  # before clipping; read only by the monitors
        bad = ~torch.isfinite(stacked.sum() + loss.detach())
        if self.clip_norm is not None:  # per parameter: min(1, c / (||g|| + 1e-6)), as torch's clip_grad_norm_
            torch._foreach_mul_(grads, [(self.clip_norm / (n + 1e-6)).clamp(max=1.0) for n in norms])
        self.optim.found_inf = bad.float()  # the fused kernel leaves parameters and moments alone when set
        self.optim.step()
        self.steps += 1
        if hasattr(self.objective, "step"):
            self.objective.step += 1
        step = torch.full_like(bad, self.steps, dtype=torch.long)
        self._first_bad = torch.where(bad, step, torch.full_like(step, -1)) if self._first_bad is None else \
            torch.where((self._first_bad < 0) & bad, step, self._first_bad)
        return loss.detach()

    def check(self) -> None:
        """Raise ``NumericalFault`` for the first skipped step since the last check (one host read)."""
        if self._first_bad is None:
            return
        first, self._first_bad = int(self._first_bad), None
        if first >= 0:
            raise NumericalFault(first, "loss or gradient")

    def prepare(self, x: torch.Tensor, num_data: int, subsample: torch.Tensor,
                y: Optional[torch.Tensor] = None) -> None:
        """Capture (and check) the graph for batches shaped like ``x`` now."""
        self.loss.prepare(x, num_data, subsample, y)


AUTO_INDUCTOR_STEPS = 5000  # inductor compiles for ~5 s per batch shape on 2 CPU cores and saves ~2 ms a step


def build_trainer(model: nn.Module, guide: nn.Module, objective, lr: float = 1e-3,
                  clip_norm: Optional[float] = None, compile: str = "auto", planned_steps: int = 0,
                  examples: tuple = ()):
    """The trainer ``compile`` names, its graphs captured for each batch in ``examples`` up front.

    ``off``: Pyro's ``SVI``. ``trace``: the captured graph, replayed. ``inductor``: the graph compiled.
    ``auto``: inductor for runs of at least ``AUTO_INDUCTOR_STEPS`` steps, else trace. Returns
    ``(trainer, notice)``; ``notice`` is one line when a backend could not be used and a slower one was.
    """
    if compile not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {compile!r}; choose one of: {', '.join(COMPILE_MODES)}")
    if isinstance(objective, AdversarialObjective):  # reconstruction on an SVI engine, then the adversarial steps
        trainer, notice = build_trainer(model, guide, BetaELBO(beta=0.0, analytic_kl=False), lr, clip_norm,
                                        compile, planned_steps, examples)
        return AdversarialTrainer(trainer, model, guide, objective), notice
    return first_capturing(
        compile, planned_steps, examples, type(objective).__name__,
        lambda backend: CompiledSVITrainer(model, guide, objective, lr, clip_norm, backend),
        lambda: SVITrainer(model, guide, lr=lr, loss=objective, clip_norm=clip_norm), "Pyro's SVI")


def first_capturing(compile: str, planned_steps: int, examples, objective_name: str, captured, fallback,
                    fallback_name: str):
    """``captured(backend)`` for the first backend ``compile`` allows whose graphs capture every example
    batch, else ``fallback()``; with the one-line notice of what was given up (or None)."""
    if compile == "auto":
        compile = "inductor" if planned_steps >= AUTO_INDUCTOR_STEPS else "trace"
    failures = []
    for backend in {"inductor": ["inductor", "trace"], "trace": ["trace"], "off": []}[compile]:
        trainer = captured(backend)
        try:
            for example in examples:
                trainer.prepare(*example)
            notice = f"note: compile={backend} instead of {compile}: {failures[0]}" if failures else None
            return trainer, notice
        except CaptureError as err:
            failures.append(str(err))
    notice = (f"note: {objective_name} could not be captured ({failures[0]}); training with {fallback_name} "
              f"instead") if failures else None
    return fallback(), notice
