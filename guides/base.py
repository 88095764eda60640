"""The shared shape of an amortized guide: an encoder network, and q(z | x) built
from its output inside the same ``"data"`` plate as the model's.

A subclass gives ``posterior(x)`` (a distribution with batch shape (B,) and
event shape (Z,)) and ``encoder_outputs(latent_dim)``, the width the encoder
must produce for it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

from pyro_vae.models.registry import accepted, option
from pyro_vae.models.vae import data_plate


def posterior_mean(q: dist.TorchDistribution, draws: int = 64) -> torch.Tensor:
    """E_q[z]: exact where the distribution has it, else the average of ``draws`` samples."""
    try:
        return q.mean
    except NotImplementedError:
        return (q.rsample((draws,)) if q.has_rsample else q.sample((draws,))).mean(0)


@dataclass
class MinScaleConfig:
    min_scale: float = option(1e-5, "floor on the guide's standard deviations", above=0)


class AmortizedGuide(PyroModule):
    """The base of the amortized guides q(z | x): an encoder network, and ``posterior(x)`` built from its output.

    ``deterministic``: q is a point mass (no entropy); ``mixable``: posteriors at a batch of inputs form one
    batched family that ``MixtureSameFamily`` can mix (the VampPrior); ``posterior_kind`` names the family;
    ``factorized``: q(z | x) is a product over latent dimensions (free bits need it). Options: ``Config``
    (``pyro_vae.models.registry``), built by ``from_config``."""

    deterministic = False
    mixable = False
    factorized = False
    posterior_kind = "flow"
    Config = MinScaleConfig

    @classmethod
    def from_config(cls, config, encoder: nn.Module, latent_dim: int) -> "AmortizedGuide":
        """The guide a guide config names on ``encoder`` (``min_scale`` when the constructor takes it)."""
        return cls(encoder, latent_dim, **accepted(cls, min_scale=config.min_scale))

    def __init__(self, encoder: nn.Module, latent_dim: int):
        super().__init__()
        self.encoder = encoder
        self.latent_dim = latent_dim

    @classmethod
    def encoder_outputs(cls, latent_dim: int) -> int:
        """The width of the encoder's output this guide needs for a ``latent_dim`` code (here 2 Z: location, raw scale)."""
        return 2 * latent_dim

    def encode(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The encoder's output for x (and labels y, for the conditional VAE's q(z | x, y))."""
        return self.encoder(x) if y is None else self.encoder(x, y)

    def posterior(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> dist.TorchDistribution:
        """q(z | x) for a batch: a distribution with batch shape (B,) and event shape (Z,), built from ``encode(x, y)``.

        Parameters
        ----------
        x : torch.Tensor
            Data points ``(B, *event_shape)``.
        y : torch.Tensor, optional
            Labels (B,) for a label-conditioned encoder, q(z | x, y).
        """
        raise NotImplementedError

    def code(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, draws: int = 64) -> torch.Tensor:
        """The code of each image, E_q[z | x] (B, Z): the Delta guide's point, a Gaussian's mean; for a guide
        without a closed-form mean (a flow) the average of ``draws`` reparameterized samples. Differentiable."""
        return posterior_mean(self.posterior(x, y), draws)

    def forward(self, x: Optional[torch.Tensor] = None, y: Optional[torch.Tensor] = None,
                num_data: Optional[int] = None, subsample: Optional[torch.Tensor] = None,
                batch_size: Optional[int] = None):
        """The guide program: z ~ ``posterior(x, y)`` in the same ``"data"`` plate (size, subsample, scaling) as the model's.

        Takes the model's arguments (``batch_size`` is ignored: a guide needs data) and returns the sampled z.
        """
        if x is None:
            raise ValueError("the guide q(z | x) needs data x")
        with data_plate(x.shape[0], num_data, subsample, x.device):
            return pyro.sample("z", self.posterior(x, y))
