"""Exact EM for the mixture of Bernoullis, against SVI with the cluster enumerated and with an amortized guide.

E-step: responsibilities r_nk = p(c = k | x_n), exact. M-step (MAP with pseudo-count a):
pi_k = N_k / N, mu_kd = (sum_n r_nk x_nd + a) / (N_k + 2a), N_k = sum_n r_nk. Each
iteration cannot lower J = sum_n log p(x_n) + a sum_kd log mu_kd (1 - mu_kd).
SVI maximizes the same J: ``TraceEnum_ELBO`` sums c out of the model (no guide
latent: the bound is exact), or takes the expectation under q(c | x) exactly.
"""
from __future__ import annotations

import time
from typing import Optional

import torch
from pyro.infer import TraceEnum_ELBO
from torch import nn

from pyro_vae.guides.categorical import CategoricalGuide
from pyro_vae.models.mixture import BernoulliMixtureModel, mixture_log_likelihood, smoothing_log_prior

from pyro_vae.inference.data.datasets import MinibatchStream
from pyro_vae.inference.training.trainer import SVITrainer


class MarginalizedGuide(nn.Module):
    """No latent in the guide: every discrete site of the model is summed out by enumeration."""

    def forward(self, *args, **kwargs):
        return None


def objective(model: BernoulliMixtureModel, x: torch.Tensor) -> float:
    """J / N: mean log p(x_n) plus the smoothing prior shared out over the points."""
    with torch.no_grad():
        prior = smoothing_log_prior(model.logits, model.pseudo_count) if model.pseudo_count else 0.0
        return float(model.log_likelihood(x).mean() + prior / x.shape[0])


def em_step(model: BernoulliMixtureModel, x: torch.Tensor) -> None:
    """One exact EM step on the mixture of Bernoullis, in place (MAP-EM with the model's Beta pseudo-counts a).

    E-step: r_nk = p(c = k | x_n), exact. M-step: π_k = sum_n r_nk / N and
    μ_kd = (sum_n r_nk x_nd + a) / (sum_n r_nk + 2a).
    """
    with torch.no_grad():
        log_joint = x @ nn.functional.logsigmoid(model.logits).T + (1 - x) @ nn.functional.logsigmoid(-model.logits).T
        r = torch.softmax(log_joint + model.log_weights, dim=-1)  # (N, K), exact posterior
        counts = r.sum(0)
        a = model.pseudo_count
        mu = ((r.T @ x + a) / (counts[:, None] + 2 * a)).clamp(1e-12, 1 - 1e-12)
        model.weight_logits.copy_((counts / x.shape[0]).clamp(min=1e-12).log())
        model.logits.copy_(mu.log() - (1 - mu).log())


def _record(model, x, x_test, seen, seconds) -> dict:
    row = {"samples_seen": seen, "seconds": seconds, "objective": objective(model, x),
           "train_log_px": float(model.log_likelihood(x).mean())}
    if x_test is not None:
        row["test_log_px"] = float(model.log_likelihood(x_test).mean())
    return row


def fit_mixture_em(model: BernoulliMixtureModel, x: torch.Tensor, iterations: int,
                   x_test: Optional[torch.Tensor] = None) -> list[dict]:
    """``iterations`` exact EM steps on ``x``; the history holds the objective and the mean exact log p(x) on the
    training (and test) points, the points seen and the seconds spent in the steps, before and after each step."""
    history, seconds = [_record(model, x, x_test, 0, 0.0)], 0.0  # the clock runs during the steps only
    for it in range(1, iterations + 1):
        start = time.perf_counter()
        em_step(model, x)
        seconds += time.perf_counter() - start
        history.append(_record(model, x, x_test, it * x.shape[0], seconds))
    return history


def fit_mixture_svi(model: BernoulliMixtureModel, x: torch.Tensor, epochs: int, amortized: bool = False,
                    lr: float = 0.05, batch_size: Optional[int] = None, x_test: Optional[torch.Tensor] = None,
                    record_every: int = 1) -> list[dict]:
    """SVI with ``TraceEnum_ELBO``: c summed out of the model (``amortized=False``: the loss is -J exactly)
    or taken in expectation under q(c | x); minibatches of ``batch_size`` (default: the whole set)."""
    guide = CategoricalGuide(x.shape[1], model.logits.shape[0]).to(x.device) if amortized else MarginalizedGuide()
    trainer = SVITrainer(model, guide, lr=lr, loss=TraceEnum_ELBO(max_plate_nesting=1))
    stream = MinibatchStream(x, batch_size or x.shape[0])
    history, seconds, seen = [_record(model, x, x_test, 0, 0.0)], 0.0, 0
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        for idx, xb in stream:
            trainer.step(xb, num_data=x.shape[0], subsample=idx)
            seen += len(idx)
        seconds += time.perf_counter() - start
        if epoch % record_every == 0 or epoch == epochs:
            history.append(_record(model, x, x_test, seen, seconds))
    return history


__all__ = ["BernoulliMixtureModel", "MarginalizedGuide", "em_step", "fit_mixture_em", "fit_mixture_svi",
           "mixture_log_likelihood", "objective"]
