"""Probabilistic PCA as a Pyro program, with its closed forms (Tipping & Bishop 1999).

    z ~ N(0, I_q),   x | z ~ N(W z + b, sigma^2 I_D)   =>   x ~ N(b, C),  C = W W^T + sigma^2 I_D

The marginal is Gaussian, so ``log p(x)`` is exact; the posterior
p(z | x) = N(M^-1 W^T (x - b), sigma^2 M^-1) with M = W^T W + sigma^2 I_q is exact
too, which makes EM exact (seed 003: EM is coordinate ascent on the ELBO with the
E-step closing the gap). The maximum-likelihood solution is known in closed form:
b = mean(x), sigma^2 = mean of the D - q smallest eigenvalues of the sample
covariance S, W = U_q (Lambda_q - sigma^2 I)^(1/2) (up to a rotation).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

from .vae import data_plate


@dataclass
class PPCAParams:
    """W (D, q), b (D,), sigma^2 (a float)."""

    weight: torch.Tensor
    bias: torch.Tensor
    sigma2: float


def ppca_log_likelihood(x: torch.Tensor, params: PPCAParams) -> torch.Tensor:
    """log N(x_n; b, W W^T + sigma^2 I) for each row of ``x`` (exact)."""
    W = params.weight
    cov = W @ W.T + params.sigma2 * torch.eye(W.shape[0], dtype=W.dtype, device=W.device)
    return torch.distributions.MultivariateNormal(params.bias, covariance_matrix=cov).log_prob(x)


def sample_covariance(x: torch.Tensor, mean: Optional[torch.Tensor] = None) -> torch.Tensor:
    centered = x - (x.mean(0) if mean is None else mean)
    return centered.T @ centered / x.shape[0]


def ppca_maximum_likelihood(x: torch.Tensor, latent_dim: int) -> PPCAParams:
    """The global maximum of sum_n log p(x_n) (Tipping & Bishop 1999, eqs. 7-8), with R = I."""
    if not 0 < latent_dim < x.shape[1]:
        raise ValueError(f"latent_dim must be in 1..{x.shape[1] - 1}, got {latent_dim}")
    mean = x.mean(0)
    eigvals, eigvecs = torch.linalg.eigh(sample_covariance(x, mean))  # ascending
    eigvals, eigvecs = eigvals.flip(0), eigvecs.flip(1)
    sigma2 = float(eigvals[latent_dim:].mean())
    scale = (eigvals[:latent_dim] - sigma2).clamp(min=0).sqrt()
    return PPCAParams(eigvecs[:, :latent_dim] * scale, mean, sigma2)


def ppca_posterior(x: torch.Tensor, params: PPCAParams) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact p(z | x): means (N, q) and the shared covariance sigma^2 M^-1 (q, q)."""
    W = params.weight
    M = W.T @ W + params.sigma2 * torch.eye(W.shape[1], dtype=W.dtype, device=W.device)
    M_inv = torch.linalg.inv(M)
    return (x - params.bias) @ W @ M_inv.T, params.sigma2 * M_inv


def largest_principal_angle(a: torch.Tensor, b: torch.Tensor) -> float:
    """The largest principal angle (radians) between the column spaces of ``a`` and ``b``."""
    qa, qb = torch.linalg.qr(a)[0], torch.linalg.qr(b)[0]
    cosines = torch.linalg.svdvals(qa.T @ qb).clamp(max=1.0)
    return float(torch.arccos(cosines.min()))


class PPCAModel(PyroModule):
    """The linear-Gaussian model as a Pyro program: ``z`` and ``x`` sites in the ``"data"`` plate."""

    def __init__(self, data_dim: int, latent_dim: int, init_scale: float = 0.1):
        super().__init__()
        self.latent_dim, self.data_dim = latent_dim, data_dim
        self.weight = nn.Parameter(init_scale * torch.randn(data_dim, latent_dim))
        self.bias = nn.Parameter(torch.zeros(data_dim))
        self.log_sigma = nn.Parameter(torch.zeros(()))

    def params(self) -> PPCAParams:
        """The current W, b and sigma^2 as ``PPCAParams`` (detached)."""
        return PPCAParams(self.weight.detach(), self.bias.detach(), math.exp(2 * float(self.log_sigma.detach())))

    def set_params(self, params: PPCAParams) -> None:
        """Set W, b and sigma^2 from ``PPCAParams`` (an EM step's or the closed-form solution), in place."""
        with torch.no_grad():
            self.weight.copy_(params.weight)
            self.bias.copy_(params.bias)
            self.log_sigma.fill_(0.5 * math.log(params.sigma2))

    def forward(self, x: Optional[torch.Tensor] = None, y=None, num_data: Optional[int] = None,
                subsample: Optional[torch.Tensor] = None, batch_size: Optional[int] = None):
        """z ~ N(0, I_q), x ~ N(W z + b, sigma^2 I_D) in the ``"data"`` plate (the arguments as ``VAEModel.forward``'s)."""
        batch = x.shape[0] if x is not None else (batch_size or 1)
        device = self.weight.device
        with data_plate(batch, num_data, subsample, device):
            zeros = torch.zeros(self.latent_dim, dtype=self.weight.dtype, device=device)
            z = pyro.sample("z", dist.Normal(zeros, 1.0).to_event(1))
            loc = z @ self.weight.T + self.bias
            return pyro.sample("x", dist.Normal(loc, self.log_sigma.exp()).to_event(1), obs=x)
