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

import typing
from dataclasses import field, fields

from pyro_vae.models.registry import Registry

from pyro_vae.inference.objectives.beta import BetaELBO
from pyro_vae.inference.objectives.contractive import ContractiveELBO, encoder_jacobian_norm
from pyro_vae.inference.objectives.adversarial import AdversarialObjective
from pyro_vae.inference.objectives.elbo import MeanFieldELBO, TraceELBO, mean_field_elbo, trace_elbo
from pyro_vae.inference.objectives.iwae import IWAEBound
from pyro_vae.inference.objectives.rate import rate_terms
from pyro_vae.inference.objectives.schedules import SCHEDULES, kl_weight
from pyro_vae.inference.objectives.weights import WeightTerms, weight_terms

OBJECTIVES: Registry = Registry("objective")  # name -> class with a Config dataclass (its knobs) and from_config
for _name, _cls in (("elbo", TraceELBO), ("mean_field", MeanFieldELBO), ("beta", BetaELBO), ("iwae", IWAEBound),
                    ("contractive", ContractiveELBO), ("adversarial", AdversarialObjective)):
    OBJECTIVES.register(_name)(_cls)


def misplaced_options(config) -> list[str]:
    """The fields of an ``ObjectiveConfig`` set away from their defaults that its objective has no use for."""
    own = {f.name for f in fields(OBJECTIVES.get(config.name).Config)} | {"name"}
    defaults = type(config)()
    return [f.name for f in fields(config) if f.name not in own and getattr(config, f.name) != getattr(defaults, f.name)]


def objective_knobs() -> list[tuple]:
    """Every objective's knobs, each once, as its own ``Config`` declares them (``option(...)``: type, default,
    help): (name, type, field) for ``make_dataclass``. A knob two objectives share (``num_particles``) must be
    declared alike by both."""
    found: dict = {}
    for name in OBJECTIVES.in_order():  # the plain ELBO's knobs first
        config = OBJECTIVES.get(name).Config
        hints = typing.get_type_hints(config)
        for f in fields(config):
            if f.name in found:
                if (found[f.name][2].default, found[f.name][2].metadata) != (f.default, f.metadata):
                    raise TypeError(f"objective {name!r} declares option {f.name!r} unlike another objective does")
                continue
            found[f.name] = (f.name, hints[f.name], field(default=f.default, metadata=f.metadata))
    return list(found.values())


def build_objective(config):
    """The objective an ``ObjectiveConfig`` names, built from its own knobs (``cls.Config``); its constructor
    checks their values, as Pyro's ``RenyiELBO`` checks its ``alpha``."""
    cls = OBJECTIVES.get(config.name)
    misplaced = misplaced_options(config)
    if misplaced:
        raise ValueError(f"objective.{misplaced[0]} does not apply to objective {config.name!r} (its options: "
                         f"{', '.join(f.name for f in fields(cls.Config))})")
    return cls.from_config(config)


__all__ = ["OBJECTIVES", "build_objective", "misplaced_options", "objective_knobs", "TraceELBO", "MeanFieldELBO", "AdversarialObjective", "BetaELBO", "ContractiveELBO", "encoder_jacobian_norm", "IWAEBound", "trace_elbo", "mean_field_elbo",
           "rate_terms", "weight_terms", "WeightTerms", "kl_weight", "SCHEDULES"]
