"""The posterior-collapse report: active units and the KL of each latent dimension.

Active unit (Burda et al. 2015): dimension u with A_u = Cov_x(E_q[z_u | x]) > 0.01.
KL per dimension: E_x KL(q(z_u | x) || p(z_u)) for guides and priors that factorize.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from guides.base import posterior_mean

from inference.evaluate.elbo import evaluation_mode, split_batches
from inference.objectives import rate_terms, weight_terms
from inference.objectives.weights import sample_sites

ACTIVITY_THRESHOLD = 0.01


@dataclass
class CollapseReport:
    activity: list[float]  # Cov_x(E_q[z_u]) per dimension
    kl_per_dim: Optional[list[float]]  # nats, None when q or p does not factorize
    threshold: float = ACTIVITY_THRESHOLD

    @property
    def active_units(self) -> int:
        return sum(a > self.threshold for a in self.activity)

    def to_dict(self) -> dict:
        return {"active_units": self.active_units, "latent_dim": len(self.activity), "threshold": self.threshold,
                "activity": self.activity, "kl_per_dim": self.kl_per_dim}


def posterior_collapse(model, guide, x: torch.Tensor, batch_size: int = 1000,
                       seed: int = 0, y: Optional[torch.Tensor] = None) -> CollapseReport:
    means, kls = [], []
    with evaluation_mode(seed, x.device, model, guide):
        for batch, labels in split_batches(x, y, batch_size):
            terms = weight_terms(model, guide, 1, batch, y=labels)
            sites = sample_sites(terms.guide_trace)
            means.append(torch.cat([posterior_mean(s["fn"]).reshape(batch.shape[0], -1) for s in sites], -1))
            _, per_dim = rate_terms(terms, analytic=True)
            kls.append(None if per_dim is None else per_dim[0])
    mean = torch.cat(means).double()
    activity = mean.var(0, unbiased=False).tolist()
    kl = None if any(k is None for k in kls) else torch.cat(kls).double().mean(0).tolist()
    return CollapseReport(activity, kl)
