"""KL weight schedules beta_t / beta in [0, 1], as functions of the SVI step.

``linear``: 0 -> 1 over ``steps`` (KL annealing, Bowman et al. 2016);
``cyclical``: repeat a ramp over the first half of each ``steps``-long cycle,
then hold 1 (Fu et al. 2019); ``constant``: always 1.
"""
from __future__ import annotations

SCHEDULES = ("constant", "linear", "cyclical")


def kl_weight(schedule: str, step: int, steps: int) -> float:
    if schedule == "constant" or steps <= 0:
        return 1.0
    if schedule == "linear":
        return min(1.0, (step + 1) / steps)
    if schedule == "cyclical":
        phase = (step % steps) / steps
        return min(1.0, 2.0 * phase + 1.0 / steps)
    raise ValueError(f"unknown KL schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}")
