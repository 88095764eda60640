"""Test ELBO per data point, split into its two terms (seed 000, Alemi et al. 2018):

    ELBO(x) = E_q log p(x | z) - KL(q(z | x) || p(z))
            =  -fit_loss       -  kl_loss

The KL is the closed form where ``torch.distributions`` has one (seed 000's
-1/2 sum(1 + 2 log sigma - mu^2 - sigma^2) for the Gaussian pair), else the
one-sample Monte Carlo estimate log q(z|x) - log p(z). Both terms come from the
Pyro traces of the user's guide and model, so any registered component works.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from pyro import poutine
from torch import nn
from torch.distributions import kl_divergence

LOG2 = math.log(2.0)


@dataclass
class ELBOReport:
    """Per-data-point averages in nats; ``elbo = reconstruction - kl``."""

    elbo: float
    reconstruction: float  # E_q log p(x | z)
    kl: float  # KL(q(z | x) || p(z))
    num_data: int
    pixels: int

    @property
    def bits_per_dim(self) -> float:
        """-ELBO in bits per pixel: an upper bound on the code length of x."""
        return -self.elbo / (self.pixels * LOG2)

    def to_dict(self) -> dict:
        return {**asdict(self), "bits_per_dim": self.bits_per_dim}


def elbo_terms(model: Callable, guide: Callable, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-point ``(E_q log p(x|z), KL(q||p))`` from one draw z ~ q(z | x), shape (B,) each."""
    guide_trace = poutine.trace(guide).get_trace(x)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x)
    x_site, z_model, z_guide = model_trace.nodes["x"], model_trace.nodes["z"], guide_trace.nodes["z"]
    reconstruction = x_site["fn"].log_prob(x_site["value"])
    try:
        kl = kl_divergence(z_guide["fn"], z_model["fn"])
    except NotImplementedError:
        z = z_guide["value"]
        kl = z_guide["fn"].log_prob(z) - z_model["fn"].log_prob(z)
    return reconstruction, kl


@torch.no_grad()
def evaluate_elbo(model: nn.Module, guide: nn.Module, x: torch.Tensor, batch_size: int = 1000,
                  seed: int = 0) -> ELBOReport:
    """Average ELBO, reconstruction and KL over the rows of ``x`` (nats per point).

    Draws z with its own seed inside ``torch.random.fork_rng``: the figure is
    reproducible and the caller's random stream (e.g. training) is untouched.
    """
    devices = [x.device.index or 0] if x.device.type == "cuda" else []
    modes = [(m, m.training) for m in (model, guide)]
    model.eval(), guide.eval()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            rec_sum = torch.zeros((), dtype=torch.float64, device=x.device)
            kl_sum = torch.zeros((), dtype=torch.float64, device=x.device)
            for batch in x.split(batch_size):
                rec, kl = elbo_terms(model, guide, batch)
                rec_sum += rec.double().sum()
                kl_sum += kl.double().sum()
    finally:
        for m, training in modes:
            m.train(training)
    n = x.shape[0]
    rec_mean, kl_mean = rec_sum.item() / n, kl_sum.item() / n
    return ELBOReport(rec_mean - kl_mean, rec_mean, kl_mean, n, x[0].numel())
