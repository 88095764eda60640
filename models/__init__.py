"""Generative programs p(x, z): priors, likelihoods, decoder networks, the VAE model, and the linear-Gaussian
and mixture models of the EM comparison."""
from importlib.metadata import version as _distribution_version

from .conditional import LabelConditionedDecoder, LabelConditionedEncoder
from .conv import ConvDecoder, ConvEncoder
from .counts import NegativeBinomialLikelihood, PoissonLikelihood, ZeroInflatedNegativeBinomialLikelihood
from .discretized import (DiscretizedLogistic, DiscretizedLogisticLikelihood, DiscretizedLogisticMixture,
                          DiscretizedLogisticMixtureLikelihood)
from .entropy_model import FactorizedEntropyPrior
from .likelihoods import (LIKELIHOODS, BernoulliLikelihood, ContinuousBernoulliLikelihood, DecoderScaleGaussianLikelihood,
                          FixedScaleGaussianLikelihood, GlobalScaleGaussianLikelihood,
                          LaplaceLikelihood, Likelihood, PixelScaleGaussianLikelihood)
from .linear_gaussian import PPCAModel
from .mixture import BernoulliMixtureModel
from .networks import MLPDecoder, MLPEncoder, mlp
from .priors import (PRIORS, FlatPrior, FlowPrior, LaplacePrior, LearnedNormalPrior, MixtureOfGaussiansPrior, Prior,
                     StandardNormalPrior, VampPrior)
from .registry import Registry
from .vae import VAEModel, data_plate

__version__ = _distribution_version("pyro-vae-toolkit")  # the one version: the installed distribution's

__all__ = [
    "LIKELIHOODS", "PRIORS", "Registry", "Likelihood", "BernoulliLikelihood", "ContinuousBernoulliLikelihood",
    "FixedScaleGaussianLikelihood", "LaplaceLikelihood", "GlobalScaleGaussianLikelihood", "PixelScaleGaussianLikelihood",
    "DecoderScaleGaussianLikelihood", "DiscretizedLogisticLikelihood", "DiscretizedLogisticMixtureLikelihood",
    "DiscretizedLogistic", "DiscretizedLogisticMixture", "PoissonLikelihood", "NegativeBinomialLikelihood",
    "ZeroInflatedNegativeBinomialLikelihood", "Prior", "StandardNormalPrior",
    "LearnedNormalPrior", "MixtureOfGaussiansPrior", "VampPrior", "FlowPrior", "FlatPrior", "LaplacePrior",
    "FactorizedEntropyPrior", "MLPDecoder", "MLPEncoder", "ConvDecoder", "ConvEncoder", "LabelConditionedDecoder",
    "LabelConditionedEncoder", "mlp", "VAEModel", "data_plate", "PPCAModel", "BernoulliMixtureModel", "__version__",
]
