"""Posterior diagnostics with ArviZ (``vae diagnose``): NUTS references, PSIS k-hat, gaps, collapse, PPC."""
from inference.diagnostics.guide_check import gaps, gaussian_kl, guide_draws, moment_comparison, psis_khat
from inference.diagnostics.reference import Reference, nuts_reference
from inference.diagnostics.report import Diagnosis, choose_points, diagnose, examine

__all__ = ["gaps", "gaussian_kl", "guide_draws", "moment_comparison", "psis_khat", "Reference", "nuts_reference",
           "choose_points", "diagnose", "Diagnosis", "examine"]
