"""What ArviZ's ``log_likelihood`` and ``posterior_predictive`` groups hold for draws of z, NUTS's or the guide's.

- ``log_likelihood["x"]`` (chain, draw, point): log p(x_n | z_sn), the image's pixels summed (one
  observation per image: ``az.loo`` / ``az.waic`` leave one image out, not one pixel). Size C x D x P.
- ``posterior_predictive["x"]`` (chain, draw, point, pixel): x_rep ~ p(x | z_sn) for an evenly spaced
  subset of the draws (``predictive_draws`` per chain), so its size, C x D' x P x pixels, stays bounded
  whatever D is. Both are decoded a chunk of draws at a time, within the evaluator's budget.
"""
from __future__ import annotations

from typing import Optional

import arviz as az
import numpy as np
import torch

from pyro_vae.inference.evaluate.marginal_likelihood import points_per_pass


def decoded_code(model, z: torch.Tensor) -> torch.Tensor:
    """The part of the code the decoder reads: z itself, or z_1 of a hierarchy's [z_1, ..., z_L]."""
    return z[..., : model.latent_dim]


def _chunks(model, x: torch.Tensor, z: torch.Tensor):
    step = max(1, points_per_pass(model, x) // x.shape[0])
    for i in range(0, z.shape[0], step):
        yield model.likelihood(model.decode(decoded_code(model, z[i:i + step])))


@torch.no_grad()
def pointwise_log_likelihood(model, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """log p(x_n | z_sn) for draws z (S, P, Z): (S, P), each image's pixels summed."""
    return torch.cat([likelihood.log_prob(x) for likelihood in _chunks(model, x, z)])


@torch.no_grad()
def predictive_draws(model, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """x_rep ~ p(x | z_sn) for draws z (S, P, Z): (S, P, pixels)."""
    return torch.cat([likelihood.sample().flatten(2) for likelihood in _chunks(model, x, z)])


def thinned(num_draws: int, keep: int) -> np.ndarray:
    """``keep`` evenly spaced draw indices out of ``num_draws`` (all of them when fewer)."""
    return np.unique(np.linspace(0, num_draws - 1, min(keep, num_draws)).round().astype(int))


def coords(indices, latent_dim: int) -> dict:
    return {"point": np.asarray(indices), "latent": np.arange(latent_dim)}


def latent_variables(draws: np.ndarray, indices, layout: dict) -> tuple[dict, dict, dict]:
    """(posterior, coords, dims) for ``arviz.from_dict`` from draws (..., P, Z): one variable per layer,
    each with its own units dimension (``latent`` for a one-layer ``z``, ``z1_latent`` ... for a hierarchy)."""
    if list(layout) == ["z"]:
        return {"z": draws}, coords(indices, draws.shape[-1]), {"z": ["point", "latent"]}
    posterior = {name: draws[..., part] for name, part in layout.items()}
    units = {f"{name}_latent": np.arange(part.stop - part.start) for name, part in layout.items()}
    return (posterior, {"point": np.asarray(indices), **units},
            {name: ["point", f"{name}_latent"] for name in layout})


def inference_data(model, x: torch.Tensor, z: torch.Tensor, indices, layout: dict, keep: int,
                   sample_stats: Optional[dict] = None) -> az.InferenceData:
    """One InferenceData for draws z (C, D, P, Z): posterior (one variable per layer, ``latent_variables``),
    ``sample_stats`` if given, log_likelihood, posterior_predictive (draws ``thinned(D, keep)`` of each
    chain, with their draw indices) and observed_data, on the same point coords."""
    chains, draws = z.shape[:2]
    posterior, coords, dims = latent_variables(z.cpu().numpy(), indices, layout)
    kept = thinned(draws, keep)
    x_rep = predictive_draws(model, x, z[:, kept].reshape(chains * len(kept), *z.shape[2:]))
    idata = az.from_dict(posterior=posterior, sample_stats=sample_stats,
                         posterior_predictive={"x": x_rep.reshape(chains, len(kept), *x_rep.shape[1:]).cpu().numpy()},
                         observed_data={"x": x.flatten(1).cpu().numpy()},
                         coords={**coords, "pixel": np.arange(x[0].numel())}, dims={**dims, "x": ["point", "pixel"]})
    idata.posterior_predictive = idata.posterior_predictive.assign_coords(draw=kept)
    log_lik = pointwise_log_likelihood(model, x, z.reshape(chains * draws, *z.shape[2:]))
    idata.extend(az.from_dict(log_likelihood={"x": log_lik.reshape(chains, draws, -1).double().cpu().numpy()},
                              coords={"point": coords["point"]}, dims={"x": ["point"]}))
    return idata
