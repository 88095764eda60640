"""A mixture of Bernoullis on binarized images: a discrete latent whose posterior is exact.

    c ~ Categorical(pi),   x | c ~ prod_d Bernoulli(mu_cd)
    log p(x) = logsumexp_k [log pi_k + sum_d x_d log mu_kd + (1 - x_d) log(1 - mu_kd)]

``pseudo_count`` a > 0 adds the log-density of a Beta(a + 1, a + 1) prior on each mu_kd
(``pyro.factor``, outside the data plate), so exact EM (MAP-EM, Laplace smoothing) and SVI
maximize the same objective and no pixel probability reaches 0 or 1.
"""
from __future__ import annotations

from typing import Optional

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.nn import PyroModule
from torch import nn

from .vae import data_plate


def mixture_log_likelihood(x: torch.Tensor, log_weights: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Exact log p(x_n) per row; ``log_weights`` (K,) normalized, ``logits`` (K, D) of mu."""
    log_px_c = x @ F.logsigmoid(logits).T + (1 - x) @ F.logsigmoid(-logits).T  # (N, K)
    return torch.logsumexp(log_px_c + log_weights, dim=-1)


def smoothing_log_prior(logits: torch.Tensor, pseudo_count: float) -> torch.Tensor:
    """sum_kd a [log mu_kd + log(1 - mu_kd)]: Beta(a + 1, a + 1) up to its constant."""
    return pseudo_count * (F.logsigmoid(logits) + F.logsigmoid(-logits)).sum()


class BernoulliMixtureModel(PyroModule):
    """The mixture as a Pyro program; ``c`` is marked for parallel enumeration (``TraceEnum_ELBO``)."""

    def __init__(self, data_dim: int, num_components: int, pseudo_count: float = 1.0):
        super().__init__()
        self.pseudo_count = pseudo_count
        self.weight_logits = nn.Parameter(torch.zeros(num_components))
        self.logits = nn.Parameter(0.1 * torch.randn(num_components, data_dim))

    @property
    def log_weights(self) -> torch.Tensor:
        """log pi (K,), normalized (log_softmax of the weight logits)."""
        return F.log_softmax(self.weight_logits, -1)

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x_n) per row of binary ``x`` (N, D), without gradients."""
        with torch.no_grad():
            return mixture_log_likelihood(x, self.log_weights, self.logits)

    def forward(self, x: Optional[torch.Tensor] = None, y=None, num_data: Optional[int] = None,
                subsample: Optional[torch.Tensor] = None, batch_size: Optional[int] = None):
        """c ~ Categorical(pi), enumerated, and x ~ prod_d Bernoulli(mu_cd) in the ``"data"`` plate; the Beta
        smoothing factor."""
        if self.pseudo_count:
            pyro.factor("smoothing", smoothing_log_prior(self.logits, self.pseudo_count))
        batch = x.shape[0] if x is not None else (batch_size or 1)
        with data_plate(batch, num_data, subsample, self.logits.device):
            c = pyro.sample("c", dist.Categorical(logits=self.weight_logits), infer={"enumerate": "parallel"})
            return pyro.sample("x", dist.Bernoulli(logits=self.logits[c]).to_event(1), obs=x)
