"""A learned factorized entropy model: the prior of the rate-distortion autoencoder (Ballé et al. 2017).

Each latent dimension j has a flexible univariate density, a mixture of K logistics with CDF
F_j(v) = sum_k pi_jk sigmoid((v - m_jk) / s_jk), convolved with U(-1/2, 1/2) so that it can score
the noisy codes z~ = y + u of training:

    p~_j(v) = F_j(v + 1/2) - F_j(v - 1/2)

At an integer n this is exactly the probability mass of the rounded code, so -log2 p~(round(y)) is
the code length an entropy coder achieves (``pyro_vae.inference.coding.entropy_coding``), and the masses over the
integers telescope to F(+inf) - F(-inf) = 1. Seed 003: |z|_Phi = -log2 p_Phi(z) is a code length.
"""
from __future__ import annotations

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution
from torch import nn
from torch.distributions import constraints

from .priors import PRIORS, ComponentsConfig, Prior


class NoisyLogisticMixture(TorchDistribution):
    """Univariate per element of the batch: a logistic mixture (last dim K) convolved with U(-1/2, 1/2)."""

    arg_constraints = {"logits": constraints.real, "locs": constraints.real, "scales": constraints.positive}
    support = constraints.real
    has_rsample = False

    def __init__(self, logits: torch.Tensor, locs: torch.Tensor, scales: torch.Tensor, validate_args=None):
        self.logits, self.locs, self.scales = torch.broadcast_tensors(logits, locs, scales)
        super().__init__(self.logits.shape[:-1], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        shape = torch.Size(batch_shape) + self.logits.shape[-1:]
        return NoisyLogisticMixture(self.logits.expand(shape), self.locs.expand(shape), self.scales.expand(shape))

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.logits, -1)
        return (weights * torch.sigmoid((value.unsqueeze(-1) - self.locs) / self.scales)).sum(-1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """log [F(v + 1/2) - F(v - 1/2)], per component stably: log sig(a) + log sig(-b) + log(1 - e^(b - a))."""
        v = value.unsqueeze(-1)
        a, b = (v + 0.5 - self.locs) / self.scales, (v - 0.5 - self.locs) / self.scales
        log_diff = F.logsigmoid(a) + F.logsigmoid(-b) + torch.log1p(-torch.exp(-1.0 / self.scales))
        return torch.logsumexp(torch.log_softmax(self.logits, -1) + log_diff, -1)

    def sample(self, sample_shape=torch.Size()):
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            k = dist.Categorical(logits=self.logits).sample(sample_shape).unsqueeze(-1)
            loc, scale = self.locs.expand(shape + self.logits.shape[-1:]).gather(-1, k), \
                self.scales.expand(shape + self.logits.shape[-1:]).gather(-1, k)
            u = torch.rand(shape, device=self.locs.device).clamp(1e-6, 1 - 1e-6)
            logistic = loc.squeeze(-1) + scale.squeeze(-1) * torch.logit(u)
            return logistic + torch.rand(shape, device=self.locs.device) - 0.5


@PRIORS.register("entropy_model")
class FactorizedEntropyPrior(Prior):
    """p~(z) = prod_j p~_j(z_j): K logistics per dimension (``--prior-components``), all learned."""

    factorized = True
    Config = ComponentsConfig

    @classmethod
    def from_config(cls, config, latent_dim, event_shape):
        """The prior a model config names, with K = ``prior_components`` logistics per dimension (at most 5)."""
        return cls(latent_dim, config.prior_components)

    def __init__(self, latent_dim: int, num_components: int = 3):
        super().__init__(latent_dim)
        k = max(1, min(num_components, 5))
        self.logits = nn.Parameter(torch.zeros(latent_dim, k))
        self.locs = nn.Parameter(torch.linspace(-1.0, 1.0, k).repeat(latent_dim, 1))
        self.raw_scales = nn.Parameter(torch.zeros(latent_dim, k))

    def univariate(self) -> NoisyLogisticMixture:
        """The per-dimension densities p~_j as one batch of ``latent_dim`` univariate noisy logistic mixtures."""
        return NoisyLogisticMixture(self.logits, self.locs, F.softplus(self.raw_scales) + 1e-2)

    def distribution(self):
        """p~(z) = prod_j p~_j(z_j): ``univariate()`` with its dimension as the event."""
        return self.univariate().to_event(1)

    @torch.no_grad()
    def integer_masses(self, low: int, high: int) -> torch.Tensor:
        """(Z, high - low + 1) probability masses of the integers low..high, in float64."""
        grid = torch.arange(low, high + 1, dtype=torch.float64, device=self.locs.device)
        u = self.univariate()
        mixture = NoisyLogisticMixture(u.logits.double().unsqueeze(1), u.locs.double().unsqueeze(1),
                                       u.scales.double().unsqueeze(1))
        return mixture.log_prob(grid.expand(self.latent_dim, -1)).exp()
