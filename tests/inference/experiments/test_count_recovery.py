"""The count VAE recovers the log-likelihood of counts drawn from a known low-rank negative-binomial model:
the exact log p(x) (quadrature, itself checked by Monte Carlo) against the importance-sampled log p(x) of VAEs
with the right likelihood, a Poisson (no overdispersion) and a Gaussian on the counts."""
import math

import numpy as np
import pytest
import torch

from pyro_vae.inference.experiments.count_recovery import LowRankCounts, recovery


@pytest.mark.parametrize("theta", [3.0, None])
def test_quadrature_log_likelihood_matches_monte_carlo_over_the_prior(theta):
    truth = LowRankCounts.random(features=10, theta=theta, seed=4)
    x = truth.sample(4, seed=5)
    exact = truth.log_likelihood(x)
    z = torch.from_numpy(np.random.default_rng(6).normal(size=(400_000, 2)))
    mu = (z @ torch.from_numpy(truth.w) + torch.from_numpy(truth.b)).exp()
    xs = torch.from_numpy(x).double()
    if theta is None:
        lp = torch.distributions.Poisson(mu[:, None]).log_prob(xs).sum(-1)
    else:
        lp = torch.distributions.NegativeBinomial(torch.tensor(theta, dtype=torch.float64),
                                                  logits=(mu / theta).log()[:, None]).log_prob(xs).sum(-1)
    monte_carlo = (torch.logsumexp(lp, 0) - math.log(z.shape[0])).numpy()
    assert np.allclose(exact, monte_carlo, atol=0.05)


@pytest.mark.slow
def test_the_right_likelihood_recovers_the_data_log_likelihood(tmp_path):
    table = recovery(tmp_path, train=2000, test=300, epochs=40, iw_samples=300)
    exact, models = table["exact"], table["models"]
    nb, poisson, gaussian = (models[k]["log_likelihood"] for k in ("negative_binomial", "poisson", "gaussian_pixel"))
    assert nb < exact + 0.5  # importance sampling bounds log p(x) from below (in expectation)
    assert exact - nb < 10  # within 10 nats per point of the truth (40 counts per point)
    assert nb > poisson + 10 > gaussian + 100  # no overdispersion costs; a Gaussian on counts costs far more
