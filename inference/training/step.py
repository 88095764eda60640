"""The one SVI step every engine takes (as ``SVI.step``, with NumPyro's ``stable_update`` as an option)::

    loss, params = engine.loss_and_grads(batch)   the loss module on Pyro's interpreter, a captured graph
                                        or this process's shard, and its backward pass
    engine.reduce(params, loss)         data-parallel: gradients and loss summed over the processes
    clip once                           each parameter's gradient g <- g * min(1, c / (||g|| + 1e-6)),
                                        the rule of ``pyro.optim``'s ``clip_args={"clip_norm": c}``
    finiteness guard                    a non-finite gradient: the update is skipped and the step reported
                                        (at once on the interpreter; on a captured engine with a fused
                                        optimizer, on the device and at the caller's next check()). The
                                        guard looks at what the update uses: a loss that is infinite by
                                        design with finite gradients (TraceTailAdaptive_ELBO) trains as in
                                        SVI; a non-finite loss reaches a non-finite gradient otherwise
    optimizer step; zero the gradients

The objective's schedule (KL warm-up, beta_t) is read from the step count by the trainer before each step.
"""
from __future__ import annotations

import contextlib
import math
import weakref
from typing import Optional

import torch


class NumericalFault(Exception):
    """A non-finite loss or gradient; ``term`` says which part went bad first."""

    def __init__(self, step: int, term: str):
        super().__init__(f"a non-finite {term} appeared at SVI step {step}")  # term: reconstruction, KL, ...
        self.step, self.term = step, term


def clip_per_parameter(grads: list, norms: list, clip_norm: float) -> None:
    """Each gradient scaled to norm at most ``clip_norm`` on its own (torch's ``clip_grad_norm_`` per parameter)."""
    torch._foreach_mul_(grads, [(clip_norm / (n + 1e-6)).clamp(max=1.0) for n in norms])


class SVIStep:
    """``step(*args, **kwargs)`` on ``engine`` with ``updater``; ``stable=True`` guards every update."""

    def __init__(self, engine, updater_factory, clip_norm: Optional[float] = None, stable: bool = True,
                 store=contextlib.nullcontext):
        self.engine, self.make_updater, self.store = engine, updater_factory, store  # store: the program's param store
        self.updater = None
        self.clip_norm, self.stable = clip_norm, stable
        self.steps = 0
        self.grad_norm: Optional[torch.Tensor] = None  # of the last step, before clipping
        self.faults = FaultLog()
        self.pending_state = None  # an optimizer state to load as soon as the updater exists: (state, loader)
        self.had_grad: dict = {}  # id -> weak reference: the parameters SVI would keep a (zeroed) gradient for

    def ensure_updater(self, params: list) -> None:
        if self.updater is None:
            self.updater = self.make_updater(params)
        with self._named():
            self.updater.add(params)
            if self.pending_state is not None:
                (state, load), self.pending_state = self.pending_state, None
                load(self.updater, state)

    def _named(self):
        """The program's param store, for an optimizer that names its parameters through it (``pyro.optim``);
        a torch optimizer needs none, and the hot loop enters no store scope for it."""
        return self.store() if self.updater.by_name else contextlib.nullcontext()

    def __call__(self, *args, **kwargs) -> torch.Tensor:
        """One update; returns the loss as a device tensor (not read here on a device-guarded optimizer)."""
        loss, params = self.engine.loss_and_grads(*args, **kwargs)
        self.ensure_updater(params)
        loss = self.engine.reduce(params, loss)
        self._zero_where_svi_keeps_zeros(params)
        grads = [p.grad for p in params if p.grad is not None]
        norms = torch._foreach_norm(grads) if grads else []
        stacked = torch.stack(norms) if norms else torch.zeros(1, device=loss.device)
        self.grad_norm = stacked.norm()
        bad = ~torch.isfinite(stacked.sum())  # what the update uses (a loss may be infinite by design)
        step = self.steps + 1
        deferred = self.updater.device_guard and self.engine.deferred_checks
        if self.stable and not deferred and bool(bad):  # one host read
            _zero(params)
            raise NumericalFault(step, "loss" if not math.isfinite(float(loss)) else "gradient")
        if self.clip_norm is not None and grads:
            clip_per_parameter(grads, norms, self.clip_norm)
        with self._named():
            self.updater.step(params, bad if self.stable and deferred else torch.zeros_like(bad))
        _zero(params)
        if self.stable and deferred:
            self.faults.record(bad, self.steps)
        self.steps = step
        return loss.detach()

    def _zero_where_svi_keeps_zeros(self, params) -> None:
        """``SVI.step`` zeroes gradients (``pyro.infer.util.zero_grads``: a zero tensor, not None), so a parameter
        that the step reads without differentiating (a decoder a step does not observe through) takes a zero
        gradient and Adam's moments still move it. The same here; the tensors are freed between steps."""
        for p in params:
            if p.grad is not None:
                self.mark_had_grad(p)
            elif self.had_grad_before(p):
                p.grad = torch.zeros_like(p)

    def mark_had_grad(self, p: torch.Tensor) -> None:
        self.had_grad[id(p)] = weakref.ref(p)

    def had_grad_before(self, p: torch.Tensor) -> bool:
        ref = self.had_grad.get(id(p))
        return ref is not None and ref() is p

    def check(self) -> None:
        """Raise ``NumericalFault`` for the first skipped step since the last check (one host read)."""
        first = self.faults.pop()
        if first is not None:
            raise NumericalFault(first, "gradient")


class FaultLog:
    """The first skipped step since the last ``pop``, kept on the device by in-place tensor operations only
    (no host read, nothing baked from Python), so that a step recorded as a CUDA graph keeps it too."""

    def __init__(self):
        self.count: Optional[torch.Tensor] = None  # steps recorded since the last pop
        self.first: Optional[torch.Tensor] = None  # index among them of the first bad one, or -1
        self.base = 0  # the step count before the first of them

    def record(self, bad: torch.Tensor, steps_before: int) -> None:
        if self.count is None:
            self.count = torch.zeros((), dtype=torch.long, device=bad.device)
            self.first = torch.full((), -1, dtype=torch.long, device=bad.device)
            self.base = steps_before
        self.count.add_(1)
        self.first.copy_(torch.where((self.first < 0) & bad.reshape(()), self.count, self.first))

    def pop(self) -> Optional[int]:
        """The step number of the first bad step since the last pop (one host read), or None."""
        if self.count is None:
            return None
        first, recorded = int(self.first), int(self.count)
        step = self.base + first if first >= 0 else None
        self.base += recorded
        self.count.zero_()
        self.first.fill_(-1)
        return step


def _zero(params) -> None:
    for p in params:
        p.grad = None
