"""Training objectives, chosen by name (``--objective``); each is a ``pyro.infer.ELBO``
over the same model and guide, so ``SVI`` and the trainer take any of them.

=================== ==========================================================
name                loss per data point
=================== ==========================================================
``elbo``            Trace_ELBO, L particles (the default, L = 1)
``mean_field``      TraceMeanField_ELBO: closed-form KL
``beta``            D + β_t R, warm-up schedule, free bits
``iwae``            -log (1/k) sum_k w_k, optionally DReG gradients
``contractive``     -ELBO + λ ‖∂code/∂x‖²_F (Rifai et al. 2011)
``adversarial``     -log p(x | z), and a discriminator on codes vs p(z) (AAE)
=================== ==========================================================
"""
from __future__ import annotations

from dataclasses import field, fields

from pyro_vae.models.registry import Registry, declared_options

from pyro_vae.inference.objectives.base import ScheduledObjective
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
    """The options of an ``ObjectiveConfig`` set away from their defaults that its objective has no use for."""
    own = {f.name for f in fields(OBJECTIVES.get(config.name).Config)} | {"name"}
    defaults = type(config)()
    return [name for name in config.options() if name not in own and getattr(config, name) != getattr(defaults, name)]


def objective_knobs() -> list[tuple]:
    """Deprecated (0.4.0): ``pyro_vae.models.registry.declared_options(OBJECTIVES)``."""
    import warnings

    warnings.warn("objective_knobs is deprecated: use pyro_vae.models.registry.declared_options(OBJECTIVES)",
                  DeprecationWarning, stacklevel=2)
    return [(name, kind, field(default=f.default, metadata=f.metadata))
            for name, (kind, f, _) in declared_options(OBJECTIVES).items()]


def build_objective(config):
    """The objective an ``ObjectiveConfig`` names, built from its own knobs (``cls.Config``); its constructor
    checks their values, as Pyro's ``RenyiELBO`` checks its ``alpha``.

    Parameters
    ----------
    config : ObjectiveConfig
        The objective's name (a name of ``OBJECTIVES``) and its options.

    Returns
    -------
    pyro.infer.ELBO
        The objective, ready for ``SVI`` or ``SVITrainer``.

    Raises
    ------
    ValueError
        An option set that the named objective does not take, or a value its constructor refuses.
    """
    cls = OBJECTIVES.get(config.name)
    misplaced = misplaced_options(config)
    if misplaced:
        raise ValueError(f"objective.{misplaced[0]} does not apply to objective {config.name!r} (its options: "
                         f"{', '.join(f.name for f in fields(cls.Config))})")
    return cls.from_config(config)


__all__ = ["OBJECTIVES", "ScheduledObjective", "build_objective", "misplaced_options", "objective_knobs", "TraceELBO",
           "MeanFieldELBO", "AdversarialObjective", "BetaELBO", "ContractiveELBO", "encoder_jacobian_norm", "IWAEBound",
           "trace_elbo", "mean_field_elbo", "rate_terms", "weight_terms", "WeightTerms", "kl_weight", "SCHEDULES"]
