"""Pyro's own ELBOs, configured for the VAE's one data plate.

``TraceELBO``: Pyro's ``Trace_ELBO``, -E_q[log p(x, z) - log q(z | x)] with L particles, vectorized
(seed 002's L-sample Monte Carlo ELBO). ``MeanFieldELBO``: Pyro's ``TraceMeanField_ELBO``, the same with
KL(q || p) in closed form where it exists (seed 000's kl_loss). Each checks its one knob.
"""
from __future__ import annotations

from dataclasses import dataclass

from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

from pyro_vae.models.registry import option


def check_particles(num_particles: int) -> None:
    if not (isinstance(num_particles, int) and num_particles >= 1):
        raise ValueError(f"num_particles must be a positive integer, got {num_particles!r}")


def particles_option():
    """``num_particles``, a knob several objectives share, declared alike by each."""
    return option(1, "L samples of the ELBO, or k of the IWAE bound", above=0)


@dataclass
class ParticlesConfig:
    """The one knob of the plain ELBOs."""

    num_particles: int = particles_option()


class _ParticlesELBO:
    """A Pyro ELBO with ``num_particles`` vectorized draws and the data plate as its one plate."""

    Config = ParticlesConfig

    def __init__(self, num_particles: int = 1):
        check_particles(num_particles)
        super().__init__(num_particles=num_particles, vectorize_particles=num_particles > 1, max_plate_nesting=1)

    @classmethod
    def from_config(cls, c):
        """The ELBO an ``ObjectiveConfig`` describes (its ``num_particles``)."""
        return cls(c.num_particles)

    @classmethod
    def pairing_problem(cls, options, prior_cls, guide_cls):
        """None: the plain ELBOs take every prior and guide (``PointwiseObjective.pairing_problem``)."""
        return None


class TraceELBO(_ParticlesELBO, Trace_ELBO):
    """``pyro.infer.Trace_ELBO``: the sampled ELBO."""


class MeanFieldELBO(_ParticlesELBO, TraceMeanField_ELBO):
    """``pyro.infer.TraceMeanField_ELBO``: KL(q || p) in closed form where it exists."""


def trace_elbo(num_particles: int = 1) -> TraceELBO:
    """``TraceELBO(num_particles)``: Pyro's sampled ELBO with L vectorized particles."""
    return TraceELBO(num_particles)


def mean_field_elbo(num_particles: int = 1) -> MeanFieldELBO:
    """``MeanFieldELBO(num_particles)``: Pyro's ELBO with the KL in closed form where it exists."""
    return MeanFieldELBO(num_particles)
