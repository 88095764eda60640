"""Stochastic variational inference: ``pyro.infer.SVI(model, guide, Adam, Trace_ELBO())``.

Each step scores a minibatch inside ``pyro.plate("data", N, subsample=idx)``,
so the loss is an unbiased estimate of the full-data -ELBO (``inference.runs.train``
drives the epochs, checkpoints and evaluation around it).
"""
from __future__ import annotations

import math
from typing import Optional

import pyro
import pyro.optim
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.elbo import ELBO
from pyro.infer.util import torch_item, zero_grads
from torch import nn

from .evaluation import elbo_terms


class NumericalFault(Exception):
    """A non-finite loss or gradient; ``term`` says which part went bad first."""

    def __init__(self, step: int, term: str):
        super().__init__(f"a non-finite {term} appeared at SVI step {step}")  # term: reconstruction, KL, ...
        self.step, self.term = step, term


class SVITrainer:
    """Owns the ``SVI`` object for one (model, guide) pair.

    Pyro keeps parameters in a global param store keyed by name, so the trainer
    clears it on creation: a stale entry of the same name would otherwise be
    optimized in place of the module's own tensor. One trainer per process at a time.
    """

    engine = "pyro"

    def __init__(self, model: nn.Module, guide: nn.Module, lr: float = 1e-3,
                 loss: Optional[ELBO] = None, clip_norm: Optional[float] = None):
        pyro.clear_param_store()
        self.model, self.guide = model, guide
        self.optim = pyro.optim.Adam({"lr": lr}, {"clip_norm": clip_norm} if clip_norm else None)
        self.svi = SVI(model, guide, self.optim, loss=loss if loss is not None else Trace_ELBO())
        self.steps = 0
        self.grad_norm: Optional[torch.Tensor] = None  # of the last step, before clipping

    def step(self, x: torch.Tensor, num_data: int, subsample: torch.Tensor,
             y: Optional[torch.Tensor] = None) -> float:
        """One gradient step; returns the minibatch estimate of the full-data -ELBO.

        ``SVI.step``'s own sequence (capture the params, ``loss_and_grads``, optimizer,
        zero the grads) with one check in the middle: a non-finite loss or gradient raises
        ``NumericalFault`` before the optimizer can write NaN into the parameters."""
        kwargs = {"y": y, "num_data": num_data, "subsample": subsample}
        with poutine.trace(param_only=True) as capture:
            try:
                loss = self.svi.loss_and_grads(self.model, self.guide, x, **kwargs)
            except ValueError as err:  # distribution validation: NaN or Inf reached a parameter
                if "invalid values" not in str(err):
                    raise
                raise NumericalFault(self.steps + 1, "distribution parameter") from None
        params = {site["value"].unconstrained() for site in capture.trace.nodes.values()}
        if isinstance(loss, tuple):  # ReweightedWakeSleep: (wake-theta loss, wake/sleep-phi loss)
            loss = loss[0]
        loss = torch_item(loss)
        grads = [p.grad for p in params if p.grad is not None]
        # one reduction and one read for all gradients, not a device sync per parameter
        grads_finite = not grads or bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())
        self.grad_norm = torch.stack([g.norm() for g in grads]).norm() if grads else None
        if not (math.isfinite(loss) and grads_finite):
            zero_grads(params)
            raise NumericalFault(self.steps + 1, self._bad_term(x, y, loss))
        self.optim(params)
        zero_grads(params)
        if self.steps == 0:
            self._check_param_store()
        self.steps += 1
        return loss

    def check(self) -> None:
        """Faults are raised by ``step`` itself on this engine."""

    def optimizer_state(self) -> dict:
        return {"engine": self.engine, "pyro": self.optim.get_state()}

    def load_optimizer_state(self, state: dict) -> None:
        self.optim.set_state(state["pyro"])

    def _bad_term(self, x, y, loss: float) -> str:
        with torch.no_grad():
            distortion, rate = elbo_terms(self.model, self.guide, x, y)
        if not torch.isfinite(distortion).all():
            return "reconstruction"
        if not torch.isfinite(rate).all():
            return "KL"
        return "loss" if not math.isfinite(loss) else "gradient"

    def _check_param_store(self) -> None:
        store = pyro.get_param_store()
        optimized = {id(store._params[name]) for name in store.keys()}
        own = {id(p) for m in (self.model, self.guide) for p in m.parameters()}
        if not own <= optimized:
            raise RuntimeError("Pyro's param store holds parameters other than this model's and guide's; "
                               "create the trainer after building the modules, one trainer at a time")
