"""The VAE generative program p(x, z) = p(z) p(x | z) as a ``PyroModule``.

    z_n ~ p(z)                    (prior object, N(0, I) by default)
    x_n ~ p(x | decoder(z_n))     (likelihood object, Bernoulli logits by default)

for n in ``pyro.plate("data", size=N, subsample=idx)``: a minibatch trace is
scaled by N / B, so ``Trace_ELBO`` on a batch is an unbiased estimate of the
full-data ELBO (Kingma & Welling 2013, eq. 8; seed 001).
"""
from __future__ import annotations

from typing import Optional

import torch
import pyro
from pyro.nn import PyroModule
from torch import nn

from .likelihoods import Likelihood


def data_plate(batch_size: int, num_data: Optional[int], subsample: Optional[torch.Tensor],
               device: torch.device) -> pyro.plate:
    """The ``"data"`` plate shared by model and guide (same size, same scaling)."""
    if num_data is None:
        return pyro.plate("data", size=batch_size, dim=-1)
    if subsample is None:
        subsample = torch.arange(batch_size, device=device)
    return pyro.plate("data", size=num_data, subsample=subsample, dim=-1)


class VAEModel(PyroModule):
    """p(x, z) with a swappable prior, decoder network and likelihood.

    ``forward(x, num_data=N, subsample=idx)`` scores a batch ``x`` of shape
    ``(B, *event_shape)``; with ``x=None`` it draws ``batch_size`` new points.
    Labels ``y`` (B,) condition the decoder of a conditional VAE, p(x | z, y).
    """

    def __init__(self, prior: PyroModule, decoder: nn.Module, likelihood: Likelihood):
        super().__init__()
        self.prior = prior
        self.decoder = decoder
        self.likelihood = likelihood

    @property
    def latent_dim(self) -> int:
        """Z, the dimension of the latent code (the prior's)."""
        return self.prior.latent_dim

    def forward(self, x: Optional[torch.Tensor] = None, y: Optional[torch.Tensor] = None,
                num_data: Optional[int] = None, subsample: Optional[torch.Tensor] = None,
                batch_size: Optional[int] = None):
        """The generative program: z ~ p(z), x ~ p(x | decoder(z)) in the ``"data"`` plate.

        Parameters
        ----------
        x : torch.Tensor, optional
            Observations ``(B, *event_shape)``; None draws new points.
        y : torch.Tensor, optional
            Labels (B,) for a label-conditioned decoder.
        num_data : int, optional
            N, the size of the full data set: the plate scales a minibatch's log-densities by N / B.
        subsample : torch.Tensor, optional
            The indices of the minibatch in the data set (default ``arange(B)``).
        batch_size : int, optional
            How many points to draw when ``x`` is None.

        Returns
        -------
        torch.Tensor
            The value of the ``x`` site: ``x`` itself when observed, else the draws.
        """
        if x is None and batch_size is None:
            raise ValueError("VAEModel needs either data x or a batch_size to sample")
        batch = x.shape[0] if x is not None else batch_size
        device = x.device if x is not None else next(self.decoder.parameters()).device
        with data_plate(batch, num_data, subsample, device):
            z = pyro.sample("z", self.prior(torch.Size([batch])))
            return pyro.sample("x", self.likelihood(self.decode(z, y)), obs=x)

    def decode(self, z: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The decoder's output (the likelihood's parameters) for codes z (and labels y)."""
        return self.decoder(z) if y is None else self.decoder(z, y)

    def decode_mean(self, z: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        """E[x | z (, y)]: the image a latent code decodes to."""
        return self.likelihood.mean(self.decode(z, y))
