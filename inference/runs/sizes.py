"""What a run's config asks of memory, checked before anything is allocated (``pyro_vae.inference.memory``).

The networks are counted exactly by building them on PyTorch's ``meta`` device (shapes, no storage); a
training step holds each parameter four times (the weights, their gradients, Adam's two moments). Counts
that make Python objects one by one (layers, flows) are bounded first, so that even the count of a huge
number of layers takes no time.
"""
from __future__ import annotations

import itertools
from dataclasses import fields

import torch

from pyro_vae.guides import GUIDES
from pyro_vae.models import PRIORS
from pyro_vae.models.networks import flow_hidden_width

from pyro_vae.inference.config.sections import RunConfig
from pyro_vae.inference.memory import require_memory
from pyro_vae.inference.runs.build import build_model_and_guide

FLOAT = 4
COPIES = 4  # weights, gradients, Adam's first and second moments
LAYER_BYTES = 1000  # Python's memory for one layer object, at least


def _declares(registry, name: str, option_name: str) -> bool:
    config = getattr(registry.get(name), "Config", None)
    return config is not None and option_name in {f.name for f in fields(config)}


def _flows(config: RunConfig) -> int:
    """Flow layers the prior and the guide build (the flow prior's ``prior_flows``, the IAF guide's ``flows``)."""
    prior = config.model.prior_flows if _declares(PRIORS, config.model.prior, "prior_flows") else 0
    guide = config.guide.flows if _declares(GUIDES, config.guide.guide, "flows") else 0
    return prior + guide


def _flow_parameters(latent_dim: int) -> int:
    """An autoregressive flow layer's parameters, at least: latent -> hidden -> 2 latent (Pyro's MADE)."""
    hidden = flow_hidden_width(latent_dim)
    return latent_dim * hidden + hidden * 2 * latent_dim


def _floor_bytes(config: RunConfig) -> int:
    """Bytes the layers, convolutions and flows need at least, from their sizes alone (also keeps sizes whose
    tensors PyTorch cannot even describe from reaching the meta build)."""
    m, g = config.model, config.guide
    layers = (m.num_hidden_layers if m.arch == "mlp" else 0) + (g.num_hidden_layers if g.arch == "mlp" else 0)
    weights = (m.num_hidden_layers * m.hidden_dim ** 2 if m.arch == "mlp" else 0) + \
        (g.num_hidden_layers * g.hidden_dim ** 2 if g.arch == "mlp" else 0)
    convolutions = sum(2 * c.channels ** 2 * 16 for c in (m, g) if c.arch == "conv")  # channels -> 2 channels, 4x4
    flows = _flows(config)
    units = [*(m.hierarchy or []), m.latent_dim] if m.hierarchy else []  # stochastic layers, bottom to top
    stacked = 2 * sum(a * b for a, b in zip(units, units[1:])) + (2 * units[0] ** 2 if units else 0)  # z1 -> 2 z1
    return (layers + flows + len(units)) * LAYER_BYTES + COPIES * FLOAT * (
        weights + convolutions + stacked + flows * _flow_parameters(m.latent_dim))


def _meta_count(config: RunConfig, event_shape: torch.Size) -> int:
    with torch.device("meta"):
        model, guide = build_model_and_guide(config.model, config.guide, event_shape)
    return sum(t.numel() for module in (model, guide) for t in itertools.chain(module.parameters(), module.buffers()))


def parameter_count(config: RunConfig, event_shape: torch.Size) -> int:
    """Numbers in the model's and guide's parameters and buffers, counted without allocating them."""
    try:
        return _meta_count(config, event_shape)
    except RuntimeError:  # Pyro's autoregressive networks read values while they are built: counted apart
        no_flows = config.copy()
        no_flows.model.prior_flows = no_flows.guide.flows = 0
        return _meta_count(no_flows, event_shape) + _flows(config) * _flow_parameters(config.model.latent_dim)


def check_model_fits(config: RunConfig, event_shape: torch.Size, num_train: int, device=None) -> None:
    """Refuse, in one line with the size, networks whose training state, or a training step over
    ``num_train`` points in batches, cannot fit in ``device``'s memory."""
    remedy = ("choose smaller networks (--latent-dim, --hierarchy, --hidden-dim, --num-hidden-layers, --channels, "
              "--prior-components, flows)")
    require_memory(_floor_bytes(config), "the networks' layers", remedy, device)
    count = parameter_count(config, event_shape)
    require_memory(COPIES * FLOAT * count, f"the networks' {count:,} parameters (weights, gradients and Adam's "
                   f"moments)", remedy, device)
    batch = min(config.train.batch_size, num_train)
    particles = config.objective.num_particles
    outputs = event_shape.numel() * 2  # at least the decoder's outputs and their gradients, per draw
    require_memory(FLOAT * particles * batch * outputs, f"a training step of {particles} particles x {batch} "
                   f"points", "ask for fewer --num-particles or a smaller --batch-size", device)

