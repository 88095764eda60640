"""Generative programs p(x, z): priors, likelihoods, decoder networks, the VAE model."""
from . import entropy_model  # noqa: F401  (registers the "entropy_model" prior)
from .likelihoods import LIKELIHOODS, BernoulliLikelihood, FixedScaleGaussianLikelihood, Likelihood
from .networks import MLPDecoder, MLPEncoder, mlp
from .priors import PRIORS, StandardNormalPrior
from .registry import Registry
from .vae import VAEModel, data_plate

__all__ = [
    "LIKELIHOODS", "PRIORS", "Registry", "Likelihood", "BernoulliLikelihood",
    "FixedScaleGaussianLikelihood", "StandardNormalPrior", "MLPDecoder", "MLPEncoder",
    "mlp", "VAEModel", "data_plate",
]
