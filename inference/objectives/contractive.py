"""Contractive penalty (Rifai et al. 2011): -ELBO + lambda sum_n ||d f(x_n) / d x_n||_F^2, f the encoder's code.

f is the guide's code ``guide.code(x)`` (the Delta guide's point, a Gaussian guide's mean). The squared
Frobenius norm of the Jacobian comes from ``torch.func``: ``vmap(jacrev(f))``, one (Z, D) Jacobian per point.
A small penalty flattens the code around the data: nearby inputs, nearby codes.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.func import jacrev, vmap

from pyro_vae.models.registry import option
from pyro_vae.inference.objectives.base import PointwiseObjective
from pyro_vae.inference.objectives.elbo import particles_option
from pyro_vae.inference.objectives.weights import weight_terms


def encoder_jacobian_norm(guide, x: torch.Tensor) -> torch.Tensor:
    """||d f / d x||_F^2 per point, (B,)."""
    def code(xi):
        return guide.code(xi.unsqueeze(0))[0]

    jac = vmap(jacrev(code))(x)  # (B, Z, *event)
    return jac.pow(2).flatten(1).sum(-1)


class ContractiveELBO(PointwiseObjective):
    """The negative ELBO plus the contractive penalty of Rifai et al. 2011: -ELBO + λ sum_n ‖∂f(x_n)/∂x_n‖²_F.

    f is the guide's deterministic code ``guide.code(x)``; a small λ flattens the code around the data (nearby
    inputs, nearby codes). With a Delta guide and a flat prior it is the contractive autoencoder.

    Parameters
    ----------
    weight : float
        λ ≥ 0, the weight of the squared Frobenius norm of the encoder's Jacobian.
    num_particles : int
        L draws z ~ q(z | x) per data point for the ELBO part.
    """

    @dataclass
    class Config:
        contractive_weight: float = option(0.1, "objective contractive: lambda of the encoder-Jacobian penalty",
                                           minimum=0)
        num_particles: int = particles_option()

    @classmethod
    def pairing_problem(cls, options, prior_cls, guide_cls):
        """Why this objective cannot train this prior and guide (None: it can): a flow guide has no deterministic code."""
        if getattr(guide_cls, "posterior_kind", "gaussian") == "flow":
            return ("the contractive penalty is the Jacobian of a deterministic code, and this guide's code (the "
                    "mean of a flow) is itself a Monte Carlo estimate; use --guide delta, uniform_noise, diagonal_normal "
                    "or full_covariance")
        return None

    def __init__(self, weight: float = 0.1, num_particles: int = 1):
        super().__init__(num_particles)
        if not weight >= 0:
            raise ValueError(f"the contractive weight must be >= 0, got {weight}")
        self.weight = weight

    @classmethod
    def from_config(cls, c) -> "ContractiveELBO":
        """The objective an ``ObjectiveConfig`` describes (its ``contractive_weight`` and ``num_particles``)."""
        return cls(c.contractive_weight, c.num_particles)

    def differentiable_loss(self, model, guide, x, *args, **kwargs) -> torch.Tensor:
        """-ELBO + λ sum_n ‖∂f(x_n)/∂x_n‖²_F for the batch ``x`` (the Jacobians from ``torch.func``)."""
        terms = weight_terms(model, guide, self.num_particles, x, *args, **kwargs)
        neg_elbo = -terms.log_weights.mean(0).sum()
        return terms.scale * (neg_elbo + self.weight * encoder_jacobian_norm(guide, x).sum())
