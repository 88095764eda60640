"""The posterior-collapse report: active units and the KL of each latent dimension.

Active unit (Burda et al. 2015): dimension u with A_u = Cov_x(E_q[z_u | x]) > 0.01.
KL per dimension: E_x KL(q(z_u | x) || p(z_u)) for guides and priors that factorize.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from pyro_vae.guides.base import posterior_mean

from pyro_vae.inference.evaluate.elbo import evaluation_mode, split_batches
from pyro_vae.inference.objectives import rate_terms, weight_terms
from pyro_vae.inference.objectives.weights import particle_trace, sample_sites

ACTIVITY_THRESHOLD = 0.01


LOWER_LAYER_DRAWS = 32  # draws of the layers below that E_q[z_l | x] of a higher layer averages over


@dataclass
class CollapseReport:
    """Posterior collapse of a trained pair, per latent dimension (what ``posterior_collapse`` returns).

    ``activity``: A_u = Cov_x(E_q[z_u | x]) per dimension u; a unit is active when A_u > ``threshold``
    (0.01, Burda et al. 2015). ``kl_per_dim``: E_x KL(q(z_u | x) ‖ p(z_u)) in nats, None when q or p does not
    factorize over dimensions. ``layers``: ``[(site, units)]`` of a guide with several latent sites (a hierarchy),
    in layer order from x up.
    """

    activity: list[float]  # Cov_x(E_q[z_u]) per dimension
    kl_per_dim: Optional[list[float]]  # nats, None when q or p does not factorize
    threshold: float = ACTIVITY_THRESHOLD
    layers: list = field(default_factory=list)  # [(site, units)] of a guide with several latent sites

    @property
    def active_units(self) -> int:
        """The number of active units, the dimensions with A_u > ``threshold``."""
        return sum(a > self.threshold for a in self.activity)

    def active_by_layer(self) -> dict:
        """``{site: (active units, units)}`` of each latent site, in the guide's order."""
        out, start = {}, 0
        for name, units in self.layers:
            out[name] = (sum(a > self.threshold for a in self.activity[start:start + units]), units)
            start += units
        return out

    def to_dict(self) -> dict:
        """The report as JSON-ready values (``active_units``, ``latent_dim``, ``threshold``, ``activity``, ``kl_per_dim``,
        and ``layers`` for a hierarchy)."""
        out = {"active_units": self.active_units, "latent_dim": len(self.activity), "threshold": self.threshold,
               "activity": self.activity, "kl_per_dim": self.kl_per_dim}
        if len(self.layers) > 1:
            out["layers"] = {name: {"active_units": a, "units": n} for name, (a, n) in self.active_by_layer().items()}
        return out


def _in_layer_order(sites, model) -> list:
    """A hierarchy's latent sites z1 .. zL from x up, whichever order its guide samples them in (a ladder
    guide samples from the top)."""
    order = list(model.layer_slices()) if hasattr(model, "layer_slices") else None
    return sorted(sites, key=lambda s: order.index(s["name"])) if order else list(sites)


def _means(guide, batch: torch.Tensor, labels, sites, model=None) -> torch.Tensor:
    """E_q[z | x] of every latent site (B, sum of units); a site above the first averages over
    ``LOWER_LAYER_DRAWS`` draws of the layers below (E_q[z_2 | x] = E_{q(z_1 | x)} E[z_2 | z_1])."""
    if len(sites) > 1:
        sites = _in_layer_order(sample_sites(particle_trace(guide, LOWER_LAYER_DRAWS, batch, y=labels)), model)
        return torch.cat([posterior_mean(s["fn"]).reshape(LOWER_LAYER_DRAWS, batch.shape[0], -1).mean(0)
                          for s in sites], -1)
    return torch.cat([posterior_mean(s["fn"]).reshape(batch.shape[0], -1) for s in sites], -1)


def posterior_collapse(model, guide, x: torch.Tensor, batch_size: int = 1000,
                       seed: int = 0, y: Optional[torch.Tensor] = None) -> CollapseReport:
    """Measure posterior collapse: the activity and the KL of each latent dimension over the rows of ``x``.

    A dimension that the guide leaves at the prior for every x carries no information: its activity
    A_u = Cov_x(E_q[z_u | x]) is about 0 (an inactive unit, Burda et al. 2015) and its KL(q(z_u | x) ‖ p(z_u)) too.

    Parameters
    ----------
    model, guide : callable
        The trained Pyro programs (modules or functions following the library's data convention).
    x : torch.Tensor
        Data points ``(N, *event_shape)``, on the programs' device.
    batch_size : int
        Points per pass.
    seed : int
        Seeds a private random stream (the caller's is untouched), so the figures are reproducible.
    y : torch.Tensor, optional
        Labels (N,) for a conditional VAE.

    Returns
    -------
    CollapseReport
        The activity per dimension, the KL per dimension (None when q or p does not factorize) and the layers.
    """
    means, kls, layers = [], [], []
    with evaluation_mode(seed, x.device, model, guide):
        for batch, labels in split_batches(x, y, batch_size):
            terms = weight_terms(model, guide, 1, batch, y=labels)
            sampled = sample_sites(terms.guide_trace)  # the guide's order, as rate_terms concatenates them
            sites = _in_layer_order(sampled, model)
            layers = [(s["name"], s["fn"].event_shape.numel()) for s in sites]
            means.append(_means(guide, batch, labels, sites, model))
            _, per_dim = rate_terms(terms, analytic=True)
            if per_dim is not None and len(sites) > 1:  # into layer order, as the activities
                chunks = dict(zip([s["name"] for s in sampled],
                                  per_dim.split([s["fn"].event_shape.numel() for s in sampled], -1)))
                per_dim = torch.cat([chunks[name] for name, _ in layers], -1)
            kls.append(None if per_dim is None else per_dim[0])
    mean = torch.cat(means).double()
    activity = mean.var(0, unbiased=False).tolist()
    kl = None if any(k is None for k in kls) else torch.cat(kls).double().mean(0).tolist()
    return CollapseReport(activity, kl, layers=layers)
