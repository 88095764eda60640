"""Training objectives, chosen by name (``--objective``); each is a ``pyro.infer.ELBO``
over the same model and guide, so ``SVI`` and the trainer take any of them.

| name         | loss per data point                                    |
| ------------ | ------------------------------------------------------ |
| ``elbo``     | Trace_ELBO, L particles (the default, L = 1)           |
| ``mean_field`` | TraceMeanField_ELBO: closed-form KL                  |
| ``beta``     | D + beta_t R, warm-up schedule, free bits              |
| ``iwae``     | -log (1/k) sum_k w_k, optionally DReG gradients        |
| ``contractive`` | -ELBO + lambda ||d code / d x||_F^2 (Rifai et al.)  |
| ``adversarial`` | -log p(x|z), and a discriminator on codes vs p(z) (AAE) |
"""
from __future__ import annotations

from models.registry import Registry

from .beta import BetaELBO
from .contractive import ContractiveELBO, encoder_jacobian_norm
from .elbo import mean_field_elbo, trace_elbo
from .iwae import IWAEBound
from .rate import rate_terms
from .schedules import SCHEDULES, kl_weight
from .weights import WeightTerms, weight_terms

OBJECTIVES: Registry = Registry("objective")
OBJECTIVES.register("elbo")(lambda cfg: trace_elbo(cfg.num_particles))
OBJECTIVES.register("mean_field")(lambda cfg: mean_field_elbo(cfg.num_particles))
OBJECTIVES.register("beta")(lambda cfg: BetaELBO(cfg.beta, cfg.num_particles, cfg.analytic_kl, cfg.free_bits,
                                                 cfg.kl_schedule, cfg.warmup_steps))
OBJECTIVES.register("iwae")(lambda cfg: IWAEBound(cfg.num_particles, cfg.dreg))
OBJECTIVES.register("adversarial")(lambda cfg: _adversarial(cfg))
OBJECTIVES.register("contractive")(lambda cfg: ContractiveELBO(cfg.contractive_weight, cfg.num_particles))


def _adversarial(cfg):
    from ..adversarial import AdversarialObjective  # the objective of the adversarial autoencoder

    return AdversarialObjective(lr=cfg.adversarial_lr, discriminator_steps=cfg.discriminator_steps)


def build_objective(config):
    """The ``pyro.infer.ELBO`` an ``ObjectiveConfig`` names."""
    return OBJECTIVES.get(config.name)(config)


__all__ = ["OBJECTIVES", "build_objective", "BetaELBO", "ContractiveELBO", "encoder_jacobian_norm", "IWAEBound", "trace_elbo", "mean_field_elbo",
           "rate_terms", "weight_terms", "WeightTerms", "kl_weight", "SCHEDULES"]
