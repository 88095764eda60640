"""Base of the objectives computed from per-point weight terms (beta-ELBO, IWAE).

A subclass writes ``differentiable_loss``; ``loss`` and ``loss_and_grads`` (what
``SVI`` calls) follow from it. An objective holds no state: one whose loss changes with the step (a KL
warm-up) is a ``ScheduledObjective``, and its caller passes the step's weight (``SVITrainer`` does).
"""
from __future__ import annotations

from typing import Optional, Protocol, runtime_checkable

import torch
from pyro.infer.elbo import ELBO

from pyro_vae.inference.objectives.elbo import check_particles
from pyro_vae.inference.objectives.weights import sample_sites, trace_pair


@runtime_checkable
class ScheduledObjective(Protocol):
    """An objective whose loss at step t (t steps taken) has a weight that follows a schedule:
    ``loss_at(schedule_weight(t), model, guide, *args, **kwargs)``. The weight is an argument, not state,
    so a captured graph takes it as an input."""

    def schedule_weight(self, step: int) -> float:
        """The weight the loss has after ``step`` steps (β_t for ``BetaELBO``)."""

    def loss_at(self, weight, model, guide, *args, **kwargs) -> torch.Tensor:
        """The loss with the scheduled term weighted by ``weight`` (a float, or a tensor in a captured graph)."""


def weight_at(objective, step: int) -> Optional[float]:
    """The weight step ``step`` of ``objective`` minimizes at (None: its loss does not follow a schedule)."""
    if isinstance(objective, ScheduledObjective) and getattr(objective, "scheduled", True):
        return objective.schedule_weight(step)
    return None


class PointwiseObjective(ELBO):
    """The base of the objectives built from per-point weight terms (``BetaELBO``, ``IWAEBound``, ``ContractiveELBO``).

    A ``pyro.infer.ELBO`` with ``num_particles`` vectorized draws and the data plate as its one plate: a subclass
    writes ``differentiable_loss``, and ``loss`` and ``loss_and_grads`` (what ``SVI`` calls) follow from it.
    """

    def __init__(self, num_particles: int = 1):
        check_particles(num_particles)
        super().__init__(num_particles=num_particles, vectorize_particles=True, max_plate_nesting=1)

    def _get_trace(self, model, guide, args, kwargs):
        guide_trace, model_trace = trace_pair(model, guide, self.num_particles, *args, **kwargs)
        return model_trace, guide_trace

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """The loss to minimize for one batch, a scalar tensor with gradients (what a subclass defines).

        ``model`` and ``guide`` are called with ``*args`` and the keywords each accepts (``num_data``,
        ``subsample``, ...).
        """
        raise NotImplementedError

    @classmethod
    def pairing_problem(cls, options, prior_cls, guide_cls) -> Optional[str]:
        """Why this objective, with its ``options`` (an ``ObjectiveConfig``), cannot train a model with a prior
        of class ``prior_cls`` and a guide of class ``guide_cls`` (None: it can). Asked before anything loads."""
        return None

    def loss(self, model, guide, *args, **kwargs) -> float:
        """``differentiable_loss`` evaluated without gradients, as a float."""
        with torch.no_grad():
            return self.differentiable_loss(model, guide, *args, **kwargs).item()

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        """``differentiable_loss``, its gradients accumulated into the parameters' ``.grad``; the loss as a float."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return loss.item()


def require_reparameterized(guide_trace, objective: str) -> None:
    for site in sample_sites(guide_trace):
        if not site["is_observed"] and not site["fn"].has_rsample:
            raise ValueError(f"objective {objective!r} needs a reparameterized guide; site {site['name']!r} is not")
