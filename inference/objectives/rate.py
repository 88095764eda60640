"""The rate term R = KL(q(z | x) || p(z)) per data point and per latent dimension.

Closed form where ``torch.distributions`` registers one (seed 000's Gaussian
KL), else the Monte Carlo estimate log q(z|x) - log p(z) at the guide's draw.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch.distributions import Independent, kl_divergence

from inference.objectives.weights import sample_sites


def _site_pairs(terms):
    for site in sample_sites(terms.guide_trace):
        if not site["is_observed"] and site["name"] in terms.model_trace.nodes:
            yield site["fn"], terms.model_trace.nodes[site["name"]]["fn"], site["value"]


def kl_per_dim(q, p, z: torch.Tensor, analytic: bool) -> Optional[torch.Tensor]:
    """KL per latent dimension, shape (k, B, Z), when both are factorized over dimensions."""
    if not (isinstance(q, Independent) and isinstance(p, Independent)
            and q.reinterpreted_batch_ndims == p.reinterpreted_batch_ndims == 1):
        return None
    if analytic:
        try:
            return kl_divergence(q.base_dist, p.base_dist)
        except NotImplementedError:
            pass
    return q.base_dist.log_prob(z) - p.base_dist.log_prob(z)


def rate_terms(terms, analytic: bool = True) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(rate per point (k, B), rate per point and dimension (k, B, Z) or None)."""
    total, dims = 0.0, []
    for q, p, z in _site_pairs(terms):
        per_point = None
        if analytic:
            try:
                per_point = kl_divergence(q, p)
            except NotImplementedError:
                per_point = None
        if per_point is None:
            per_point = q.log_prob(z) - p.log_prob(z)
        total = total + per_point
        dims.append(kl_per_dim(q, p, z, analytic))
    per_dim = torch.cat(dims, -1) if dims and all(d is not None for d in dims) else None
    return total.expand(terms.log_likelihood.shape), per_dim
