"""Reference posteriors p(z | x_n) by NUTS with the decoder fixed, as ``arviz.InferenceData``.

The posterior of a VAE factorizes over data points, so a NUTS sampler over the joint of all chosen
points and all chains at once (z of shape (C, P, Z)) draws C x P independent posteriors in lockstep:
one Python loop, one batched decoder call per leapfrog step. The C chains start from overdispersed
points (the guide's means plus N(0, 2^2) noise); they share the adapted step size, mass matrix and
trajectory length (and so a divergence flag), nothing else. R-hat and bulk/tail ESS come from ArviZ;
a reference with R-hat > 1.01 on any coordinate is reported as not converged.
"""
from __future__ import annotations

from dataclasses import dataclass

import arviz as az
import numpy as np
import torch

from pyro_vae.inference.diagnostics.predictive import coords, inference_data, latent_variables  # noqa: F401
from pyro_vae.inference.diagnostics.sampler import RecordingNUTS
from pyro_vae.inference.em.nonlinear import log_joint, posterior_mcmc

RHAT_LIMIT = 1.01


@dataclass
class Reference:
    """A NUTS reference posterior and its convergence figures: the draws as ``arviz.InferenceData``, the largest
    R-hat, the smallest bulk and tail ESS over all coordinates, and the number of divergent transitions."""

    idata: az.InferenceData
    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int

    @classmethod
    def of(cls, idata: az.InferenceData, divergences: int) -> "Reference":
        """R-hat and bulk / tail ESS of ``idata``'s posterior, unrounded (``az.summary`` rounds to 2 decimals)."""
        names = list(idata.posterior.data_vars)
        return cls(idata, _extreme(az.rhat(idata, var_names=names), np.max),
                   _extreme(az.ess(idata, var_names=names, method="bulk"), np.min),
                   _extreme(az.ess(idata, var_names=names, method="tail"), np.min), divergences)

    @property
    def converged(self) -> bool:
        """R-hat ≤ 1.01 on every coordinate (Vehtari et al. 2021)."""
        return self.max_rhat <= RHAT_LIMIT

    def summary(self) -> dict:
        """The convergence figures as JSON-ready values, with ``converged`` and the R-hat limit."""
        return {"max_rhat": self.max_rhat, "min_ess_bulk": self.min_ess_bulk, "min_ess_tail": self.min_ess_tail,
                "divergences": self.divergences, "converged": self.converged, "rhat_limit": RHAT_LIMIT}


def layer_layout(model) -> dict:
    """``{variable: slice}`` of the latent code: ``{"z": all}`` for one stochastic layer, one entry per layer
    (``z1``, ``z2``, ...) of a hierarchy, whose code is the concatenation [z_1, ..., z_L]."""
    return model.layer_slices() if hasattr(model, "layer_slices") else {"z": slice(0, model.latent_dim)}


def _extreme(dataset, pick) -> float:
    return float(pick([float(pick(v.values)) for v in dataset.data_vars.values()]))


def nuts_reference(model, x: torch.Tensor, indices, init: torch.Tensor, num_chains: int = 4, num_draws: int = 500,
                   warmup: int = 500, seed: int = 0, max_tree_depth: int = 8, predictive_draws: int = 25) -> Reference:
    """NUTS draws of p(z | x) for the rows of ``x``; ``init`` (P, Z) centres the chains' starting points.
    A hierarchy's layers are sampled jointly (z = [z_1, ..., z_L]) and stored as one variable each. The
    InferenceData has ArviZ's groups: posterior, sample_stats (each chain's energy, the shared step size,
    tree depth, leapfrog steps, acceptance and divergences: ``sampler.py``), log_likelihood and
    posterior_predictive (``predictive.py``: ``predictive_draws`` per chain), observed_data."""
    torch.manual_seed(seed)
    start = init.unsqueeze(0) + 2.0 * torch.randn((num_chains,) + init.shape, device=init.device)  # (C, P, Z)
    mcmc = posterior_mcmc(model, x, start, num_draws, warmup, RecordingNUTS, adapt_mass_matrix=True,
                          full_mass=False, max_tree_depth=max_tree_depth, num_chains=num_chains,
                          chain_potential=lambda z: -log_joint(model, x, z).sum(-1))
    z = mcmc.get_samples()["z"].transpose(0, 1)  # (D, C, P, Z) -> (C, D, P, Z)
    flags = np.zeros(num_draws, dtype=bool)
    flags[[i for i in mcmc.diagnostics()["divergences"]["chain 0"] if i < num_draws]] = True
    stats = {**mcmc.kernel.sample_stats(num_draws), "diverging": np.broadcast_to(flags, (num_chains, num_draws)).copy()}
    return Reference.of(inference_data(model, x, z, indices, layer_layout(model), predictive_draws, stats),
                        int(flags.sum()))
