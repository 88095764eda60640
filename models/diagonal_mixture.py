"""A mixture of diagonal Gaussians whose log-density costs two matrix products, not a (..., K, D) tensor.

    log p(z) = logsumexp_k [log pi_k - 1/2 sum_d (z_d - m_kd)^2 / s_kd^2 - sum_d log s_kd] - D/2 log(2 pi)

``MixtureSameFamily`` evaluates every component at every point elementwise: (points x K x D) numbers, 4 GB for
the VampPrior's K = 500 pseudo-inputs at an importance-sampling chunk of 50,000 draws of 40 units. Expanding
the square, sum_d (z_d - m_kd)^2 / s_kd^2 = z^2 @ (1/s^2)^T - 2 z @ (m/s^2)^T + sum_d m_kd^2 / s_kd^2, so the
same figure needs (points x K) numbers and two matrix products. The quadratic form is accumulated in float64,
where the expansion's cancellation (z close to m_k, s_k small) stays far below float32's own rounding. The
parameters are shared by every batch element (``expand`` only records the batch shape), as a prior's are.
"""
from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch.distributions import constraints


class DiagonalNormalMixture(dist.TorchDistribution):
    """sum_k softmax(logits)_k N(m_k, diag(s_k^2)); ``logits`` (K,), ``loc`` and ``scale`` (K, D)."""

    arg_constraints = {"logits": constraints.real_vector, "loc": constraints.real, "scale": constraints.positive}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, logits: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor,
                 batch_shape: torch.Size = torch.Size(), validate_args=None):
        if loc.dim() != 2 or loc.shape != scale.shape or logits.shape != loc.shape[:1]:
            raise ValueError(f"DiagonalNormalMixture needs logits (K,) and loc, scale (K, D); got "
                             f"{tuple(logits.shape)}, {tuple(loc.shape)}, {tuple(scale.shape)}")
        self.logits, self.loc, self.scale = logits, loc, scale
        super().__init__(torch.Size(batch_shape), loc.shape[-1:], validate_args=validate_args)

    @classmethod
    def of(cls, mixing_logits: torch.Tensor, components: dist.TorchDistribution) -> dist.TorchDistribution:
        """The mixture of ``components`` (batch (K,)): this class for diagonal Gaussians, else
        ``MixtureSameFamily`` (a full-covariance guide's posteriors, say)."""
        base = getattr(components, "base_dist", None)
        if (isinstance(components, dist.Independent) and components.reinterpreted_batch_ndims == 1
                and type(base) is dist.Normal and base.loc.dim() == 2):
            loc, scale = torch.broadcast_tensors(base.loc, base.scale)
            return cls(mixing_logits, loc, scale)
        return dist.MixtureSameFamily(dist.Categorical(logits=mixing_logits), components)

    @staticmethod
    def numbers_per_draw(num_components: int) -> int:
        """float32-sized numbers ``log_prob`` holds per point: K float64 log-densities (two each), their
        float32 copy and the weighted sum."""
        return 4 * num_components

    def expand(self, batch_shape, _instance=None):
        return type(self)(self.logits, self.loc, self.scale, torch.Size(batch_shape),
                          validate_args=self.__dict__.get("_validate_args"))

    def component_log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """log N(value; m_k, diag(s_k^2)) for every k: shape (..., K)."""
        z = value.reshape(-1, value.shape[-1]).double()
        precision = self.scale.double().pow(-2)
        weighted_loc = self.loc.double() * precision
        quadratic = (z * z) @ precision.T - 2 * z @ weighted_loc.T + (self.loc.double() * weighted_loc).sum(-1)
        const = self.scale.log().sum(-1) + 0.5 * self.loc.shape[-1] * math.log(2 * math.pi)
        log_density = (-0.5 * quadratic).to(value.dtype) - const
        return log_density.reshape(*value.shape[:-1], -1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        log_weights = torch.log_softmax(self.logits, dim=-1)
        return torch.logsumexp(self.component_log_prob(value) + log_weights, dim=-1)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        with torch.no_grad():
            k = dist.Categorical(logits=self.logits).sample(shape)
            return self.loc[k] + self.scale[k] * torch.randn(*shape, self.loc.shape[-1], dtype=self.loc.dtype,
                                                             device=self.loc.device)

    @property
    def mean(self) -> torch.Tensor:
        weights = torch.softmax(self.logits, dim=-1)
        return (weights @ self.loc).expand(self.batch_shape + self.event_shape)

    @property
    def variance(self) -> torch.Tensor:
        weights = torch.softmax(self.logits, dim=-1)
        second = weights @ (self.scale ** 2 + self.loc ** 2)
        return (second - (weights @ self.loc) ** 2).expand(self.batch_shape + self.event_shape)
