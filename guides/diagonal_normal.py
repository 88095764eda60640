"""Amortized diagonal-Gaussian guide q(z | x) = N(mu(x), diag(sigma(x)^2)).

Kingma & Welling 2013 (seed 001): the encoder outputs (mu, sigma) and
z = mu + sigma * eps, eps ~ N(0, I) (reparameterization). sigma is
softplus(raw) + min_scale, which stays positive and finite where exp(raw) would
overflow or underflow.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
import pyro.distributions as dist

from .base import AmortizedGuide
from .registry import GUIDES


@GUIDES.register("diagonal_normal")
class DiagonalNormalGuide(AmortizedGuide):
    """q(z | x): an encoder with 2 * latent_dim outputs -> (loc, scale)."""

    mixable = True
    factorized = True
    posterior_kind = "gaussian"

    def __init__(self, encoder, latent_dim: int, min_scale: float = 1e-5):
        super().__init__(encoder, latent_dim)
        self.min_scale = min_scale

    def posterior_params(self, x: torch.Tensor, y=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu(x), sigma(x)), each (B, Z): the encoder's two halves, sigma = softplus(raw) + min_scale."""
        loc, raw_scale = self.encode(x, y).split(self.latent_dim, dim=-1)
        return loc, F.softplus(raw_scale) + self.min_scale

    def posterior(self, x, y=None):
        """N(mu(x), diag(sigma(x)^2)) with event shape (Z,)."""
        loc, scale = self.posterior_params(x, y)
        return dist.Normal(loc, scale).to_event(1)
