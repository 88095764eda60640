"""Build the model p(x, z) and guide q(z | x) a ``RunConfig`` names.

The one place where registry names become objects: swapping a likelihood, prior or guide changes a config
string and nothing else. Each component builds itself from the config with its own options
(``from_config``); the networks around them are made here.
"""
from __future__ import annotations

import torch

from pyro_vae.guides import GUIDES
from pyro_vae.guides.corruption import CorruptedInput
from pyro_vae.guides.hierarchical import BottomUpGuide, TopLayerView
from pyro_vae.guides.ladder import LadderGuide, LadderStep
from pyro_vae.models import LIKELIHOODS, PRIORS, MLPDecoder, MLPEncoder, VAEModel
from pyro_vae.models.conditional import LabelConditionedDecoder, LabelConditionedEncoder
from pyro_vae.models.conv import ConvDecoder, ConvEncoder
from pyro_vae.models.hierarchical import GaussianLayer, HierarchicalVAEModel
from pyro_vae.models.likelihoods import COUNT
from pyro_vae.models.networks import Log1pInput

from pyro_vae.inference.config.hierarchy import link_widths
from pyro_vae.inference.config.sections import GuideConfig, ModelConfig, device_problem
from pyro_vae.inference.errors import UserError


def _prior_and_likelihood(config: ModelConfig, event_shape: torch.Size):
    prior = PRIORS.get(config.prior).from_config(config, config.latent_dim, torch.Size(event_shape))
    likelihood = LIKELIHOODS.get(config.likelihood).from_config(config, torch.Size(event_shape))
    return prior, likelihood


def build_model(config: ModelConfig, event_shape: torch.Size) -> VAEModel:
    """The ``VAEModel`` a ``ModelConfig`` names for data points of ``event_shape``: prior, decoder and likelihood.

    The prior and the likelihood build themselves from the config (``from_config``); the decoder is an MLP or a
    convolutional network with the likelihood's ``params_per_pixel`` outputs per pixel, reading [z, onehot(y)] for a
    conditional VAE.
    """
    prior, likelihood = _prior_and_likelihood(config, event_shape)
    classes = config.num_classes if config.conditional else 0
    inputs = config.latent_dim + classes  # a conditional decoder reads [z, onehot(y)]
    if config.arch == "conv":
        decoder = ConvDecoder(inputs, event_shape, config.channels, config.activation,
                              likelihood.params_per_pixel, config.upsample)
    else:
        decoder = MLPDecoder(inputs, event_shape, config.hidden_dim, config.num_hidden_layers,
                             config.activation, likelihood.params_per_pixel)
    if classes:
        decoder = LabelConditionedDecoder(decoder, classes)
    return VAEModel(prior, decoder, likelihood)


def build_guide(config: GuideConfig, latent_dim: int, event_shape: torch.Size, num_classes: int = 0,
                counts: bool = False):
    """The guide ``config`` names; with ``num_classes`` its encoder also reads the label (q(z | x, y)); with
    ``counts`` it reads log(1 + x) (``Log1pInput``)."""
    guide_cls = GUIDES.get(config.guide)
    width = guide_cls.encoder_outputs(latent_dim)
    features = config.hidden_dim if num_classes else width
    if config.arch == "conv":
        encoder = ConvEncoder(event_shape, features, config.channels, config.activation)
    else:
        encoder = MLPEncoder(event_shape, features, config.hidden_dim, config.num_hidden_layers, config.activation)
    if num_classes:
        encoder = LabelConditionedEncoder(encoder, features, width, num_classes)
    if config.corruption != "none":  # the denoising autoencoder: the guide sees a corrupted input
        encoder = CorruptedInput(encoder, config.corruption, config.corruption_level)
    if counts:  # outermost: the corruption acts on log(1 + x), which is defined for any count
        encoder = Log1pInput(encoder)
    return guide_cls.from_config(config, encoder, latent_dim)


def build_hierarchical(model_config: ModelConfig, guide_config: GuideConfig, event_shape: torch.Size):
    """``--hierarchy``: the model of ``models/hierarchical.py`` (layers ``hierarchy`` below a top layer of
    ``latent_dim`` units) and its bottom-up guide (``--hierarchy-guide ladder``: the top-down guide of
    ``guides/ladder.py``); each link twice as wide as the layer above it."""
    m, g = model_config, guide_config
    dims = [*m.hierarchy, m.latent_dim]
    widths = link_widths(m.hierarchy, m.latent_dim)
    prior, likelihood = _prior_and_likelihood(m, event_shape)
    decoder = MLPDecoder(dims[0], event_shape, widths[0], m.num_hidden_layers, m.activation,
                         likelihood.params_per_pixel)
    downward = [GaussianLayer(dims[i + 1], dims[i], widths[i + 1], m.num_hidden_layers, m.activation)
                for i in range(len(dims) - 1)]
    model = HierarchicalVAEModel(prior, downward, decoder, likelihood, dims)
    counts = LIKELIHOODS.get(m.likelihood).data == COUNT
    if g.hierarchy_guide == "ladder":  # upward features as wide as the links; down the model's own path
        inputs = [event_shape.numel(), *widths[:-1]]
        steps = [LadderStep(inputs[i], dims[i], widths[i], g.num_hidden_layers, g.activation, g.min_scale)
                 for i in range(len(dims))]
        guide = LadderGuide(steps, model, event_shape, log1p=counts)
    else:
        upward = [GaussianLayer(event_shape.numel(), dims[0], widths[0], g.num_hidden_layers, g.activation,
                                g.min_scale)]
        upward += [GaussianLayer(dims[i], dims[i + 1], widths[i + 1], g.num_hidden_layers, g.activation,
                                 g.min_scale) for i in range(len(dims) - 1)]
        guide = BottomUpGuide(upward, event_shape, log1p=counts)
    if hasattr(prior, "attach_guide"):  # the VampPrior over the top layer mixes the guide's top factor
        prior.attach_guide(TopLayerView(guide))
    return model, guide


def build_model_and_guide(model_config: ModelConfig, guide_config: GuideConfig, event_shape: torch.Size):
    """Model and guide, linked where a component needs both (the VampPrior uses the guide)."""
    if model_config.hierarchy:
        return build_hierarchical(model_config, guide_config, torch.Size(event_shape))
    model = build_model(model_config, event_shape)
    guide = build_guide(guide_config, model_config.latent_dim, event_shape,
                        model_config.num_classes if model_config.conditional else 0,
                        counts=LIKELIHOODS.get(model_config.likelihood).data == COUNT)
    if hasattr(model.prior, "attach_guide"):
        model.prior.attach_guide(guide)
    return model, guide


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; a name other than ``device_problem``'s, or a device this machine
    lacks (``cuda`` without a GPU, ``cuda:N`` beyond its GPUs, ``mps`` off a Mac), is a user error. A
    ``torch.device`` is taken as its name."""
    name = str(name)
    problem = device_problem(name)
    if problem:
        raise UserError(f"--device {problem}, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name} was asked for but no CUDA GPU is available; use --device cpu or auto")
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        raise UserError(f"--device {name} was asked for but this machine has {torch.cuda.device_count()} CUDA GPUs "
                        f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps was asked for but Apple's MPS is not available here; use --device cpu or auto")
    return torch.device(name)


def __getattr__(name: str):
    if name == "construct":  # removed in 0.4.0: each component builds itself (from_config); a shim for 0.4
        import warnings

        from pyro_vae.models.registry import accepted

        warnings.warn("pyro_vae.inference.runs.build.construct is deprecated: build a component with "
                      "cls.from_config(config, ...) or call its constructor", DeprecationWarning, stacklevel=2)
        return lambda cls, *args, **options: cls(*args, **accepted(cls, **options))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
