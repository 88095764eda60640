"""Full-covariance Gaussian guide q(z | x) = N(mu(x), L(x) L(x)^T) (seed 001):
the encoder outputs mu and the Z(Z+1)/2 entries of a lower-triangular L whose
diagonal is softplus(raw) + min_scale > 0, and z = mu + L eps."""
from __future__ import annotations

import torch
import torch.nn.functional as F
import pyro.distributions as dist

from .base import AmortizedGuide
from .registry import GUIDES


@GUIDES.register("full_covariance")
class FullCovarianceGuide(AmortizedGuide):
    """q(z | x) = N(mu(x), L(x) L(x)ᵀ): a Gaussian with a full covariance, L lower-triangular from the encoder.

    The encoder gives Z + Z(Z+1)/2 outputs: mu and the entries of L, whose diagonal is softplus(raw) + min_scale > 0;
    z = mu + L ε with ε ~ N(0, I), the reparameterization through the Cholesky factor.
    """

    mixable = True
    posterior_kind = "gaussian"

    def __init__(self, encoder, latent_dim: int, min_scale: float = 1e-5):
        super().__init__(encoder, latent_dim)
        self.min_scale = min_scale
        rows, cols = torch.tril_indices(latent_dim, latent_dim)
        self.register_buffer("rows", rows)
        self.register_buffer("cols", cols)

    @classmethod
    def encoder_outputs(cls, latent_dim: int) -> int:
        """Z + Z(Z+1)/2: the location and the lower triangle of L."""
        return latent_dim + latent_dim * (latent_dim + 1) // 2

    def posterior_params(self, x: torch.Tensor, y=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu(x), L(x)): the location (B, Z) and the lower-triangular scale (B, Z, Z) with a positive diagonal."""
        out = self.encode(x, y)
        loc, entries = out[..., : self.latent_dim], out[..., self.latent_dim:]
        tril = entries.new_zeros(entries.shape[:-1] + (self.latent_dim, self.latent_dim))
        tril[..., self.rows, self.cols] = entries
        diag = F.softplus(tril.diagonal(dim1=-2, dim2=-1)) + self.min_scale
        tril = tril.tril(-1) + torch.diag_embed(diag)
        return loc, tril

    def posterior(self, x, y=None):
        """MultivariateNormal(mu(x), scale_tril = L(x))."""
        loc, tril = self.posterior_params(x, y)
        return dist.MultivariateNormal(loc, scale_tril=tril)
