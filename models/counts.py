"""Likelihoods of counts x in {0, 1, 2, ...} (gene counts per cell, ratings, events per window).

The decoder gives the mean mu = softplus(output) per feature; the negative binomials add a learned inverse
dispersion theta per feature, shared by all data points, as scVI's (Lopez et al. 2018):
Var x = mu + mu^2 / theta, the Poisson's mu as theta -> infinity.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
import pyro.distributions as dist
from torch import nn

from .likelihoods import COUNT, LIKELIHOODS, Likelihood, inverse_softplus

MIN_MEAN = 1e-6


def _mean(raw: torch.Tensor) -> torch.Tensor:
    return F.softplus(raw) + MIN_MEAN


@LIKELIHOODS.register("poisson")
class PoissonLikelihood(Likelihood):
    """x_i ~ Poisson(mu_i): log p = x log mu - mu - log x!."""

    data = COUNT

    def forward(self, decoded):
        """Poisson(mu) per feature, mu = softplus(decoded) + 1e-6."""
        return self._event(dist.Poisson(_mean(decoded), validate_args=False))

    def mean(self, decoded):
        """mu = softplus(decoded) + 1e-6: the Poisson's mean."""
        return _mean(decoded)


class _Dispersed(Likelihood):
    """A learned inverse dispersion theta_i = softplus(raw_i) per feature, starting at ``scale``."""

    data = COUNT

    def __init__(self, event_shape, scale: float = 1.0):
        super().__init__(event_shape)
        if not scale > 0:
            raise ValueError(f"the initial inverse dispersion must be positive, got {scale}")
        self.raw_dispersion = nn.Parameter(inverse_softplus(torch.full(self.event_shape, float(scale))))

    @property
    def dispersion(self) -> torch.Tensor:
        """theta per feature (the NB's ``total_count``)."""
        return F.softplus(self.raw_dispersion) + MIN_MEAN

    def _negative_binomial_logits(self, mu: torch.Tensor) -> torch.Tensor:
        """NB(theta, p) with mean theta p / (1 - p) = mu: logit p = log mu - log theta."""
        return mu.log() - self.dispersion.log()


@LIKELIHOODS.register("negative_binomial")
class NegativeBinomialLikelihood(_Dispersed):
    """x_i ~ NB(mean mu_i, inverse dispersion theta_i):
    p(x) = Gamma(x + theta) / (Gamma(theta) x!) (theta / (theta + mu))^theta (mu / (theta + mu))^x."""

    def forward(self, decoded):
        """NB(mu, theta) per feature, mu = softplus(decoded) + 1e-6, theta the learned inverse dispersion."""
        mu = _mean(decoded)
        return self._event(dist.NegativeBinomial(total_count=self.dispersion, logits=self._negative_binomial_logits(mu),
                                                 validate_args=False))

    def mean(self, decoded):
        """mu = softplus(decoded) + 1e-6: the negative binomial's mean."""
        return _mean(decoded)


@LIKELIHOODS.register("zero_inflated_negative_binomial")
class ZeroInflatedNegativeBinomialLikelihood(_Dispersed):
    """With probability pi_i (the decoder's second output, a logit) a structural zero, else NB(mu_i, theta_i):
    p(0) = pi + (1 - pi) NB(0), p(x > 0) = (1 - pi) NB(x) (scVI's ZINB)."""

    params_per_pixel = 2

    def forward(self, decoded):
        """ZINB(mu, theta, pi) per feature from the decoder's two outputs (raw mean, gate logit)."""
        raw_mean, gate_logits = self._params(decoded)
        mu = _mean(raw_mean)
        return self._event(dist.ZeroInflatedNegativeBinomial(
            total_count=self.dispersion, logits=self._negative_binomial_logits(mu), gate_logits=gate_logits,
            validate_args=False))

    def mean(self, decoded):
        """E[x] = (1 - pi) mu: the zero-inflated mean."""
        raw_mean, gate_logits = self._params(decoded)
        return torch.sigmoid(-gate_logits) * _mean(raw_mean)
