"""Likelihoods of 8-bit levels x = k / 255: exact probability masses, so -log p / (D log 2) is bits per
dimension, the figure compared on CIFAR-10 (Salimans et al. 2017, PixelCNN++)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
import pyro.distributions as dist

from .likelihoods import EIGHT_BIT, LIKELIHOODS, Likelihood, ScaleConfig
from .registry import option

MIN_LOG_SCALE = -7.0  # PixelCNN++'s floor on the logistic's log scale


class DiscretizedLogistic(dist.TorchDistribution):
    """P(x = k/255) = F((k + 1/2)/255) - F((k - 1/2)/255), F the logistic CDF, with the
    edges k = 0 and k = 255 taking the tails (Salimans et al. 2017, one component)."""

    arg_constraints = {}
    support = dist.constraints.unit_interval

    def __init__(self, loc, log_scale, validate_args=None):
        self.loc, self.log_scale = torch.broadcast_tensors(loc, log_scale)
        super().__init__(self.loc.shape, validate_args=False)

    def expand(self, batch_shape, _instance=None):
        """The same distribution over a larger batch shape (``torch.distributions`` semantics)."""
        shape = torch.Size(batch_shape)
        return DiscretizedLogistic(self.loc.expand(shape), self.log_scale.expand(shape))

    def log_prob(self, value):
        """log P(x = k/255) for values on the grid k/255 (the edge bins take the tails)."""
        inv_scale = torch.exp(-self.log_scale)
        centred = value - self.loc
        upper = inv_scale * (centred + 0.5 / 255)
        lower = inv_scale * (centred - 0.5 / 255)
        log_cdf_upper = F.logsigmoid(upper)  # log F(upper): the mass below the top edge (x = 0 only)
        log_sf_lower = -F.softplus(lower)  # log (1 - F(lower)): the mass above the bottom edge (x = 255 only)
        mid = torch.sigmoid(upper) - torch.sigmoid(lower)
        # where the bin is far in a tail, use the density at its centre times the bin width
        log_pdf_mid = inv_scale.log() + centred * inv_scale - 2 * F.softplus(centred * inv_scale) - torch.log(
            torch.tensor(255.0, device=value.device))
        log_mid = torch.where(mid > 1e-5, mid.clamp(min=1e-12).log(), log_pdf_mid)
        return torch.where(value < 0.5 / 255, log_cdf_upper,
                           torch.where(value > 1 - 0.5 / 255, log_sf_lower, log_mid))

    def sample(self, sample_shape=torch.Size()):
        """Draws on the grid k/255: a logistic draw, clamped to [0, 1] and rounded to the nearest level."""
        u = torch.rand(self._extended_shape(sample_shape), device=self.loc.device).clamp(1e-5, 1 - 1e-5)
        x = self.loc + self.log_scale.exp() * (u.log() - (-u).log1p())
        return (x.clamp(0, 1) * 255).round() / 255


class DiscretizedLogisticMixture(dist.TorchDistribution):
    """P(x = k/255) = sum_j pi_j DiscretizedLogistic(x; mu_j, s_j), the K components in the last dimension of
    ``logits``, ``loc`` and ``log_scale`` (PixelCNN++'s mixture, each channel on its own)."""

    arg_constraints = {}
    support = dist.constraints.unit_interval

    def __init__(self, logits, loc, log_scale, validate_args=None):
        self.logits, self.loc, self.log_scale = torch.broadcast_tensors(logits, loc, log_scale)
        super().__init__(self.loc.shape[:-1], validate_args=False)

    def expand(self, batch_shape, _instance=None):
        """The same mixture over a larger batch shape (the K components stay in the last dimension)."""
        shape = torch.Size(batch_shape) + self.loc.shape[-1:]
        return DiscretizedLogisticMixture(self.logits.expand(shape), self.loc.expand(shape),
                                          self.log_scale.expand(shape))

    def log_prob(self, value):
        """log sum_j pi_j P_j(x), computed with logsumexp over the components."""
        components = DiscretizedLogistic(self.loc, self.log_scale).log_prob(value.unsqueeze(-1))
        return torch.logsumexp(components + self.logits.log_softmax(-1), -1)

    def sample(self, sample_shape=torch.Size()):
        """Draws on the grid k/255: a component j ~ Categorical(pi), then a draw of that component."""
        pick = dist.Categorical(logits=self.logits).sample(sample_shape).unsqueeze(-1)
        loc, log_scale = (t.expand(self._extended_shape(sample_shape) + t.shape[-1:]).gather(-1, pick).squeeze(-1)
                          for t in (self.loc, self.log_scale))
        return DiscretizedLogistic(loc, log_scale).sample()

    @property
    def mean(self):
        """The mixture's mean up to the mass the edges take from each tail, sum_j pi_j clamp(mu_j, 0, 1)."""
        return (self.logits.softmax(-1) * self.loc.clamp(0, 1)).sum(-1)


@LIKELIHOODS.register("discretized_logistic")
class DiscretizedLogisticLikelihood(Likelihood):
    """8-bit grey levels x = k / 255 under a discretized logistic per pixel: an exact
    probability mass, so -log p / (D log 2) is bits per dimension."""

    params_per_pixel = 2
    data = EIGHT_BIT

    def forward(self, decoded):
        """A discretized logistic per pixel from the decoder's two outputs (location, log scale floored at -7)."""
        loc, log_scale = self._params(decoded)
        return self._event(DiscretizedLogistic(loc, log_scale.clamp(min=MIN_LOG_SCALE)))

    def mean(self, decoded):
        """The location clamped to [0, 1] (the mean up to the mass the edge bins take from the tails)."""
        return self._params(decoded)[0].clamp(0, 1)


@LIKELIHOODS.register("discretized_logistic_mixture")
class DiscretizedLogisticMixtureLikelihood(Likelihood):
    """Each 8-bit level (each colour channel on its own) under a mixture of K discretized logistics: the decoder
    gives 3K numbers per pixel (mixture logits, locations, log scales). PixelCNN++ also couples a pixel's
    channels linearly; here the channels are independent given z."""

    data = EIGHT_BIT

    @dataclass
    class Config(ScaleConfig):
        likelihood_components: int = option(5, "mixture components K of discretized_logistic_mixture", above=0)

    @classmethod
    def from_config(cls, config, event_shape):
        """The likelihood a model config names, with K = ``likelihood_components``."""
        return cls(event_shape, config.likelihood_components)

    def __init__(self, event_shape, num_components: int = 5):
        super().__init__(event_shape)
        if num_components < 1:
            raise ValueError(f"a discretized logistic mixture needs >= 1 component, got {num_components}")
        self.num_components = int(num_components)
        self.params_per_pixel = 3 * self.num_components

    def _mixture(self, decoded) -> DiscretizedLogisticMixture:
        where = decoded.dim() - len(self.event_shape) - 1  # the (3K,) axis before the pixel dimensions
        parts = decoded.unflatten(where, (3, self.num_components)).movedim(where + 1, -1)  # (..., 3, *event, K)
        logits, loc, log_scale = parts.unbind(where)
        return DiscretizedLogisticMixture(logits, loc, log_scale.clamp(min=MIN_LOG_SCALE))

    def forward(self, decoded):
        """A mixture of K discretized logistics per pixel from the decoder's 3K outputs (logits, locations, log scales)."""
        return self._event(self._mixture(decoded))

    def mean(self, decoded):
        """sum_j pi_j clamp(mu_j, 0, 1) per pixel (``DiscretizedLogisticMixture.mean``)."""
        return self._mixture(decoded).mean
