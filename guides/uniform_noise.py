"""The rate-distortion autoencoder's encoder as a guide: q(z | x) = U(y - 1/2, y + 1/2), y = g_a(x).

Additive uniform noise stands in for rounding during training (Ballé et al. 2017). Its density is 1
on its support, so log q = 0 and the ELBO becomes E[log p(x | z~) + log p~(z~)]: distortion plus the
code length under the entropy model, with no entropy term, which is the deterministic encoder of
seed 003's rate-distortion autoencoder. At test time the code is ``round(y)`` (``quantized_code``).
"""
from __future__ import annotations

import pyro.distributions as dist
import torch

from .delta import DeltaGuide
from .registry import GUIDES


@GUIDES.register("uniform_noise")
class UniformNoiseGuide(DeltaGuide):
    """The Delta guide's point code y = g_a(x), blurred by U(-1/2, 1/2) (same encoder width)."""

    deterministic = False
    posterior_kind = "box"

    def posterior(self, x, y=None):
        """U(y - 1/2, y + 1/2) per dimension around y = g_a(x): density 1 on the box, so log q = 0."""
        center = self.encode(x, y)
        return dist.Uniform(center - 0.5, center + 0.5).to_event(1)

    def code(self, x: torch.Tensor, y=None, draws: int = 64) -> torch.Tensor:
        """E_q[z | x] = y, the centre of the box."""
        return self.encode(x, y)

    @torch.no_grad()
    def quantized_code(self, x: torch.Tensor, y=None) -> torch.Tensor:
        """The quantized latent round(g_a(x)), as integers."""
        return torch.round(self.encode(x, y)).long()
