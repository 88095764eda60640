"""Normalizing-flow guide: a diagonal Gaussian base pushed through K inverse
autoregressive flows conditioned on an encoder context h(x) (Kingma et al. 2016),
``pyro.distributions.transforms.conditional_affine_autoregressive``:

    z_0 ~ N(mu(x), diag(sigma(x)^2)),  z_k = mu_k(z_{k-1}, h) + sigma_k(z_{k-1}, h) * z_{k-1}
    log q(z_K | x) = log N(z_0) - sum_k log |det dz_k / dz_{k-1}|

Sampling and scoring the sampled z are both one parallel pass (Pyro caches z_0).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
import pyro.distributions as dist
import pyro.distributions.transforms as T
from torch import nn

from pyro_vae.models.networks import flow_hidden_width
from pyro_vae.models.registry import option

from .base import AmortizedGuide, MinScaleConfig
from .registry import GUIDES


@GUIDES.register("iaf")
class IAFGuide(AmortizedGuide):
    """q(z | x): a diagonal Gaussian pushed through ``num_flows`` inverse autoregressive flows conditioned on the
    encoder's context (Kingma et al. 2016)."""

    @dataclass
    class Config(MinScaleConfig):
        flows: int = option(2, "inverse autoregressive layers of the iaf guide", flag="--guide-flows", above=0)

    @classmethod
    def from_config(cls, config, encoder, latent_dim):
        """The guide a guide config names on ``encoder``: ``flows`` layers, floor ``min_scale``."""
        return cls(encoder, latent_dim, num_flows=config.flows, min_scale=config.min_scale)

    def __init__(self, encoder, latent_dim: int, num_flows: int = 2, context_dim: int = 0,
                 min_scale: float = 1e-5):
        super().__init__(encoder, latent_dim)
        self.min_scale = min_scale
        self.context_dim = context_dim or 2 * latent_dim
        hidden = [flow_hidden_width(latent_dim)]
        self.flows = nn.ModuleList([T.conditional_affine_autoregressive(latent_dim, self.context_dim, hidden)
                                    for _ in range(num_flows)])

    @classmethod
    def encoder_outputs(cls, latent_dim: int, context_dim: int = 0) -> int:
        """2 Z + C: the base Gaussian's location and raw scale, and the flows' context h(x) (C = 2 Z by default)."""
        return 2 * latent_dim + (context_dim or 2 * latent_dim)

    def posterior(self, x, y=None):
        """The base N(mu(x), diag(sigma(x)^2)) pushed through the flows conditioned on h(x).

        Its log-density is log N(z_0) - sum_k ``log |det ∂z_k/∂z_(k-1)|``; it has no closed-form mean.
        """
        out = self.encode(x, y)
        loc, raw_scale, context = out.split([self.latent_dim, self.latent_dim, self.context_dim], dim=-1)
        base = dist.Normal(loc, F.softplus(raw_scale) + self.min_scale).to_event(1)
        return dist.TransformedDistribution(base, [flow.condition(context) for flow in self.flows])
