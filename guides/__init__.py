"""Amortized posteriors q(z | x): encoder networks and the guides built on them."""
from .base import AmortizedGuide
from .delta import DeltaGuide
from .diagonal_normal import DiagonalNormalGuide
from .flow import IAFGuide
from .full_covariance import FullCovarianceGuide
from .registry import GUIDES
from .uniform_noise import UniformNoiseGuide

__all__ = ["GUIDES", "AmortizedGuide", "DiagonalNormalGuide", "FullCovarianceGuide", "IAFGuide", "DeltaGuide", "UniformNoiseGuide"]
