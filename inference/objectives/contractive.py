"""Contractive penalty (Rifai et al. 2011): -ELBO + lambda sum_n ||d f(x_n) / d x_n||_F^2, f the encoder's code.

f is the guide's code (the Delta guide's point, a Gaussian guide's mean: the first ``latent_dim`` encoder
outputs). The squared Frobenius norm of the Jacobian comes from ``torch.func``: ``vmap(jacrev(f))``, one
(Z, D) Jacobian per point. A small penalty flattens the code around the data: nearby inputs, nearby codes.
"""
from __future__ import annotations

import torch
from torch.func import jacrev, vmap

from .base import PointwiseObjective
from .weights import weight_terms


def encoder_jacobian_norm(guide, x: torch.Tensor) -> torch.Tensor:
    """||d f / d x||_F^2 per point, (B,)."""
    def code(xi):
        return guide.encode(xi.unsqueeze(0))[0, : guide.latent_dim]

    jac = vmap(jacrev(code))(x)  # (B, Z, *event)
    return jac.pow(2).flatten(1).sum(-1)


class ContractiveELBO(PointwiseObjective):
    def __init__(self, weight: float = 0.1, num_particles: int = 1):
        super().__init__(num_particles)
        self.weight = weight

    def differentiable_loss(self, model, guide, x, *args, **kwargs) -> torch.Tensor:
        terms = weight_terms(model, guide, self.num_particles, x, *args, **kwargs)
        neg_elbo = -terms.log_weights.mean(0).sum()
        return terms.scale * (neg_elbo + self.weight * encoder_jacobian_norm(guide, x).sum())
