"""beta-weighted ELBO: loss = D + beta_t * R per data point (Higgins et al. 2017).

D = -E_q log p(x | z) (distortion), R = KL(q(z | x) || p(z)) (rate, Alemi et
al. 2018); beta is seed 001's lambda in part1 + lambda * part2. beta_t follows a
warm-up schedule; free bits (Kingma et al. 2016) replace R by
sum_j max(lambda, E_batch KL_j), so no dimension is pushed below lambda nats.
With beta = 1, no warm-up, no free bits and sampled KL this is Trace_ELBO.

The objective holds no step count: ``SVITrainer`` passes beta_t (``schedule_weight(t)``) to ``loss_at``.
Pyro's ``SVI`` passes no step, so under it a warm-up is refused in one line; ``at_step(t)`` is the
objective with beta fixed at beta_t.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from pyro_vae.models.registry import option
from pyro_vae.inference.objectives.base import PointwiseObjective, require_reparameterized
from pyro_vae.inference.objectives.elbo import particles_option
from pyro_vae.inference.objectives.rate import rate_terms
from pyro_vae.inference.objectives.schedules import SCHEDULES, kl_weight
from pyro_vae.inference.objectives.weights import weight_terms


class BetaELBO(PointwiseObjective):
    """The β-weighted ELBO (β-VAE, Higgins et al. 2017): loss = D + β_t R per data point.

    D = -E_q log p(x | z) is the distortion, R = KL(q(z | x) ‖ p(z)) the rate (Alemi et al. 2018), in closed
    form where it exists (``analytic_kl``). β_t follows the ``schedule`` (KL warm-up: Bowman et al. 2016; cyclical:
    Fu et al. 2019) over ``warmup_steps``; free bits (Kingma et al. 2016) replace R by sum_j max(λ, E_batch KL_j).
    With β = 1, no warm-up, no free bits and a sampled KL it is ``Trace_ELBO``.

    Parameters
    ----------
    beta : float
        β ≥ 0, the weight of the rate.
    num_particles : int
        L draws z ~ q(z | x) per data point.
    analytic_kl : bool
        The closed-form KL where ``torch.distributions`` has one (else the Monte Carlo estimate).
    free_bits : float
        λ ≥ 0 nats per latent dimension below which the rate is not pushed (0: off).
    schedule : str
        A name of ``SCHEDULES``: ``constant``, ``linear`` or ``cyclical``.
    warmup_steps : int
        The length of the warm-up or cycle, in steps.
    """

    @dataclass
    class Config:
        beta: float = option(1.0, "objective beta: weight of the rate in D + beta R", minimum=0)
        num_particles: int = particles_option()
        analytic_kl: bool = option(True, "objective beta: Monte Carlo KL instead of the closed form",
                                   negated="--sampled-kl")
        free_bits: float = option(0.0, "objective beta: nats per latent dimension below which the rate is not "
                                       "pushed", minimum=0)
        kl_schedule: str = option("constant", "objective beta: warm-up of beta_t", choices=SCHEDULES)
        warmup_steps: int = option(0, "objective beta: length of the KL warm-up or cycle, in steps", minimum=0)

    def __init__(self, beta: float = 1.0, num_particles: int = 1, analytic_kl: bool = True,
                 free_bits: float = 0.0, schedule: str = "constant", warmup_steps: int = 0):
        super().__init__(num_particles)
        kl_weight(schedule, 0, warmup_steps)  # validates the schedule name
        if not beta >= 0 or not free_bits >= 0 or not warmup_steps >= 0:
            raise ValueError(f"beta, free_bits and warmup_steps must be >= 0, got {beta}, {free_bits}, {warmup_steps}")
        self.beta, self.analytic_kl, self.free_bits = beta, analytic_kl, free_bits
        self.schedule, self.warmup_steps = schedule, warmup_steps

    @classmethod
    def from_config(cls, c) -> "BetaELBO":
        """The objective an ``ObjectiveConfig`` describes (its ``beta``, ``num_particles``, ``analytic_kl``, ``free_bits``,
        ``kl_schedule`` and ``warmup_steps``)."""
        return cls(c.beta, c.num_particles, c.analytic_kl, c.free_bits, c.kl_schedule, c.warmup_steps)

    @property
    def scheduled(self) -> bool:
        """beta_t changes with the step (a linear or cyclical warm-up of positive length)."""
        return self.schedule != "constant" and self.warmup_steps > 0

    def schedule_weight(self, step: int) -> float:
        """beta_t after ``step`` steps: beta times the schedule's factor."""
        return self.beta * kl_weight(self.schedule, step, self.warmup_steps)

    def at_step(self, step: int) -> "BetaELBO":
        """This objective with beta fixed at beta_t (no schedule): what step ``step`` minimizes."""
        return BetaELBO(self.schedule_weight(step), self.num_particles, self.analytic_kl, self.free_bits)

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """D + β R for one batch at the fixed β; refused for a scheduled β, whose weight needs the step (``loss_at``)."""
        if self.scheduled:
            raise ValueError(f"BetaELBO with a {self.schedule} KL schedule needs the step count, which Pyro's SVI does "
                             f"not pass: train with SVITrainer (it passes beta_t), or use objective.at_step(t)")
        return self.loss_at(self.beta, model, guide, *args, **kwargs)

    @classmethod
    def pairing_problem(cls, options, prior_cls, guide_cls):
        """Why these options cannot train this prior and guide (None: they can): free bits need both to factorize."""
        if getattr(options, "free_bits", 0) > 0:
            apart = [kind for kind, c in (("the prior", prior_cls), ("the guide", guide_cls))
                     if not getattr(c, "factorized", False)]
            if apart:
                return (f"free bits hold the rate of each latent dimension apart (Kingma et al. 2016), which needs a "
                        f"prior and a guide that factorize over dimensions, and {' and '.join(apart)} "
                        f"{'does' if len(apart) == 1 else 'do'} not; use "
                        f"--prior normal, learned_normal, laplace or entropy_model with --guide diagonal_normal, "
                        f"delta or uniform_noise, or --free-bits 0")
        return None

    def loss_at(self, beta, model, guide, *args, **kwargs) -> torch.Tensor:
        """The loss with the rate weighted by ``beta`` (a float, or a tensor when the loss is captured)."""
        terms = weight_terms(model, guide, self.num_particles, *args, **kwargs)
        require_reparameterized(terms.guide_trace, "beta")
        distortion = -terms.log_likelihood.mean(0).sum()
        rate_point, rate_dim = rate_terms(terms, self.analytic_kl)
        if self.free_bits > 0:
            if rate_dim is None:
                raise ValueError("free bits need a guide and prior that factorize over latent dimensions")
            batch = rate_dim.shape[-2]
            rate = rate_dim.mean(0).mean(0).clamp(min=self.free_bits).sum() * batch
        else:
            rate = rate_point.mean(0).sum()
        return terms.scale * (distortion + beta * rate)
