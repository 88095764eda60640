"""KL weight schedules beta_t / beta in [0, 1], as functions of the SVI step; one small class each, registered
in ``SCHEDULES`` (its name is then a value of ``--kl-schedule``).

``linear``: 0 -> 1 over ``steps`` (KL annealing, Bowman et al. 2016);
``cyclical``: repeat a ramp over the first half of each ``steps``-long cycle,
then hold 1 (Fu et al. 2019); ``constant``: always 1.
"""
from __future__ import annotations

from pyro_vae.models.registry import Registry

SCHEDULES: Registry = Registry("KL schedule")


class Schedule:
    """``weight(step, steps)``: the factor of beta after ``step`` steps of a warm-up or cycle ``steps`` long."""

    @staticmethod
    def weight(step: int, steps: int) -> float:
        """The factor of β in [0, 1] after ``step`` steps of a warm-up or cycle ``steps`` long (``steps`` > 0)."""
        raise NotImplementedError


@SCHEDULES.register("constant")
class Constant(Schedule):
    """No warm-up: the factor is always 1."""

    @staticmethod
    def weight(step: int, steps: int) -> float:
        """1.0."""
        return 1.0


@SCHEDULES.register("linear")
class Linear(Schedule):
    """KL annealing (Bowman et al. 2016): the factor rises linearly from 1/steps to 1 over ``steps`` steps, then
    stays 1."""

    @staticmethod
    def weight(step: int, steps: int) -> float:
        """min(1, (step + 1) / steps)."""
        return min(1.0, (step + 1) / steps)


@SCHEDULES.register("cyclical")
class Cyclical(Schedule):
    """Cyclical annealing (Fu et al. 2019): in each cycle of ``steps`` steps, a linear ramp to 1 over its first half,
    then 1."""

    @staticmethod
    def weight(step: int, steps: int) -> float:
        """min(1, 2 φ + 1/steps), φ = (step mod steps) / steps the phase in the cycle."""
        phase = (step % steps) / steps
        return min(1.0, 2.0 * phase + 1.0 / steps)


def kl_weight(schedule: str, step: int, steps: int) -> float:
    """The factor of beta after ``step`` steps under the schedule ``schedule`` (1 when ``steps`` <= 0)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown KL schedule {schedule!r}; choose one of: {', '.join(SCHEDULES.names())}")
    return 1.0 if steps <= 0 else SCHEDULES.get(schedule).weight(step, steps)
