"""Likelihoods p(x | z), one small class per distribution (as pyro.contrib.cevae).

A likelihood turns the decoder's output tensor into a distribution over one
data point; ``event_dims`` pixel dimensions are summed into the event. Each
declares ``params_per_pixel``: how many decoder outputs it needs per pixel.
"""
from __future__ import annotations


import torch
import pyro.distributions as dist
from pyro.nn import PyroModule

from .registry import Registry

LIKELIHOODS: Registry = Registry("likelihood")


class Likelihood(PyroModule):
    params_per_pixel: int = 1

    def __init__(self, event_shape: torch.Size):
        super().__init__()
        self.event_shape = torch.Size(event_shape)

    def forward(self, decoded: torch.Tensor) -> dist.TorchDistribution:
        raise NotImplementedError

    def mean(self, decoded: torch.Tensor) -> torch.Tensor:
        """E[x | z]: what reconstructions and sample grids show."""
        raise NotImplementedError


@LIKELIHOODS.register("bernoulli")
class BernoulliLikelihood(Likelihood):
    """x_i ~ Bernoulli(sigmoid(logit_i)); -log p = binary cross-entropy (seed 001).

    Grey levels in [0, 1] are allowed (the usual cross-entropy on non-binarized
    data); the result is then not a normalized density over [0, 1].
    """

    def forward(self, decoded):
        return dist.Bernoulli(logits=decoded, validate_args=False).to_event(len(self.event_shape))

    def mean(self, decoded):
        return torch.sigmoid(decoded)


@LIKELIHOODS.register("gaussian")
class FixedScaleGaussianLikelihood(Likelihood):
    """x_i ~ N(mu_i, sigma^2) with fixed sigma; sigma = 1 is seed 000's
    fit = 1/2 ||x - mu||^2 + (D/2) log 2 pi."""

    def __init__(self, event_shape, scale: float = 1.0):
        super().__init__(event_shape)
        if not scale > 0:
            raise ValueError(f"Gaussian likelihood scale must be positive, got {scale}")
        self.scale = float(scale)

    def forward(self, decoded):
        return dist.Normal(decoded, self.scale).to_event(len(self.event_shape))

    def mean(self, decoded):
        return decoded


