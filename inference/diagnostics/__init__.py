"""Posterior diagnostics with ArviZ (``vae diagnose``): NUTS references, PSIS k-hat, gaps, collapse, PPC, on
training and test points."""
from pyro_vae.inference.diagnostics.guide_check import gaps, gaussian_kl, guide_draws, moment_comparison, psis_khat
from pyro_vae.inference.diagnostics.points import SPLITS, choose_points, split_points, worst_points
from pyro_vae.inference.diagnostics.reference import Reference, nuts_reference
from pyro_vae.inference.diagnostics.report import Diagnosis, comparison, diagnose, examine, examine_splits

__all__ = ["gaps", "gaussian_kl", "guide_draws", "moment_comparison", "psis_khat", "Reference", "nuts_reference",
           "SPLITS", "choose_points", "split_points", "worst_points", "diagnose", "Diagnosis", "examine",
           "examine_splits", "comparison"]
