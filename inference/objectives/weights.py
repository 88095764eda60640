"""Per-particle, per-data-point log-densities of a (model, guide) pair.

The guide and the model replayed on its draws run inside
``pyro.plate("particles", k, dim=-2)``, outside the ``"data"`` plate at dim -1,
so every term below has shape (k, B): k draws z_k ~ q(z | x_n) for each of the
B points. The importance log-weight of Burda et al. 2015 is
log w_kn = log p(x_n | z_kn) + log p(z_kn) - log q(z_kn | x_n).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from pyro_vae.inference.programs import accepting

PARTICLE_DIM = -2


def _in_particle_plate(fn: Callable, num_particles: int) -> Callable:
    def wrapped(*args, **kwargs):
        with pyro.plate("particles", num_particles, dim=PARTICLE_DIM):
            return fn(*args, **kwargs)

    return wrapped


def sample_sites(trace):
    return [s for s in trace.nodes.values() if s["type"] == "sample" and not site_is_subsample(s)]


@dataclass
class WeightTerms:
    """log p(x|z), log p(z), log q(z|x), each (k, B); ``scale`` = N / B of the data plate."""

    log_likelihood: torch.Tensor
    log_prior: torch.Tensor
    log_guide: torch.Tensor
    scale: float
    guide_trace: pyro.poutine.Trace
    model_trace: pyro.poutine.Trace

    @property
    def log_weights(self) -> torch.Tensor:
        """The importance log-weights (k, B), log w = log p(x | z) + log p(z) - log q(z | x) (Burda et al. 2015)."""
        return self.log_likelihood + self.log_prior - self.log_guide


def _per_point(sites, like: torch.Tensor) -> torch.Tensor:
    total = torch.zeros_like(like)
    for site in sites:
        total = total + site["fn"].log_prob(site["value"])
    return total


def particle_trace(program: Callable, num_particles: int, *args, **kwargs):
    """The trace of ``program`` (given only the keywords it accepts) vectorized over ``num_particles``."""
    return poutine.trace(_in_particle_plate(accepting(program), num_particles)).get_trace(*args, **kwargs)


def trace_pair(model: Callable, guide: Callable, num_particles: int, *args, **kwargs):
    """Guide trace and the model trace replayed on it, vectorized over particles; each program gets only
    the keywords it accepts (``pyro_vae.inference.programs``)."""
    model = accepting(model)
    guide_trace = particle_trace(guide, num_particles, *args, **kwargs)
    model_trace = poutine.trace(
        poutine.replay(_in_particle_plate(model, num_particles), trace=guide_trace)).get_trace(*args, **kwargs)
    return guide_trace, model_trace


def weight_terms(model: Callable, guide: Callable, num_particles: int, *args, **kwargs) -> WeightTerms:
    """The per-particle, per-point terms of a (model, guide) pair on one batch, as ``WeightTerms``.

    The guide is traced ``num_particles`` times in a particle plate and the model replayed on its draws; each
    program gets ``*args`` and only the keywords it accepts. Refused for a model without observed or latent sites.
    """
    guide_trace, model_trace = trace_pair(model, guide, num_particles, *args, **kwargs)
    observed = [s for s in sample_sites(model_trace) if s["is_observed"]]
    latent = [s for s in sample_sites(model_trace) if not s["is_observed"]]
    guide_sites = sample_sites(guide_trace)
    if not observed or not latent:
        raise ValueError("the model needs observed data sites and latent sites to form importance weights")
    shape = torch.broadcast_shapes(*(s["fn"].batch_shape for s in observed))
    like = torch.zeros(shape, device=observed[0]["value"].device)
    scale = observed[0]["scale"]
    scale = float(scale.item()) if isinstance(scale, torch.Tensor) else float(scale)
    return WeightTerms(_per_point(observed, like), _per_point(latent, like), _per_point(guide_sites, like),
                       scale, guide_trace, model_trace)
