"""Measures of the autoencoder family (seeds 000 and 002): reconstruction, code sparsity, contraction.

Each family member is a (model, guide, objective) setting of ``vae train --family`` (``config.FAMILIES``);
these functions measure the property that defines it, the same way for every member.
"""
from __future__ import annotations

from typing import Optional

import torch

from pyro_vae.inference.objectives.contractive import encoder_jacobian_norm
from pyro_vae.inference.programs import eval_mode


@torch.no_grad()
def codes(guide, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The code of each image, ``guide.code``: E_q[z | x] (the Delta guide's point, a Gaussian guide's mean, a
    flow's sample average), with the guide in eval mode; labels ``y`` for a conditional guide."""
    with eval_mode(guide):
        return guide.code(x, y)


@torch.no_grad()
def reconstruction_error(model, guide, x_in: torch.Tensor, x_target: torch.Tensor) -> float:
    """Mean over images of the squared error sum_d (E[x_d | code(x_in)] - target_d)^2."""
    recon = model.decode_mean(codes(guide, x_in))
    return float(((recon - x_target) ** 2).flatten(1).sum(-1).mean())


def code_sparsity(guide, x: torch.Tensor, threshold: float = 0.05) -> float:
    """Share of code entries with ``|z|`` < ``threshold`` times the largest ``|z|`` of the set."""
    z = codes(guide, x).abs()
    return float((z < threshold * z.max()).float().mean())


def mean_jacobian_norm(guide, x: torch.Tensor) -> float:
    """Mean over images of ||d code / d x||_F^2 (the contractive penalty, Rifai et al. 2011)."""
    was_training = guide.training
    guide.eval()
    try:
        return float(encoder_jacobian_norm(guide, x).mean().detach())
    finally:
        guide.train(was_training)


def mmd_squared(a: torch.Tensor, b: torch.Tensor, bandwidth: float = 1.0) -> float:
    """Unbiased squared maximum mean discrepancy (Gretton et al. 2012) between samples ``a`` and ``b`` (rows),
    Gaussian kernel exp(-‖u - v‖² / (2 h^2 Z)): 0 in expectation when both come from one distribution."""
    a, b = a.double(), b.double()
    scale = 2 * bandwidth ** 2 * a.shape[1]

    def mean_kernel(u, v, same):
        k = torch.exp(-torch.cdist(u, v).pow(2) / scale)
        if same:
            n = u.shape[0]
            return (k.sum() - k.diagonal().sum()) / (n * (n - 1))
        return k.mean()

    return float(mean_kernel(a, a, True) + mean_kernel(b, b, True) - 2 * mean_kernel(a, b, False))
