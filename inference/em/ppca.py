"""EM and SVI for probabilistic PCA, both scored by the exact log-likelihood.

Exact EM (Tipping & Bishop 1999, eqs. 29-30), with b fixed at the sample mean and
S the sample covariance, M = W^T W + sigma^2 I:

    W'       = S W (sigma^2 I + M^-1 W^T S W)^-1
    sigma^2' = tr(S - S W M^-1 W'^T) / D

Each iteration is the E-step (the exact posterior) and the M-step (the maximizer of
the expected complete-data log-likelihood) in one; the log-likelihood never decreases.
The linear VAE (``PPCAModel`` + ``LinearGaussianGuide``) is trained by Pyro's SVI instead.
"""
from __future__ import annotations

import time
from typing import Optional

import pyro
import torch

from pyro_vae.guides.linear import LinearGaussianGuide
from pyro_vae.models.linear_gaussian import PPCAModel, PPCAParams, ppca_log_likelihood, sample_covariance

from pyro_vae.inference.data.datasets import MinibatchStream
from pyro_vae.inference.training.trainer import SVITrainer


def ppca_em_step(S: torch.Tensor, params: PPCAParams) -> PPCAParams:
    """One exact EM step of probabilistic PCA from the sample covariance S (Tipping & Bishop 1999, eqs. 29-30).

    W' = S W (σ² I + M⁻¹ Wᵀ S W)⁻¹ and σ'² = tr(S - S W M⁻¹ W'ᵀ) / D, M = Wᵀ W + σ² I; the bias is kept.
    """
    W, sigma2 = params.weight, params.sigma2
    eye = torch.eye(W.shape[1], dtype=W.dtype, device=W.device)
    M_inv = torch.linalg.inv(W.T @ W + sigma2 * eye)
    SW = S @ W
    W_new = SW @ torch.linalg.inv(sigma2 * eye + M_inv @ W.T @ SW)
    sigma2_new = float(torch.trace(S - SW @ M_inv @ W_new.T)) / W.shape[0]
    return PPCAParams(W_new, params.bias, sigma2_new)


def ppca_em(x: torch.Tensor, init: PPCAParams, iterations: int, x_test: Optional[torch.Tensor] = None,
            record_every: int = 1) -> tuple[PPCAParams, list[dict]]:
    """``iterations`` exact EM steps from ``init`` (its bias replaced by the sample mean); the history holds
    the mean exact log p(x) per training (and test) point, the points seen and the seconds spent."""
    mean = x.mean(0)
    S = sample_covariance(x, mean)
    params = PPCAParams(init.weight, mean, init.sigma2)
    history, seconds = [], 0.0  # the clock runs during the EM steps only, not while scoring
    for it in range(iterations + 1):
        if it % record_every == 0 or it == iterations:
            history.append(_record(x, x_test, params, it * x.shape[0], seconds))
        if it < iterations:
            start = time.perf_counter()
            params = ppca_em_step(S, params)
            seconds += time.perf_counter() - start
    return params, history


def _record(x, x_test, params: PPCAParams, seen: int, seconds: float) -> dict:
    row = {"samples_seen": seen, "seconds": seconds, "train_log_px": float(ppca_log_likelihood(x, params).mean())}
    if x_test is not None:
        row["test_log_px"] = float(ppca_log_likelihood(x_test, params).mean())
    return row


def fit_linear_vae(x: torch.Tensor, latent_dim: int, epochs: int, init: Optional[PPCAParams] = None,
                   batch_size: int = 100, lr: float = 1e-2, x_test: Optional[torch.Tensor] = None,
                   seed: int = 0) -> tuple[PPCAModel, list[dict]]:
    """SVI (``Trace_ELBO``, Adam) on the linear VAE; the history holds the exact log p(x) after each epoch."""
    pyro.set_rng_seed(seed)
    model = PPCAModel(x.shape[1], latent_dim).to(x.device, x.dtype)
    guide = LinearGaussianGuide(x.shape[1], latent_dim).to(x.device, x.dtype)
    if init is not None:
        model.set_params(init)
    trainer = SVITrainer(model, guide, lr=lr)
    stream = MinibatchStream(x, batch_size)
    history, seconds, seen = [_record(x, x_test, model.params(), 0, 0.0)], 0.0, 0
    for _ in range(epochs):
        start = time.perf_counter()
        for idx, batch in stream:
            trainer.step(batch, num_data=x.shape[0], subsample=idx)
            seen += len(idx)
        seconds += time.perf_counter() - start
        history.append(_record(x, x_test, model.params(), seen, seconds))
    return model, history
