"""A trained run's posterior diagnostics in one call (``vae diagnose``): choose the points of each split
(random, given, or the worst by a fast PSIS k-hat screen), run ``diagnose`` on them and write
``RUN/diagnostics/``."""
from __future__ import annotations

from typing import Optional, Sequence

from pyro_vae.inference.diagnostics.points import POINTS, SCREEN, SPLITS, choose_points, split_size, worst_points
from pyro_vae.inference.diagnostics.report import GUIDE_SAMPLES, diagnose
from pyro_vae.inference.errors import UserError
from pyro_vae.inference.runs.layout import DIAGNOSTICS


def check_choices(points=None, indices=None, worst=None, screen=None, chains=4, draws=500, warmup=500,
                  guide_samples=GUIDE_SAMPLES) -> None:
    """Refuse, in one line, counts that are not positive, fewer than two chains and points chosen more than one
    way."""
    for name, value in (("chains", chains), ("draws", draws), ("warmup", warmup), ("guide-samples", guide_samples),
                        ("screen", screen)):
        if value is not None and value <= 0:
            raise UserError(f"--{name} must be positive, got {value}")
    if chains is not None and chains < 2:  # (vae diagnose's option says so first)
        raise UserError(f"--chains must be >= 2 (R-hat compares chains), got {chains}")
    ways = [flag for flag, value in (("--points", points), ("--indices", indices), ("--worst", worst))
            if value is not None]
    if len(ways) > 1:
        raise UserError(f"choose the points one way: {' or '.join(ways)}, not both")
    if screen is not None and worst is None:
        raise UserError("--screen sets how many points --worst screens; give --worst N too")


def diagnose_run(run, split: str = "both", points: Optional[int] = None, indices: Optional[Sequence[int]] = None,
                 worst: Optional[int] = None, screen: Optional[int] = None, chains: int = 4, draws: int = 500,
                 warmup: int = 500, guide_samples: int = GUIDE_SAMPLES, seed: int = 0) -> dict:
    """Diagnose ``run`` on the points of ``split`` (train, test or both) chosen one way: ``points`` random ones
    (default ``POINTS``), these ``indices``, or the ``worst`` N of ``screen`` screened (default ``SCREEN``); NUTS
    with ``chains`` x ``draws`` after ``warmup``; ``guide_samples`` draws of the guide per point. Writes
    ``RUN/diagnostics`` (refused if the folder was trained anew since the run loaded) and returns the summary."""
    check_choices(points, indices, worst, screen, chains, draws, warmup, guide_samples)
    splits = SPLITS if split == "both" else (split,)
    chosen, screening = {}, {}
    with run.params():
        for part in splits:
            if worst is not None:
                chosen[part], screening[part] = worst_points(run, part, worst, SCREEN if screen is None else screen,
                                                             seed)
            else:
                chosen[part] = choose_points(split_size(run, part), POINTS if points is None else points, indices,
                                             seed, part)
        return diagnose(run, run.path / DIAGNOSTICS, chosen, chains, draws, warmup, guide_samples, seed,
                        screening or None, writing=run.adding_results)
