"""An amortized guide for a discrete latent: q(c | x) = Categorical(softmax(A x + b)).

Marked for parallel enumeration, so ``TraceEnum_ELBO`` takes the expectation over q
exactly (sum over the K values weighted by q) instead of sampling: the ELBO is
log p(x) - KL(q(c | x) || p(c | x)) with no Monte Carlo noise (seed 003).
"""
from __future__ import annotations

from typing import Optional

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

from pyro_vae.models.vae import data_plate


class CategoricalGuide(PyroModule):
    """q(c | x) = Categorical(softmax(A x + b)): the guide of the Bernoulli mixture's discrete component.

    Its site ``c`` is marked for parallel enumeration, so ``TraceEnum_ELBO`` sums over the K values exactly.
    """

    def __init__(self, data_dim: int, num_components: int):
        super().__init__()
        self.linear = nn.Linear(data_dim, num_components)

    def forward(self, x: Optional[torch.Tensor] = None, y=None, num_data: Optional[int] = None,
                subsample: Optional[torch.Tensor] = None, batch_size: Optional[int] = None):
        """The guide program: c ~ Categorical(logits = A x + b), enumerated, in the ``"data"`` plate."""
        if x is None:
            raise ValueError("the guide q(c | x) needs data x")
        with data_plate(x.shape[0], num_data, subsample, x.device):
            return pyro.sample("c", dist.Categorical(logits=self.linear(x)), infer={"enumerate": "parallel"})
