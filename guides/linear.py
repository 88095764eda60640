"""The linear VAE's encoder: q(z | x) = N(A x + c, diag(s^2)), one s for all x (Lucas et al. 2019).

For probabilistic PCA the exact posterior is N(M^-1 W^T (x - b), sigma^2 M^-1): linear in x,
with one covariance for every x, diagonal at the rotation of the maximum-likelihood W that
makes W^T W diagonal. So this guide can be exact at the optimum, and SVI on the linear VAE
reaches the closed-form maximum likelihood (Lucas et al. 2019, "Don't blame the ELBO!").
"""
from __future__ import annotations

from typing import Optional

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.nn import PyroModule
from torch import nn

from pyro_vae.models.vae import data_plate


class LinearGaussianGuide(PyroModule):
    """q(z | x) = N(A x + c, diag(s²)), one s for every x: the linear VAE's encoder (Lucas et al. 2019).

    pPCA's exact posterior N(M⁻¹ Wᵀ (x - b), σ² M⁻¹) has this form at the maximum-likelihood rotation of W, so
    the guide can be exact and SVI on the linear VAE reaches the closed-form maximum likelihood.
    """

    def __init__(self, data_dim: int, latent_dim: int, min_scale: float = 1e-5):
        super().__init__()
        self.latent_dim, self.min_scale = latent_dim, min_scale
        self.linear = nn.Linear(data_dim, latent_dim)
        self.raw_scale = nn.Parameter(torch.zeros(latent_dim))

    def posterior(self, x: torch.Tensor) -> dist.TorchDistribution:
        """N(A x + c, diag(s²)) for each row of ``x`` (N, D), event shape (Z,)."""
        scale = F.softplus(self.raw_scale) + self.min_scale
        return dist.Normal(self.linear(x), scale.expand(x.shape[:-1] + (self.latent_dim,))).to_event(1)

    def forward(self, x: Optional[torch.Tensor] = None, y=None, num_data: Optional[int] = None,
                subsample: Optional[torch.Tensor] = None, batch_size: Optional[int] = None):
        """The guide program: z ~ ``posterior(x)`` in the ``"data"`` plate."""
        if x is None:
            raise ValueError("the guide q(z | x) needs data x")
        with data_plate(x.shape[0], num_data, subsample, x.device):
            return pyro.sample("z", self.posterior(x))
