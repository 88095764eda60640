"""Amortized diagonal-Gaussian guide q(z | x) = N(mu(x), diag(sigma(x)^2)).

Kingma & Welling 2013 (seed 001): the encoder outputs (mu, sigma) and
z = mu + sigma * eps, eps ~ N(0, I) (reparameterization). sigma is
softplus(raw) + min_scale, which stays positive and finite where exp(raw) would
overflow or underflow.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
import pyro
import pyro.distributions as dist
from pyro.nn import PyroModule
from torch import nn

from models.vae import data_plate

from .registry import GUIDES


@GUIDES.register("diagonal_normal")
class DiagonalNormalGuide(PyroModule):
    """q(z | x): an encoder network with 2 * latent_dim outputs -> (loc, scale).

    Its site ``"z"`` and plate ``"data"`` match ``VAEModel``'s, and it takes the
    same arguments, so ``SVI(model, guide, ...)`` pairs them directly.
    """

    def __init__(self, encoder: nn.Module, latent_dim: int, min_scale: float = 1e-5):
        super().__init__()
        self.encoder = encoder
        self.latent_dim = latent_dim
        self.min_scale = min_scale

    def posterior_params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.encoder(x)
        loc, raw_scale = raw.split(self.latent_dim, dim=-1)
        return loc, F.softplus(raw_scale) + self.min_scale

    def posterior(self, x: torch.Tensor) -> dist.TorchDistribution:
        """q(z | x) as a distribution with batch shape (B,) and event shape (Z,)."""
        loc, scale = self.posterior_params(x)
        return dist.Normal(loc, scale).to_event(1)

    def forward(self, x: Optional[torch.Tensor] = None, num_data: Optional[int] = None,
                subsample: Optional[torch.Tensor] = None, batch_size: Optional[int] = None):
        if x is None:
            raise ValueError("the guide q(z | x) needs data x")
        with data_plate(x.shape[0], num_data, subsample, x.device):
            return pyro.sample("z", self.posterior(x))
