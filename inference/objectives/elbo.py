"""Pyro's own ELBOs, configured for the VAE's one data plate.

``Trace_ELBO``: -E_q[log p(x, z) - log q(z | x)] with L particles, vectorized
(seed 002's L-sample Monte Carlo ELBO). ``TraceMeanField_ELBO``: the same with
KL(q || p) in closed form where it exists (seed 000's kl_loss).
"""
from __future__ import annotations

from pyro.infer import Trace_ELBO, TraceMeanField_ELBO


def trace_elbo(num_particles: int = 1) -> Trace_ELBO:
    return Trace_ELBO(num_particles=num_particles, vectorize_particles=num_particles > 1, max_plate_nesting=1)


def mean_field_elbo(num_particles: int = 1) -> TraceMeanField_ELBO:
    return TraceMeanField_ELBO(num_particles=num_particles, vectorize_particles=num_particles > 1,
                               max_plate_nesting=1)
