"""Deterministic guide q(z | x) = delta(z - f(x)): a point code.

With it the ELBO is log p(x | f(x)) + log p(f(x)) (log q = 0): the plain
autoencoder with a prior penalty, i.e. MAP of the code; hard EM and the
rate-distortion autoencoder (seed 003) build on it.
"""
from __future__ import annotations

import pyro.distributions as dist

from .base import AmortizedGuide
from .registry import GUIDES


@GUIDES.register("delta")
class DeltaGuide(AmortizedGuide):
    """q(z | x) = δ(z - f(x)): a point code, the encoder's Z outputs (the autoencoder's guide; log q = 0)."""

    deterministic = True
    factorized = True
    posterior_kind = "point"

    @classmethod
    def encoder_outputs(cls, latent_dim: int) -> int:
        """Z: the encoder outputs the code itself."""
        return latent_dim

    def posterior(self, x, y=None):
        """Delta(f(x)) with event shape (Z,)."""
        return dist.Delta(self.encode(x, y)).to_event(1)

    def code(self, x, y=None, draws: int = 64):
        """The point f(x) itself."""
        return self.encode(x, y)
