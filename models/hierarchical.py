"""A VAE with L stochastic layers as one Pyro program (Burda et al. 2015, section 5 and appendix C):

    z_L ~ p(z_L)                                           (a prior object: N(0, I) or any registered prior)
    z_l ~ N(mu_l(z_{l+1}), diag sigma_l(z_{l+1})^2),  l = L-1, ..., 1
    x   ~ p(x | decoder(z_1))                               (a likelihood object)

Sample sites are ``z1`` (next to x) ... ``zL`` (the top), in the same ``"data"`` plate as the one-layer
``VAEModel``; the objectives and estimators work on traces, so Trace_ELBO, IWAE and importance-sampled
log p(x) score it unchanged. Burda et al.'s two-layer network: stochastic layers of 100 and 50 units,
two deterministic tanh layers of 200 (between x and z_1) and 100 (between z_1 and z_2) units in each
direction. Its guide is ``pyro_vae.guides.hierarchical.BottomUpGuide``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.nn import PyroModule
from torch import nn

from .likelihoods import Likelihood
from .networks import mlp
from .vae import data_plate


def site(layer: int) -> str:
    """The sample site of stochastic layer ``layer`` (1: next to x)."""
    return f"z{layer}"


class GaussianLayer(nn.Module):
    """in (..., I) -> N(loc, diag scale^2) over (..., O): ``num_hidden_layers`` tanh layers of ``hidden_dim``
    units, then loc and scale = softplus(raw) + ``min_scale``; the link of one stochastic layer to the next."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int, num_hidden_layers: int = 2,
                 activation: str = "tanh", min_scale: float = 1e-5):
        super().__init__()
        self.out_dim, self.min_scale = out_dim, min_scale
        self.net = mlp(in_dim, hidden_dim, num_hidden_layers, 2 * out_dim, activation)

    def params(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, raw = self.net(h).split(self.out_dim, dim=-1)
        return loc, F.softplus(raw) + self.min_scale

    def forward(self, h: torch.Tensor) -> dist.TorchDistribution:
        return dist.Normal(*self.params(h)).to_event(1)


class HierarchicalVAEModel(PyroModule):
    """p(z_L) prod_l p(z_l | z_{l+1}) p(x | z_1). ``conditionals[i]`` maps z_{i+2} to the distribution of
    z_{i+1} (any module returning one: a ``GaussianLayer``, or a linear-Gaussian link in the tests)."""

    def __init__(self, prior: PyroModule, conditionals: Sequence[nn.Module], decoder: nn.Module,
                 likelihood: Likelihood, latent_dims: Sequence[int]):
        super().__init__()
        if len(conditionals) != len(latent_dims) - 1 or prior.latent_dim != latent_dims[-1]:
            raise ValueError(f"{len(latent_dims)} stochastic layers need {len(latent_dims) - 1} conditionals and a "
                             f"prior over the top layer's {latent_dims[-1]} units")
        self.prior, self.decoder, self.likelihood = prior, decoder, likelihood
        self.conditionals = nn.ModuleList(conditionals)
        self.latent_dims = tuple(latent_dims)

    @property
    def latent_dim(self) -> int:
        """The units of the layer next to x, z_1 (what the decoder reads)."""
        return self.latent_dims[0]

    def forward(self, x: Optional[torch.Tensor] = None, num_data: Optional[int] = None,
                subsample: Optional[torch.Tensor] = None, batch_size: Optional[int] = None):
        if x is None and batch_size is None:
            raise ValueError("HierarchicalVAEModel needs either data x or a batch_size to sample")
        batch = x.shape[0] if x is not None else batch_size
        device = x.device if x is not None else next(self.decoder.parameters()).device
        with data_plate(batch, num_data, subsample, device):
            z = pyro.sample(site(len(self.latent_dims)), self.prior(torch.Size([batch])))
            for layer in range(len(self.latent_dims) - 1, 0, -1):
                z = pyro.sample(site(layer), self.conditionals[layer - 1](z))
            return pyro.sample("x", self.likelihood(self.decoder(z)), obs=x)

    def layer_slices(self) -> dict:
        """``{site: slice}``: where each layer's units sit in the concatenated code [z_1, ..., z_L]."""
        bounds = [0] + torch.tensor(self.latent_dims).cumsum(0).tolist()
        return {site(layer): slice(bounds[layer - 1], bounds[layer]) for layer in range(1, len(bounds))}

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x_n, z_n) = log p(z_L) + sum_l log p(z_l | z_{l+1}) + log p(x_n | z_1) per point, for
        concatenated codes ``z`` (..., N, sum of units) in the order of ``layer_slices()``."""
        parts = z.split(self.latent_dims, dim=-1)
        total = self.prior(torch.Size([x.shape[0]])).log_prob(parts[-1])
        for layer in range(len(parts) - 1, 0, -1):
            total = total + self.conditionals[layer - 1](parts[layer]).log_prob(parts[layer - 1])
        return total + self.likelihood(self.decoder(parts[0])).log_prob(x)

    def descend(self, top: torch.Tensor) -> torch.Tensor:
        """z_1 drawn down the layers from draws ``top`` of z_L: what a prior sample decodes from."""
        z = top
        for layer in range(len(self.latent_dims) - 1, 0, -1):
            z = self.conditionals[layer - 1](z).sample()
        return z

    def decode(self, z1: torch.Tensor, y: None = None) -> torch.Tensor:
        """The decoder's output (the likelihood's parameters) for codes z_1 (unconditional: ``y`` is None)."""
        return self.decoder(z1)

    def decode_mean(self, z1: torch.Tensor, y: None = None) -> torch.Tensor:
        return self.likelihood.mean(self.decode(z1))
