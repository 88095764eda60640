"""Stochastic variational inference: ``pyro.infer.SVI(model, guide, Adam, Trace_ELBO())``.

Each step scores a minibatch inside ``pyro.plate("data", N, subsample=idx)``,
so the loss is an unbiased estimate of the full-data -ELBO; the epoch's train
ELBO per data point is minus the mean loss over its steps, divided by N.
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional

import pyro
import pyro.optim
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.elbo import ELBO
from torch import nn


class SVITrainer:
    """Owns the ``SVI`` object for one (model, guide) pair.

    Pyro keeps parameters in a global param store keyed by name, so the trainer
    clears it on creation: a stale entry of the same name would otherwise be
    optimized in place of the module's own tensor. One trainer per process at a time.
    """

    def __init__(self, model: nn.Module, guide: nn.Module, lr: float = 1e-3,
                 loss: Optional[ELBO] = None):
        pyro.clear_param_store()
        self.model, self.guide = model, guide
        self.optim = pyro.optim.Adam({"lr": lr})
        self.svi = SVI(model, guide, self.optim, loss=loss if loss is not None else Trace_ELBO())
        self.steps = 0

    def step(self, x: torch.Tensor, num_data: int, subsample: torch.Tensor,
             y: Optional[torch.Tensor] = None) -> float:
        """One gradient step; returns the minibatch estimate of the full-data -ELBO."""
        loss = self.svi.step(x, y=y, num_data=num_data, subsample=subsample)
        if self.steps == 0:
            self._check_param_store()
        self.steps += 1
        return loss

    def train_epoch(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], num_data: int,
                    on_step: Optional[Callable[[float], None]] = None,
                    labels: Optional[torch.Tensor] = None) -> float:
        """One pass over ``batches``; returns minus the mean loss per data point
        (the train ELBO for ``Trace_ELBO``, the bound itself for IWAE). ``labels``
        (all N of them) condition a conditional VAE."""
        total, count = 0.0, 0
        for idx, x in batches:
            loss = self.step(x, num_data, idx, None if labels is None else labels[idx])
            total += loss
            count += 1
            if on_step is not None:
                on_step(-loss / num_data)
        return -total / (count * num_data)

    def _check_param_store(self) -> None:
        store = pyro.get_param_store()
        optimized = {id(store._params[name]) for name in store.keys()}
        own = {id(p) for m in (self.model, self.guide) for p in m.parameters()}
        if not own <= optimized:
            raise RuntimeError("Pyro's param store holds parameters other than this model's and guide's; "
                               "create the trainer after building the modules, one trainer at a time")
