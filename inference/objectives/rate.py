"""The rate term R = KL(q(z | x) || p(z)) per data point and per latent dimension.

Closed form where ``torch.distributions`` registers one (seed 000's Gaussian
KL) and where it is exact, else the Monte Carlo estimate log q(z|x) - log p(z)
at the guide's draw. Exact means: every latent the model draws before a site
(its possible parents) is drawn by the guide before it too, so that
E_q[log q(z_s | ...) - log p(z_s | parents)] = E_q[KL(q_s || p_s)]. One layer,
the top of a hierarchy and the top-down (ladder) guide pass; under the
bottom-up guide z_2 is drawn after z_1 and from it, and KL(q(z_1 | x) ||
p(z_1 | z_2)) at the guide's z_2 is not the ELBO's term (it overstates the rate).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch.distributions import Independent, kl_divergence

from pyro_vae.inference.objectives.weights import sample_sites


def _site_pairs(terms):
    """(q, p, z, closed form exact) per latent site, in the guide's order."""
    model_latents = [s["name"] for s in sample_sites(terms.model_trace) if not s["is_observed"]]
    drawn = set()
    for site in sample_sites(terms.guide_trace):
        name = site["name"]
        if not site["is_observed"] and name in terms.model_trace.nodes:
            before = model_latents[:model_latents.index(name)] if name in model_latents else model_latents
            yield site["fn"], terms.model_trace.nodes[name]["fn"], site["value"], drawn.issuperset(before)
        drawn.add(name)


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
    for q, p, z, exact in _site_pairs(terms):
        analytic_here = analytic and exact
        per_point = None
        if analytic_here:
            try:
                per_point = kl_divergence(q, p)
            except NotImplementedError:
                per_point = None
        if per_point is None:
            per_point = q.log_prob(z) - p.log_prob(z)
        total = total + per_point
        dims.append(kl_per_dim(q, p, z, analytic_here))
    per_dim = torch.cat(dims, -1) if dims and all(d is not None for d in dims) else None
    return total.expand(terms.log_likelihood.shape), per_dim
