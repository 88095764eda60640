"""Normalizing-flow guide: a diagonal Gaussian base pushed through K inverse
autoregressive flows conditioned on an encoder context h(x) (Kingma et al. 2016),
``pyro.distributions.transforms.conditional_affine_autoregressive``:

    z_0 ~ N(mu(x), diag(sigma(x)^2)),  z_k = mu_k(z_{k-1}, h) + sigma_k(z_{k-1}, h) * z_{k-1}
    log q(z_K | x) = log N(z_0) - sum_k log |det dz_k / dz_{k-1}|

Sampling and scoring the sampled z are both one parallel pass (Pyro caches z_0).
"""
from __future__ import annotations

import torch.nn.functional as F
import pyro.distributions as dist
import pyro.distributions.transforms as T
from torch import nn

from .base import AmortizedGuide
from .registry import GUIDES


@GUIDES.register("iaf")
class IAFGuide(AmortizedGuide):
    def __init__(self, encoder, latent_dim: int, num_flows: int = 2, context_dim: int = 0,
                 min_scale: float = 1e-5):
        super().__init__(encoder, latent_dim)
        self.min_scale = min_scale
        self.context_dim = context_dim or 2 * latent_dim
        hidden = [4 * latent_dim + 8]
        self.flows = nn.ModuleList([T.conditional_affine_autoregressive(latent_dim, self.context_dim, hidden)
                                    for _ in range(num_flows)])

    @classmethod
    def encoder_outputs(cls, latent_dim: int, context_dim: int = 0) -> int:
        return 2 * latent_dim + (context_dim or 2 * latent_dim)

    def posterior(self, x, y=None):
        out = self.encode(x, y)
        loc, raw_scale, context = out.split([self.latent_dim, self.latent_dim, self.context_dim], dim=-1)
        base = dist.Normal(loc, F.softplus(raw_scale) + self.min_scale).to_event(1)
        return dist.TransformedDistribution(base, [flow.condition(context) for flow in self.flows])
