"""Likelihoods p(x | z), one small class per distribution (as pyro.contrib.cevae).

A likelihood turns the decoder's output into a distribution over one data
point, with the pixel dimensions summed into the event. ``params_per_pixel``
says how many decoder outputs it needs per pixel (the decoder then returns
shape (..., P, *event_shape)); ``data`` says which observations it is a
density for, so a wrong pairing with the binarization fails before training.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
import pyro.distributions as dist
from pyro.nn import PyroModule
from torch import nn

from .registry import Registry, accepted, option

LIKELIHOODS: Registry = Registry("likelihood")

BINARY, UNIT_INTERVAL, EIGHT_BIT, REAL, COUNT = "binary", "unit_interval", "8bit", "real", "count"
DATA_KINDS = {BINARY: "0/1 values", UNIT_INTERVAL: "values in [0, 1]", EIGHT_BIT: "8-bit grey levels k/255 in [0, 1]",
              REAL: "real values", COUNT: "counts (integers >= 0)"}


def inverse_softplus(value: torch.Tensor) -> torch.Tensor:
    """r with softplus(r) = value, computed as value + log(1 - exp(-value)) (no overflow for large values)."""
    return value + torch.log(-torch.expm1(-value))


@dataclass
class ScaleConfig:
    likelihood_scale: float = option(1.0, "sigma of gaussian, b of laplace, initial sigma of the learned Gaussians, "
                                     "initial inverse dispersion theta of the negative binomials", above=0)


class Likelihood(PyroModule):
    """p(x | z) from the decoder's output: ``forward(decoded)`` returns the distribution of one data point's
    event, ``mean(decoded)`` its mean E[x | z]. Subclass it and register the class in ``LIKELIHOODS`` to add one;
    set ``static_structure = True`` on a subclass that reads no Python-side state that changes between steps, so
    that the captured engines may replay it (``pyro_vae.inference.programs``)."""

    params_per_pixel: int = 1
    data: str = REAL  # BINARY needs binarized data; EIGHT_BIT needs the raw 256 grey levels
    Config = ScaleConfig

    def __init__(self, event_shape: torch.Size, scale: float = 1.0):
        super().__init__()
        self.event_shape = torch.Size(event_shape)

    @classmethod
    def from_config(cls, config, event_shape: torch.Size) -> "Likelihood":
        """The likelihood a model config names: ``scale`` from ``likelihood_scale`` when the constructor takes it."""
        return cls(event_shape, **accepted(cls, scale=config.likelihood_scale))

    def _event(self, d: dist.TorchDistribution) -> dist.TorchDistribution:
        return d.to_event(len(self.event_shape))

    def _params(self, decoded: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Split the decoder's (..., P, *event_shape) output into its P parameters."""
        return decoded.unbind(-1 - len(self.event_shape))

    def forward(self, decoded: torch.Tensor) -> dist.TorchDistribution:
        """The distribution p(x | z) of one data point, its pixel dimensions summed into the event.

        Parameters
        ----------
        decoded : torch.Tensor
            The decoder's output, shape ``(..., *event_shape)``, or ``(..., P, *event_shape)`` for
            ``params_per_pixel = P > 1``.

        Returns
        -------
        pyro.distributions.TorchDistribution
            A distribution with ``event_shape == self.event_shape`` and the decoder's leading dimensions as batch.
        """
        raise NotImplementedError

    def mean(self, decoded: torch.Tensor) -> torch.Tensor:
        """E[x | z]: what reconstructions and sample grids show."""
        raise NotImplementedError


@LIKELIHOODS.register("bernoulli")
class BernoulliLikelihood(Likelihood):
    """x_i ~ Bernoulli(sigmoid(logit_i)); -log p = binary cross-entropy (seed 001)."""

    data = BINARY

    def forward(self, decoded):
        """Bernoulli(logits = decoded) per pixel, the pixels one event."""
        return self._event(dist.Bernoulli(logits=decoded, validate_args=False))

    def mean(self, decoded):
        """sigmoid(decoded): the pixel probabilities."""
        return torch.sigmoid(decoded)


@LIKELIHOODS.register("continuous_bernoulli")
class ContinuousBernoulliLikelihood(Likelihood):
    """x_i ~ CB(lambda_i) on [0, 1]: Bernoulli's kernel with its normalizer
    C(lambda) = 2 artanh(1 - 2 lambda) / (1 - 2 lambda) (Loaiza-Ganem & Cunningham 2019)."""

    data = UNIT_INTERVAL

    def forward(self, decoded):
        """ContinuousBernoulli(logits = decoded) per pixel, the pixels one event."""
        return self._event(dist.ContinuousBernoulli(logits=decoded))

    def mean(self, decoded):
        """The continuous Bernoulli's mean, λ/(2λ - 1) + 1/(2 artanh(1 - 2λ)) (not λ itself)."""
        return dist.ContinuousBernoulli(logits=decoded).mean


@LIKELIHOODS.register("gaussian")
class FixedScaleGaussianLikelihood(Likelihood):
    """x_i ~ N(mu_i, sigma^2), sigma fixed (``likelihood_scale``); sigma = 1 is seed 000's
    fit = 1/2 ||x - mu||^2 + (D/2) log 2 pi."""

    def __init__(self, event_shape, scale: float = 1.0):
        super().__init__(event_shape)
        if not scale > 0:
            raise ValueError(f"Gaussian likelihood scale must be positive, got {scale}")
        self.scale = float(scale)

    def forward(self, decoded):
        """N(decoded, sigma^2) per pixel, sigma the fixed ``scale``."""
        return self._event(dist.Normal(decoded, self.scale))

    def mean(self, decoded):
        """The decoder's output itself: the Gaussian's mean."""
        return decoded


@LIKELIHOODS.register("laplace")
class LaplaceLikelihood(FixedScaleGaussianLikelihood):
    """x_i ~ Laplace(mu_i, b): -log p = ``|x - mu|`` / b + log 2b, the L1 distortion
    that seed 003 credits with sharper samples than L2."""

    def forward(self, decoded):
        """Laplace(decoded, b) per pixel, b the fixed ``scale``."""
        return self._event(dist.Laplace(decoded, self.scale))


class _LearnedScaleGaussian(Likelihood):
    """x_i ~ N(mu_i, sigma_i^2) with sigma = softplus(raw) + 1e-3 learned."""

    MIN_SCALE = 1e-3

    def _scale(self, raw):
        return F.softplus(raw) + self.MIN_SCALE

    def mean(self, decoded):
        """mu: the Gaussian's location (the decoder's first output)."""
        return self._loc(decoded)

    def _loc(self, decoded):
        return decoded


@LIKELIHOODS.register("gaussian_learned")
class GlobalScaleGaussianLikelihood(_LearnedScaleGaussian):
    """One learned sigma shared by every pixel."""

    def __init__(self, event_shape, scale: float = 1.0):
        super().__init__(event_shape)
        self.raw_scale = nn.Parameter(inverse_softplus(torch.tensor(float(scale))))

    def forward(self, decoded):
        """N(decoded, sigma^2) per pixel, sigma = softplus(raw_scale) + 1e-3 the one learned scale."""
        return self._event(dist.Normal(decoded, self._scale(self.raw_scale)))


@LIKELIHOODS.register("gaussian_pixel")
class PixelScaleGaussianLikelihood(_LearnedScaleGaussian):
    """A learned sigma per pixel, shared by all data points."""

    def __init__(self, event_shape, scale: float = 1.0):
        super().__init__(event_shape)
        self.raw_scale = nn.Parameter(inverse_softplus(torch.full(self.event_shape, float(scale))))

    def forward(self, decoded):
        """N(decoded_i, sigma_i^2) per pixel i, sigma_i = softplus(raw_scale_i) + 1e-3 learned per pixel."""
        return self._event(dist.Normal(decoded, self._scale(self.raw_scale)))


@LIKELIHOODS.register("gaussian_decoder")
class DecoderScaleGaussianLikelihood(_LearnedScaleGaussian):
    """sigma(z) output by the decoder beside mu(z) (Kingma & Welling's Frey Face model)."""

    params_per_pixel = 2

    def forward(self, decoded):
        """N(mu(z), sigma(z)^2) per pixel, from the decoder's two outputs per pixel (mu, raw sigma)."""
        loc, raw_scale = self._params(decoded)
        return self._event(dist.Normal(loc, self._scale(raw_scale)))

    def _loc(self, decoded):
        return self._params(decoded)[0]
