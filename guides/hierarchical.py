"""The bottom-up guide of a hierarchical VAE (Burda et al. 2015, section 5):

    q(z_1, ..., z_L | x) = q(z_1 | x) prod_{l=1}^{L-1} q(z_{l+1} | z_l)

each factor a diagonal Gaussian whose parameters a network computes from the layer below (the first from
the pixels). Sites ``z1`` ... ``zL`` in the ``"data"`` plate, as ``pyro_vae.models.hierarchical.HierarchicalVAEModel``
samples them.
"""
from __future__ import annotations

from typing import Optional, Sequence

import pyro
import pyro.distributions as dist
import torch
from torch.distributions import constraints
from pyro.nn import PyroModule
from torch import nn

from pyro_vae.models.hierarchical import site
from pyro_vae.models.vae import data_plate


class LayeredPosterior(dist.TorchDistribution):
    """q(z_1 | x) prod_l q(z_{l+1} | z_l) as one distribution over the concatenated code [z_1, ..., z_L]:
    draws descend the guide's layers (reparameterized), ``log_prob`` sums the factors."""

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, first: dist.TorchDistribution, links: Sequence[nn.Module], dims: Sequence[int]):
        self.first, self.links, self.dims = first, list(links), list(dims)
        super().__init__(first.batch_shape, torch.Size([sum(dims)]), validate_args=False)

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        codes = [self.first.rsample(sample_shape)]
        for link in self.links:
            codes.append(link(codes[-1]).rsample())
        return torch.cat(codes, dim=-1)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        parts = z.split(self.dims, dim=-1)
        total = self.first.log_prob(parts[0])
        for link, below, above in zip(self.links, parts, parts[1:]):
            total = total + link(below).log_prob(above)
        return total


class BottomUpGuide(PyroModule):
    """``layers[0]`` maps x to the distribution of z_1 (its input flattened; ``log1p``: log(1 + x), for
    counts), ``layers[l]`` z_l to z_{l+1}. Its codes are z_1's: ``posterior(x)`` = q(z_1 | x), ``code(x)``
    = E_q[z_1 | x], and the program returns z_1 (what the decoder reads)."""

    posterior_kind = "gaussian"

    def __init__(self, layers: Sequence[nn.Module], event_shape: torch.Size, log1p: bool = False):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.event_dims = len(event_shape)
        self.log1p = log1p

    @property
    def latent_dim(self) -> int:
        return self.layers[0].out_dim

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(-self.event_dims)
        return torch.log1p(h) if self.log1p else h

    def posterior(self, x: torch.Tensor, y=None):
        return self.layers[0](self._input(x))

    def joint_posterior(self, x: torch.Tensor, y=None) -> LayeredPosterior:
        """q(z_1, ..., z_L | x) over the concatenated code (what ``vae diagnose`` holds against NUTS)."""
        first = self.posterior(x)
        dims = [first.event_shape[0]]
        for link in self.layers[1:]:  # each link's width, from its distribution at one code
            dims.append(link(first.mean.new_zeros(1, dims[-1])).event_shape[0])
        return LayeredPosterior(first, self.layers[1:], dims)

    def top_posterior(self, x: torch.Tensor) -> dist.TorchDistribution:
        """q(z_L | m_{L-1}(x)): the top layer's factor with the layers below passed by their means
        (m_1(x) = E q(z_1 | x), m_{l+1} = E q(z_{l+1} | m_l)); what the VampPrior mixes at its pseudo-inputs."""
        h = self._input(x)
        for link in self.layers[:-1]:
            h = link(h).mean
        return self.layers[-1](h)

    def code(self, x: torch.Tensor, y=None) -> torch.Tensor:
        return self.posterior(x).mean

    def forward(self, x: Optional[torch.Tensor] = None, num_data: Optional[int] = None,
                subsample: Optional[torch.Tensor] = None, batch_size: Optional[int] = None):
        if x is None:
            raise ValueError("the guide q(z | x) needs data x")
        with data_plate(x.shape[0], num_data, subsample, x.device):
            codes = [self._input(x)]
            for layer, link in enumerate(self.layers, start=1):
                codes.append(pyro.sample(site(layer), link(codes[-1])))
            return codes[1]


class TopLayerView:
    """The bottom-up guide as the VampPrior at the top of a hierarchy sees it: ``posterior(u)`` =
    ``top_posterior(u)``, a diagonal Gaussian over z_L for each pseudo-input u. Tomczak & Welling (2018)'s
    two-layer model mixes q(z_2 | u) of a guide that reaches z_2 from x directly; a bottom-up guide reaches it
    through z_1, whose draws have no closed-form mixture, so the view passes z_1 by its mean. The prior is
    p(z_L) = (1/K) sum_k q(z_L | m_{L-1}(u_k)): a proper mixture of Gaussians whatever the view's choice."""

    mixable = True
    posterior_kind = "gaussian"

    def __init__(self, guide: BottomUpGuide):
        self.guide = guide

    def posterior(self, u: torch.Tensor, y=None) -> dist.TorchDistribution:
        return self.guide.top_posterior(u)
