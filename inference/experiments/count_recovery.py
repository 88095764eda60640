"""A known truth for count likelihoods: counts drawn from a low-rank negative-binomial model

    z ~ N(0, I_2),  mu = exp(W z + b),  x_j ~ NB(mean mu_j, inverse dispersion theta)   (Poisson: theta = inf)

whose exact log p(x) is a 2-D integral, computed here by quadrature on a grid: log p(x | z) is
c(x) + A(z) + x . B(z) for the negative binomial, so the whole grid is one matrix product. VAEs with
different likelihoods are trained on the counts and their importance-sampled log p(x) compared with it:
the right likelihood comes close to the truth, a Gaussian on counts does not.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from pyro_vae.inference.config.sections import RunConfig
from pyro_vae.inference.evaluate.marginal_likelihood import importance_log_likelihood
from pyro_vae.inference.runs.files import write_json
from pyro_vae.inference.runs.folder import train_run
from pyro_vae.inference.runs.run import load_run


@dataclass
class LowRankCounts:
    """The generating model: loadings ``w`` (2, D), offsets ``b`` (D,), inverse dispersion ``theta``
    (``None``: Poisson)."""

    w: np.ndarray
    b: np.ndarray
    theta: Optional[float] = 3.0

    @classmethod
    def random(cls, features: int = 40, theta: Optional[float] = 3.0, seed: int = 0) -> "LowRankCounts":
        rng = np.random.default_rng(seed)
        return cls(rng.normal(0, 0.7, (2, features)), rng.uniform(0.5, 2.0, features), theta)

    def sample(self, n: int, seed: int = 1) -> np.ndarray:
        """(n, D) int64 counts."""
        rng = np.random.default_rng(seed)
        mu = np.exp(rng.normal(size=(n, 2)) @ self.w + self.b)
        if self.theta is None:
            return rng.poisson(mu).astype(np.int64)
        return rng.negative_binomial(self.theta, self.theta / (self.theta + mu)).astype(np.int64)

    def log_likelihood(self, x: np.ndarray, limit: float = 6.0, points: int = 401) -> np.ndarray:
        """Exact log p(x) per row (nats), by the midpoint rule on a ``points`` x ``points`` grid of [-limit, limit]^2."""
        x = torch.as_tensor(x, dtype=torch.float64)
        edge = torch.linspace(-limit, limit, points, dtype=torch.float64)
        z = torch.cartesian_prod(edge, edge)  # (G, 2)
        log_prior = -0.5 * (z ** 2).sum(1) - math.log(2 * math.pi) + 2 * math.log(edge[1] - edge[0])
        log_mu = z @ torch.as_tensor(self.w) + torch.as_tensor(self.b)  # (G, D)
        if self.theta is None:  # x log mu - mu - log x!
            a, bx = -log_mu.exp().sum(1), log_mu
            c = -torch.lgamma(x + 1).sum(1)
        else:  # theta log(theta / (theta + mu)) + x log(mu / (theta + mu)) + log Gamma(x + theta) / (Gamma(theta) x!)
            t = self.theta
            log_total = torch.logaddexp(log_mu, torch.tensor(math.log(t), dtype=torch.float64))
            a, bx = (t * (math.log(t) - log_total)).sum(1), log_mu - log_total
            c = (torch.lgamma(x + t) - math.lgamma(t) - torch.lgamma(x + 1)).sum(1)
        joint = c[:, None] + (a + log_prior)[None, :] + x @ bx.T  # (N, G)
        return torch.logsumexp(joint, 1).numpy()


def recovery(out: Path, likelihoods: Sequence[str] = ("negative_binomial", "poisson", "gaussian_pixel"),
             truth: Optional[LowRankCounts] = None, train: int = 3000, test: int = 500, epochs: int = 30,
             iw_samples: int = 1000, lr: float = 3e-3, seed: int = 0, quiet: bool = True) -> dict:
    """Train one VAE per likelihood on counts from ``truth`` (in ``out/<likelihood>``) and compare each one's
    importance-sampled test log p(x) with the exact one; the table is also written to ``out/recovery.json``."""
    truth = truth or LowRankCounts.random(seed=seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    x = truth.sample(train + test, seed=seed + 1)
    np.savez(out / "counts.npz", train_x=x[:train], test_x=x[train:])
    table = {"exact": float(truth.log_likelihood(x[train:]).mean()), "features": int(x.shape[1]), "train": train,
             "test": test, "epochs": epochs, "lr": lr, "iw_samples": iw_samples, "theta": truth.theta, "models": {}}
    for likelihood in likelihoods:
        config = RunConfig.from_dict({
            "data": {"dataset": "array", "data_dir": str(out / "counts.npz")},
            "model": {"likelihood": likelihood, "latent_dim": 2, "hidden_dim": 64},
            "guide": {"hidden_dim": 64}, "train": {"epochs": epochs, "lr": lr, "seed": seed, "device": "cpu"}})
        train_run(config, out / likelihood, force=True, quiet=quiet, plots=False, tensorboard=False)
        run = load_run(out / likelihood)
        with run.params(), torch.no_grad():
            report = importance_log_likelihood(run.model, run.guide, run.data.test_x, iw_samples, seed=seed)
        table["models"][likelihood] = {"log_likelihood": report.log_likelihood,
                                       "standard_error": report.standard_error,
                                       "gap_to_exact": table["exact"] - report.log_likelihood}
    write_json(out / "recovery.json", table)
    return table
