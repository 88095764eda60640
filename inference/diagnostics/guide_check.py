"""How good is the guide? Its draws against the reference, PSIS k-hat, and the gaps of Cremer et al. (2018).

- Moments: per point, the error of the guide's posterior mean and standard deviations against the NUTS
  reference, and KL(N_q || N_ref) between Gaussians matched to the two sets of draws' first two moments.
- PSIS k-hat (Yao et al. 2018): the Pareto shape of the importance weights log w = log p(x, z) - log q(z | x),
  z ~ q, per point (``arviz.psislw`` takes log weights, samples on the last axis). k-hat < 0.5: q is a good
  proposal; 0.5-0.7: usable; > 0.7: the importance estimates (and the guide) are not to be trusted.
- Gaps: ELBO(q) for the amortized guide; ELBO(q*) for a diagonal Gaussian optimized for each point from the
  amortized start (Adam, cosine-decayed; where the optimizer ends below its start, q* is the start); log p(x) by
  importance sampling from q. Amortization gap = ELBO(q*) - ELBO(q); approximation gap = log p(x) - ELBO(q*).
  ``vae diagnose`` draws the guide once: the same S draws give the moments, k-hat, ELBO(q) (the mean of their
  log weights), log p(x) (their log-mean-exp, the estimate whose reliability k-hat judges) and q*'s start.
"""
from __future__ import annotations

import math
from typing import Optional

import arviz as az
import numpy as np
import torch

from pyro_vae.inference.em.nonlinear import log_joint
from pyro_vae.inference.evaluate.elbo import frozen
from pyro_vae.inference.evaluate.marginal_likelihood import importance_log_likelihood, points_per_pass
from pyro_vae.inference.diagnostics.predictive import inference_data


def joint_posterior(guide, x: torch.Tensor):
    """q(z | x) over the whole latent code: a hierarchy's guide gives all its layers (``joint_posterior``),
    a one-layer guide its ``posterior``."""
    return getattr(guide, "joint_posterior", guide.posterior)(x)


@torch.no_grad()
def guide_draws(guide, x: torch.Tensor, num_draws: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(S, P, Z) draws of q(z | x_n) and their (S, P) log-densities."""
    q = joint_posterior(guide, x)
    z = q.sample(torch.Size([num_draws]))
    return z, q.log_prob(z)


def guide_chains(num_draws: int) -> int:
    """How many chains the guide's independent draws are cut into: 4 where they divide evenly (so that
    ``az.summary`` and ``az.rhat`` take them, as a check of the draws' bookkeeping: R-hat ~ 1), else 1."""
    return 4 if num_draws % 4 == 0 and num_draws >= 8 else 1


def guide_idata(z: torch.Tensor, indices, layout: Optional[dict], model, x: torch.Tensor,
                predictive_draws: int = 100) -> az.InferenceData:
    """The guide's (S, P, Z) draws as ``guide_chains(S)`` chains of independent draws, with the reference's
    dims and coords, their log_likelihood, posterior_predictive (``predictive_draws`` per chain) and
    observed_data, so that ``az.compare({"nuts": reference, "guide": this})`` takes both."""
    layout = layout or {"z": slice(0, z.shape[-1])}
    chains = guide_chains(z.shape[0])
    return inference_data(model, x, z.reshape(chains, z.shape[0] // chains, *z.shape[1:]), indices, layout,
                          max(1, predictive_draws // chains))


def _gaussian(draws: np.ndarray):
    """Mean (P, Z) and covariance (P, Z, Z) of (S, P, Z) draws."""
    mean = draws.mean(0)
    centred = draws - mean
    return mean, np.einsum("spi,spj->pij", centred, centred) / (draws.shape[0] - 1)


def gaussian_kl(m0, c0, m1, c1) -> np.ndarray:
    """KL(N(m0, c0) || N(m1, c1)) per point, in nats."""
    k = m0.shape[-1]
    c1_inv = np.linalg.inv(c1)
    diff = (m1 - m0)[..., None]
    trace = np.einsum("pij,pji->p", c1_inv, c0)
    maha = (diff.transpose(0, 2, 1) @ c1_inv @ diff)[:, 0, 0]
    logdet = np.linalg.slogdet(c1)[1] - np.linalg.slogdet(c0)[1]
    return 0.5 * (trace + maha - k + logdet)


def moment_comparison(reference: np.ndarray, guide: np.ndarray) -> dict:
    """``reference`` and ``guide``: (S, P, Z) draws. Per point errors and the moment-matched Gaussian KL."""
    m_ref, c_ref = _gaussian(reference)
    m_q, c_q = _gaussian(guide)
    sd_ref, sd_q = np.sqrt(np.diagonal(c_ref, axis1=1, axis2=2)), np.sqrt(np.diagonal(c_q, axis1=1, axis2=2))
    return {"mean_abs_error": np.abs(m_q - m_ref).max(-1), "mean_error_in_sd": (np.abs(m_q - m_ref) / sd_ref).max(-1),
            "sd_ratio_min": (sd_q / sd_ref).min(-1), "sd_ratio_max": (sd_q / sd_ref).max(-1),
            "gaussian_kl": gaussian_kl(m_q, c_q, m_ref, c_ref),
            "kl_per_dim": 0.5 * (sd_q ** 2 / sd_ref ** 2 + (m_q - m_ref) ** 2 / sd_ref ** 2 - 1
                                 + 2 * np.log(sd_ref / sd_q))}


def chunked_log_joint(model, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """log p(x_n, z_sn) for (S, P, Z) draws, decoded a chunk of draws at a time: each pass within the
    evaluator's budget of decoder outputs (``points_per_pass``), whatever S is."""
    step = max(1, points_per_pass(model, x) // x.shape[0])
    return torch.cat([log_joint(model, x, z[i:i + step]) for i in range(0, z.shape[0], step)])


@torch.no_grad()
def log_weights(model, guide, x: torch.Tensor, num_draws: int = 1000, draws=None) -> torch.Tensor:
    """log w = log p(x_n, z) - log q(z | x_n), (S, P), at ``draws`` = (z, log q) from ``guide_draws`` or at
    ``num_draws`` new ones: one set of draws serves the moments, k-hat and the amortized ELBO."""
    z, log_q = draws if draws is not None else guide_draws(guide, x, num_draws)
    return chunked_log_joint(model, x, z) - log_q


def khat_of(log_w: torch.Tensor) -> np.ndarray:
    """PSIS k-hat per point from log weights (S, P) (``az.psislw`` takes samples on the last axis)."""
    _, khat = az.psislw(log_w.double().cpu().numpy().T)
    return np.asarray(khat)


@torch.no_grad()
def psis_khat(model, guide, x: torch.Tensor, num_draws: int = 1000) -> np.ndarray:
    """The Pareto k-hat of the importance weights p(x_n, z) / q(z | x_n) per data point (Vehtari et al. 2015, PSIS).

    k-hat < 0.7: the guide's draws make a usable importance sampler for that point's posterior; above it, q
    misses mass of p(z | x) that importance sampling cannot recover. Computed by ``arviz.psislw`` from
    ``num_draws`` draws of the guide; an array of shape (N,).
    """
    return khat_of(log_weights(model, guide, x, num_draws))


def elbo_per_point(model, x: torch.Tensor, q, num_draws: int) -> torch.Tensor:
    z = q.rsample(torch.Size([num_draws]))
    return (chunked_log_joint(model, x, z) - q.log_prob(z)).mean(0)


def optimize_local_gaussians(model, guide, x: torch.Tensor, steps: int = 300, particles: int = 16,
                             lr: float = 0.02, start: Optional[torch.Tensor] = None) -> torch.distributions.Distribution:
    """q*_n = N(m_n, diag s_n^2) maximizing each point's ELBO, started at the moments of the guide's draws
    ``start`` (S, P, Z) (256 new ones if not given)."""
    with torch.no_grad():
        z = start if start is not None else guide_draws(guide, x, 256)[0]
        spread = z.std(0) if z.shape[0] > 1 else torch.ones_like(z[0])  # one draw has no spread: start at 1
        loc, log_scale = z.mean(0).clone(), spread.clamp(min=1e-3).log().clone()
    loc.requires_grad_(True)
    log_scale.requires_grad_(True)
    optim = torch.optim.Adam([loc, log_scale], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optim, steps)  # settle: less gradient noise at the end
    with frozen(model):
        for _ in range(steps):
            optim.zero_grad()
            q = torch.distributions.Independent(torch.distributions.Normal(loc, log_scale.exp()), 1)
            (-elbo_per_point(model, x, q, particles).sum()).backward()
            optim.step()
            schedule.step()
    return torch.distributions.Independent(torch.distributions.Normal(loc.detach(), log_scale.detach().exp()), 1)


def gaps(model, guide, x: torch.Tensor, elbo_draws: int = 2000, iw_samples: int = 5000, steps: int = 300,
         seed: int = 0, log_w: Optional[torch.Tensor] = None, draws: Optional[torch.Tensor] = None) -> dict:
    """Cremer et al.'s gaps per point. ``log_w`` (S, P): the amortized guide's log weights at ``draws``
    (S, P, Z) already made (``log_weights``): their mean is ELBO(q), their log-mean-exp log p(x) (S
    importance samples) and the draws start q*; without them, ``elbo_draws`` and ``iw_samples`` new ones."""
    torch.manual_seed(seed)
    with torch.no_grad():
        elbo_q = log_w.mean(0) if log_w is not None else \
            elbo_per_point(model, x, joint_posterior(guide, x), elbo_draws)
    q_star = optimize_local_gaussians(model, guide, x, steps, start=draws)
    with torch.no_grad():  # q* is the better of the optimized Gaussian and the start, point by point
        elbo_star = torch.maximum(elbo_per_point(model, x, q_star, elbo_draws), elbo_q)
    if log_w is not None:
        log_px = torch.logsumexp(log_w.double(), 0) - math.log(log_w.shape[0])
    else:
        log_px = importance_log_likelihood(model, guide, x, iw_samples, seed=seed, per_point=True)
        log_px = log_px[1] if isinstance(log_px, tuple) else log_px
    return {"elbo_amortized": elbo_q.cpu().numpy(), "elbo_optimized": elbo_star.cpu().numpy(),
            "log_px": log_px.detach().cpu().numpy(),
            "amortization_gap": (elbo_star - elbo_q).cpu().numpy(),
            "approximation_gap": (log_px.detach().cpu() - elbo_star.cpu().to(log_px.dtype)).numpy()}


def khat_shares(khat: np.ndarray) -> dict:
    return {"share_above_0.7": float((khat > 0.7).mean()), "share_0.5_to_0.7": float(((khat > 0.5) & (khat <= 0.7)).mean()),
            "max": float(khat.max()), "median": float(np.median(khat))}


__all__ = ["guide_draws", "guide_chains", "guide_idata", "log_weights", "khat_of", "moment_comparison", "gaussian_kl",
           "psis_khat", "gaps", "khat_shares"]
