"""Where the E-step is not exact: the nonlinear decoder of a VAE, fitted four ways (Kingma & Welling 2013, Fig. 3).

All four train the same decoder p(x | z) with prior N(0, I) (``VAEModel``), epoch by epoch:

- Monte-Carlo EM: E-step draws z_n ~ p(z | x_n) by HMC (``pyro.infer.mcmc``; one chain over all
  points at once, warm-started at the last draw: the posterior factorizes over n, so this is N
  chains in lockstep); M-step: Adam on the decoder, maximizing the mean of log p(x_n | z_n) over draws.
- Hard EM: E-step z_n* = argmax_z log p(x_n, z) by L-BFGS, warm-started; M-step as above at z*.
- Wake-sleep: ``pyro.infer.ReweightedWakeSleep`` (Bornschein & Bengio 2015) with an amortized guide.
- AEVB: ``SVI`` + ``Trace_ELBO`` with the same guide: the VAE.

Seed 003: soft EM is to hard EM as the VAE is to rate-distortion; the VAE replaces the exact
E-step by an amortized guide. Every method is scored by the same held-out estimate of log p(x),
``laplace_log_likelihood``: importance sampling from a Gaussian at each point's mode with the
inverse Hessian as covariance (no method's own guide is used, so the comparison is fair).
"""
from __future__ import annotations

import math
import time
from typing import Callable, Optional

import torch
from pyro.infer import ReweightedWakeSleep
from pyro.infer.mcmc import HMC, MCMC

from pyro_vae.inference.data.datasets import MinibatchStream
from pyro_vae.inference.evaluate.elbo import frozen
from pyro_vae.inference.training.trainer import SVITrainer


def log_joint(model, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """log p(x_n, z_n) = log p(z_n) + log p(x_n | z_n) from the model's own prior and likelihood;
    ``z`` may carry leading sample dimensions (S, N, Z). A model of several stochastic layers scores the
    concatenated code itself (``HierarchicalVAEModel.log_joint``)."""
    if hasattr(model, "log_joint"):
        return model.log_joint(x, z)
    prior = model.prior(torch.Size([x.shape[0]]))
    return prior.log_prob(z) + model.likelihood(model.decode(z)).log_prob(x)


def posterior_modes(model, x: torch.Tensor, z0: torch.Tensor, iterations: int = 50) -> torch.Tensor:
    """argmax_z log p(x_n, z) for every n at once (the objective is a sum of independent terms), by L-BFGS."""
    z = z0.detach().clone().requires_grad_(True)
    optim = torch.optim.LBFGS([z], lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe",
                              tolerance_grad=1e-6, tolerance_change=1e-10)

    def closure():
        optim.zero_grad()
        loss = -log_joint(model, x, z).sum()
        loss.backward()
        return loss

    with frozen(model):
        optim.step(closure)
    return z.detach()


def posterior_mcmc(model, x: torch.Tensor, z0: torch.Tensor, num_samples: int, warmup_steps: int,
                   kernel=HMC, **options) -> MCMC:
    """``pyro.infer.mcmc`` (``kernel``: HMC or NUTS) on the potential -sum_n log p(x_n, z_n) with the decoder
    fixed, started at ``z0``; z may carry leading chain dimensions (the points' posteriors are independent)."""
    def potential(params):
        return -log_joint(model, x, params["z"]).sum()

    with frozen(model):
        mcmc = MCMC(kernel(potential_fn=potential, adapt_step_size=True, **options), num_samples=num_samples,
                    warmup_steps=warmup_steps, initial_params={"z": z0.detach()}, disable_progbar=True)
        mcmc.run()
    return mcmc


def hmc_posterior_samples(model, x: torch.Tensor, z0: torch.Tensor, num_samples: int, warmup_steps: int,
                          step_size: float = 0.05, num_steps: int = 10) -> torch.Tensor:
    """(num_samples, N, Z) draws of p(z | x) by HMC with step-size adaptation, started at ``z0``."""
    mcmc = posterior_mcmc(model, x, z0, num_samples, warmup_steps, HMC, step_size=step_size, num_steps=num_steps,
                          adapt_mass_matrix=False)
    return mcmc.get_samples()["z"].detach()


def m_step(model, optim: torch.optim.Optimizer, x: torch.Tensor, z: torch.Tensor, batch_size: int) -> None:
    """One pass of Adam on the decoder: maximize mean_s log p(x_n | z_sn) over minibatches of points."""
    z = z if z.dim() == 3 else z.unsqueeze(0)
    for idx, xb in MinibatchStream(x, batch_size):
        optim.zero_grad()
        loss = -model.likelihood(model.decode(z[:, idx])).log_prob(xb).mean(0).sum() / len(idx)
        loss.backward()
        optim.step()


@torch.no_grad()
def _proposal(model, x, z_star):
    with torch.enable_grad():
        def point_log_joint(xn, zn):
            return log_joint(model, xn.unsqueeze(0), zn.unsqueeze(0)).squeeze(0)
        hessians = torch.func.vmap(torch.func.hessian(point_log_joint, argnums=1))(x, z_star)
    precision = -0.5 * (hessians + hessians.transpose(-1, -2)) + 1e-4 * torch.eye(z_star.shape[-1], device=x.device)
    ok = torch.linalg.cholesky_ex(precision).info == 0
    precision[~ok] = torch.eye(z_star.shape[-1], device=x.device)  # not a maximum: fall back to a unit Gaussian
    return torch.distributions.MultivariateNormal(z_star, precision_matrix=precision)


def laplace_log_likelihood(model, x: torch.Tensor, num_samples: int = 500, batch_size: int = 250,
                           seed: int = 0, widen: float = 1.5) -> torch.Tensor:
    """log p(x_n) ~ logsumexp_k [log p(x_n, z_k) - log q_n(z_k)] - log K, z_k ~ q_n = N(z_n*, widen^2 (-H_n)^-1)
    (the Laplace approximation at each point's mode z_n*, widened so its tails cover the posterior's), per point.
    Exact with any K for a Gaussian posterior and ``widen = 1``."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        out = []
        for xb in x.split(batch_size):
            z_star = posterior_modes(model, xb, torch.zeros(xb.shape[0], model.latent_dim, device=x.device))
            laplace = _proposal(model, xb, z_star)
            q = torch.distributions.MultivariateNormal(laplace.loc, scale_tril=widen * laplace.scale_tril)
            with torch.no_grad():
                z = q.sample(torch.Size([num_samples]))
                log_w = log_joint(model, xb, z) - q.log_prob(z)
                out.append(torch.logsumexp(log_w, 0) - math.log(num_samples))
        return torch.cat(out)
    finally:
        torch.random.set_rng_state(gen_state)


def _history_row(model, x, x_test, seen, seconds, eval_samples) -> dict:
    row = {"samples_seen": seen, "seconds": seconds,
           "train_log_px": float(laplace_log_likelihood(model, x, eval_samples).mean())}
    if x_test is not None:
        row["test_log_px"] = float(laplace_log_likelihood(model, x_test, eval_samples).mean())
    return row


def train_by_epochs(model, epoch: Callable[[], None], x: torch.Tensor, epochs: int,
                    x_test: Optional[torch.Tensor] = None, eval_every: int = 1, eval_samples: int = 500) -> list[dict]:
    """Run ``epoch()`` ``epochs`` times; score train and test log p(x) every ``eval_every`` epochs (untimed)."""
    history, seconds = [_history_row(model, x, x_test, 0, 0.0, eval_samples)], 0.0
    for e in range(1, epochs + 1):
        start = time.perf_counter()
        epoch()
        seconds += time.perf_counter() - start
        if e % eval_every == 0 or e == epochs:
            history.append(_history_row(model, x, x_test, e * x.shape[0], seconds, eval_samples))
    return history


def mcem_epoch(model, x, state: dict, lr: float = 1e-2, batch_size: int = 100, num_samples: int = 5,
               warmup_steps: int = 10) -> Callable[[], None]:
    optim = torch.optim.Adam(model.parameters(), lr=lr)
    state.setdefault("z", torch.zeros(x.shape[0], model.latent_dim, device=x.device))

    def epoch():
        samples = hmc_posterior_samples(model, x, state["z"], num_samples, warmup_steps)
        state["z"] = samples[-1]
        m_step(model, optim, x, samples, batch_size)
    return epoch


def hard_em_epoch(model, x, state: dict, lr: float = 1e-2, batch_size: int = 100,
                  iterations: int = 20) -> Callable[[], None]:
    optim = torch.optim.Adam(model.parameters(), lr=lr)
    state.setdefault("z", torch.zeros(x.shape[0], model.latent_dim, device=x.device))

    def epoch():
        state["z"] = posterior_modes(model, x, state["z"], iterations)
        m_step(model, optim, x, state["z"], batch_size)
    return epoch


def svi_epoch(model, guide, x, loss, lr: float = 1e-2, batch_size: int = 100) -> Callable[[], None]:
    """One pass of minibatch SVI (AEVB with ``Trace_ELBO``, or wake-sleep with ``ReweightedWakeSleep``)."""
    trainer = SVITrainer(model, guide, lr=lr, loss=loss)
    stream = MinibatchStream(x, batch_size)

    def epoch():
        for idx, xb in stream:
            trainer.step(xb, num_data=x.shape[0], subsample=idx)
    return epoch


def wake_sleep_loss(num_particles: int = 10) -> ReweightedWakeSleep:
    """Reweighted wake-sleep, wake-phi only (insomnia = 1): the guide needs no ``observations`` argument."""
    return ReweightedWakeSleep(num_particles=num_particles, insomnia=1.0, vectorize_particles=True,
                               max_plate_nesting=1)


__all__ = ["log_joint", "posterior_modes", "posterior_mcmc", "hmc_posterior_samples", "m_step", "laplace_log_likelihood",
           "train_by_epochs", "mcem_epoch", "hard_em_epoch", "svi_epoch", "wake_sleep_loss"]
