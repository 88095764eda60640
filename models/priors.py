"""Priors p(z) over the latent code, one small class each.

A prior is a ``PyroModule`` whose ``forward(batch_shape)`` returns the
distribution of ``z`` with ``event_shape == (latent_dim,)``, so a learned prior
can hold parameters and the VAE model never changes when the prior does.
"""
from __future__ import annotations

import torch
import pyro.distributions as dist
from pyro.nn import PyroModule

from .registry import Registry

PRIORS: Registry = Registry("prior")


@PRIORS.register("normal")
class StandardNormalPrior(PyroModule):
    """p(z) = N(0, I) (Kingma & Welling 2013; seed 000: p(Z) = N(0, 1))."""

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        # Buffers follow the module to its device and stay out of the optimizer.
        self.register_buffer("loc", torch.zeros(latent_dim))
        self.register_buffer("scale", torch.ones(latent_dim))

    def forward(self, batch_shape: torch.Size = torch.Size()) -> dist.TorchDistribution:
        return dist.Normal(self.loc, self.scale).to_event(1).expand(batch_shape)
