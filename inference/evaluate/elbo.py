"""Test ELBO per data point, split into distortion and rate (Alemi et al. 2018):

    -ELBO(x) = D + R,  D = -E_q log p(x | z)  (seed 000's fit_loss),
                       R = KL(q(z | x) || p(z)) (seed 000's kl_loss)

R is the closed form where ``torch.distributions`` has one (seed 000's
-1/2 sum(1 + 2 log sigma - mu^2 - sigma^2) for the Gaussian pair), else the
one-sample estimate log q(z|x) - log p(z). Both terms come from Pyro traces of
the user's guide and model, so any registered component works.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from pyro_vae.inference.objectives import rate_terms, weight_terms
from pyro_vae.inference.programs import eval_mode

LOG2 = math.log(2.0)


@dataclass
class ELBOReport:
    """Per-data-point averages in nats: ``elbo = -(distortion + rate)``."""

    elbo: float
    distortion: float  # D = -E_q log p(x | z)
    rate: float  # R = KL(q(z | x) || p(z))
    num_data: int
    pixels: int

    @property
    def reconstruction(self) -> float:
        """E_q log p(x | z) = -D."""
        return -self.distortion

    @property
    def kl(self) -> float:
        """The rate R = KL(q(z | x) ‖ p(z)) (another name for ``rate``)."""
        return self.rate

    def bits_per_dim(self, nats: float) -> float:
        """``nats`` per data point in bits per dimension: nats / (D log 2), D the pixels of a data point."""
        return nats / (self.pixels * LOG2)

    def to_dict(self) -> dict:
        """The report as JSON-ready values, with -ELBO, D and R also in bits per dimension."""
        return {"elbo": self.elbo, "distortion": self.distortion, "rate": self.rate, "num_data": self.num_data,
                "pixels": self.pixels, "neg_elbo_bits_per_dim": self.bits_per_dim(-self.elbo),
                "distortion_bits_per_dim": self.bits_per_dim(self.distortion),
                "rate_bits_per_dim": self.bits_per_dim(self.rate)}


def elbo_terms(model: Callable, guide: Callable, x: torch.Tensor,
               y: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-point ``(D, R)`` from one draw z ~ q(z | x), each of shape (B,)."""
    terms = weight_terms(model, guide, 1, x, y=y)
    rate, _ = rate_terms(terms, analytic=True)
    return -terms.log_likelihood[0], rate[0]


@contextmanager
def evaluation_mode(seed: int, device: torch.device, *programs):
    """The ``nn.Module`` programs in eval mode (plain functions have no mode), no gradients, and a private
    seeded RNG stream: the figure is reproducible and the caller's random stream is untouched."""
    with eval_mode(*programs), torch.no_grad(), \
            torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


@contextmanager
def frozen(module: nn.Module):
    """The module's parameters out of autograd for the block (gradients only for the caller's own tensors,
    e.g. latent codes or local variational parameters); each parameter's flag is restored after."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def split_batches(x: torch.Tensor, y: Optional[torch.Tensor], batch_size: int):
    """``(x_b, y_b)`` pairs of at most ``batch_size`` rows; ``y_b`` is None without labels."""
    ys = y.split(batch_size) if y is not None else [None] * len(x.split(batch_size))
    return zip(x.split(batch_size), ys)


def evaluate_elbo(model: Callable, guide: Callable, x: torch.Tensor, batch_size: int = 1000,
                  seed: int = 0, y: Optional[torch.Tensor] = None) -> ELBOReport:
    """Average ELBO, distortion and rate over the rows of ``x`` (nats per point).

    -ELBO(x) = D + R, D = -E_q log p(x | z) the distortion and R = KL(q(z | x) ‖ p(z)) the rate (Alemi et al.
    2018), from one draw z ~ q(z | x) per point; R in closed form where ``torch.distributions`` has one.

    Parameters
    ----------
    model, guide : callable
        Any Pyro programs (modules or functions) that take ``x`` (and the keywords of the library's data
        convention they accept: ``y``, ``num_data``, ``subsample``).
    x : torch.Tensor
        Data points ``(N, *event_shape)``, on the programs' device.
    batch_size : int
        Points per pass.
    seed : int
        Seeds a private random stream (the caller's is untouched), so the figure is reproducible.
    y : torch.Tensor, optional
        Labels (N,) for a conditional VAE.

    Returns
    -------
    ELBOReport
        The averages in nats per data point, and the number of points and pixels (for bits per dimension).
    """
    with evaluation_mode(seed, x.device, model, guide):
        sums = torch.zeros(2, dtype=torch.float64, device=x.device)
        for batch, labels in split_batches(x, y, batch_size):
            distortion, rate = elbo_terms(model, guide, batch, labels)
            sums += torch.stack([distortion.double().sum(), rate.double().sum()])
    d, r = (sums / x.shape[0]).tolist()
    return ELBOReport(-(d + r), d, r, x.shape[0], x[0].numel())
