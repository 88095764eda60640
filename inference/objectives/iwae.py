"""Importance-weighted bound (Burda et al. 2015), per data point:

    L_k(x_n) = log (1/k) sum_k w_kn,   w_kn = p(x_n, z_kn) / q(z_kn | x_n),  z_kn ~ q(z | x_n)

loss = -(N/B) sum_n L_k(x_n). Unlike Pyro's ``RenyiELBO`` (which pools all
local latents of a batch into one weight) the log-mean-exp is taken per point.
``dreg=True`` uses the doubly reparameterized gradient (Tucker et al. 2018):
encoder gradient sum_k w~_k^2 d log w_k / dz_k dz_k/dphi with q's parameters
held fixed, decoder gradient sum_k w~_k grad_theta log w_k.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pyro.distributions as dist
import torch
from pyro import poutine
from torch.distributions import Independent, MultivariateNormal, Normal

from pyro_vae.models.registry import option
from pyro_vae.inference.objectives.base import PointwiseObjective, require_reparameterized
from pyro_vae.inference.objectives.elbo import particles_option
from pyro_vae.inference.objectives.weights import _in_particle_plate, _per_point, sample_sites, weight_terms


def detach_params(fn):
    """The same distribution with its parameters cut from the graph (q with phi held fixed)."""
    if isinstance(fn, Independent):
        return Independent(detach_params(fn.base_dist), fn.reinterpreted_batch_ndims)
    if isinstance(fn, Normal):
        return dist.Normal(fn.loc.detach(), fn.scale.detach())
    if isinstance(fn, MultivariateNormal):
        return dist.MultivariateNormal(fn.loc.detach(), scale_tril=fn.scale_tril.detach())
    raise ValueError(f"DReG supports Normal and MultivariateNormal guides, not {type(fn).__name__}")


class IWAEBound(PointwiseObjective):
    """The importance-weighted bound of Burda et al. 2015 (IWAE), maximized per data point.

    L_k(x) = log (1/k) sum_i w_i, w_i = p(x, z_i) / q(z_i | x), z_i ~ q(z | x); in expectation
    ELBO = L_1 ≤ L_k ≤ L_(k+1) ≤ log p(x), and L_k → log p(x) as k → ∞. The loss is -(N/B) sum_n L_k(x_n).
    ``dreg=True`` takes the doubly reparameterized gradient of Tucker et al. 2018 (lower-variance encoder
    gradients; Gaussian guides only).

    Parameters
    ----------
    num_particles : int
        k, the importance samples per data point.
    dreg : bool
        Use the DReG gradient estimator.
    """

    @dataclass
    class Config:
        num_particles: int = particles_option()
        dreg: bool = option(False, "objective iwae: doubly reparameterized gradients (Tucker et al. 2018)")

    def __init__(self, num_particles: int = 5, dreg: bool = False):
        super().__init__(num_particles)
        self.dreg = dreg

    @classmethod
    def pairing_problem(cls, options, prior_cls, guide_cls):
        """Why these options cannot train this prior and guide (None: they can): DReG needs a Gaussian guide."""
        if getattr(options, "dreg", False) and getattr(guide_cls, "posterior_kind", "gaussian") != "gaussian":
            return ("DReG (Tucker et al. 2018) differentiates through a Gaussian guide's reparameterization with its "
                    "parameters held fixed, and this guide is not Gaussian; use --guide "
                    "diagonal_normal or full_covariance, or drop --dreg")
        return None

    @classmethod
    def from_config(cls, c) -> "IWAEBound":
        """The objective an ``ObjectiveConfig`` describes (its ``num_particles`` and ``dreg``)."""
        return cls(c.num_particles, c.dreg)

    def _bound(self, log_w: torch.Tensor) -> torch.Tensor:
        return (torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])).sum()

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """-(N/B) sum_n L_k(x_n) for one batch (with ``dreg``: a surrogate with the same value and the DReG gradients)."""
        terms = weight_terms(model, guide, self.num_particles, *args, **kwargs)
        require_reparameterized(terms.guide_trace, "iwae")
        if not self.dreg:
            return -terms.scale * self._bound(terms.log_weights)
        return -terms.scale * self._dreg_surrogate(model, terms, args, kwargs)

    def _dreg_surrogate(self, model, terms, args, kwargs) -> torch.Tensor:
        guide_sites = sample_sites(terms.guide_trace)
        log_q_fixed = sum(detach_params(s["fn"]).log_prob(s["value"]) for s in guide_sites)
        log_w = terms.log_likelihood + terms.log_prior - log_q_fixed  # depends on phi only through z
        w = torch.softmax(log_w.detach(), 0)
        # The model again at z with no path to phi: its theta-gradient, weighted by w~.
        detached = terms.guide_trace.copy()
        for s in guide_sites:
            detached.nodes[s["name"]] = {**s, "value": s["value"].detach()}
        model_trace = poutine.trace(poutine.replay(_in_particle_plate(model, self.num_particles), trace=detached)
                                    ).get_trace(*args, **kwargs)
        log_p_fixed_z = _per_point(sample_sites(model_trace), log_w)
        theta_part = (w * log_p_fixed_z).sum()
        # log w(z) - log p(x, stop(z)): its theta-gradients cancel (same z), leaving the path through z.
        phi_part = (w ** 2 * (log_w - log_p_fixed_z)).sum()
        value = self._bound(log_w.detach())
        return value + (theta_part - theta_part.detach()) + (phi_part - phi_part.detach())
