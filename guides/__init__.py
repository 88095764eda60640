"""Amortized posteriors q(z | x): the guides built on an encoder network, each registered by name, and the
guides of the EM comparison (linear-Gaussian, categorical) and of the denoising autoencoder (corrupted input)."""
from .base import AmortizedGuide, posterior_mean
from .categorical import CategoricalGuide
from .corruption import CorruptedInput
from .delta import DeltaGuide
from .diagonal_normal import DiagonalNormalGuide
from .flow import IAFGuide
from .full_covariance import FullCovarianceGuide
from .linear import LinearGaussianGuide
from .registry import GUIDES
from .uniform_noise import UniformNoiseGuide

from pyro_vae.models import __version__  # the distribution's, read once

__all__ = ["GUIDES", "AmortizedGuide", "DiagonalNormalGuide", "FullCovarianceGuide", "IAFGuide", "DeltaGuide",
           "UniformNoiseGuide", "LinearGaussianGuide", "CategoricalGuide", "CorruptedInput", "posterior_mean",
           "__version__"]
