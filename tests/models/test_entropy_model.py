"""The entropy-model prior of the rate-distortion autoencoder (models/entropy_model.py): integer masses sum to
one, the noisy density is the CDF difference and integrates to one, and its samples follow it."""

import math

import pyro
import pytest
import torch

from pyro_vae.models.entropy_model import FactorizedEntropyPrior, NoisyLogisticMixture


def _perturbed_prior(latent=6, seed=0):
    pyro.set_rng_seed(seed)
    prior = FactorizedEntropyPrior(latent, num_components=3)
    with torch.no_grad():
        for p in prior.parameters():
            p.add_(torch.randn_like(p))
    return prior


def test_integer_masses_sum_to_one_for_every_dimension():
    masses = _perturbed_prior().integer_masses(-200, 200)
    assert torch.allclose(masses.sum(-1), torch.ones(6, dtype=torch.float64), atol=1e-6)


def test_noisy_density_is_the_cdf_difference_and_integrates_to_one():
    prior = _perturbed_prior(latent=2)
    u = prior.univariate()
    v = torch.linspace(-80, 80, 160001)  # logistic tails: wide enough that what lies outside is < 1e-6
    naive = (u.cdf(v.unsqueeze(-1) + 0.5) - u.cdf(v.unsqueeze(-1) - 0.5))  # (n, 2), direct subtraction
    stable = u.log_prob(v.unsqueeze(-1)).exp()
    assert torch.allclose(stable, naive, atol=1e-6)
    area = torch.trapezoid(stable.double(), v.double(), dim=0)
    assert torch.allclose(area, torch.ones(2, dtype=torch.float64), atol=1e-4)


def test_samples_follow_the_noisy_density():
    prior = _perturbed_prior(latent=1)
    torch.manual_seed(0)
    z = prior.univariate().sample(torch.Size([200_000]))[:, 0]
    edges = torch.tensor([-2.0, -0.5, 0.0, 0.7, 2.5])
    d = NoisyLogisticMixture(*(t[0:1] for t in (prior.logits, prior.locs, torch.nn.functional.softplus(
        prior.raw_scales) + 1e-2)))
    grid = torch.linspace(-2, 2.5, 9001)
    dens = d.log_prob(grid.unsqueeze(-1)).exp()[:, 0]
    for lo, hi in zip(edges, edges[1:]):
        inside = (grid >= lo) & (grid <= hi)
        expected = torch.trapezoid(dens[inside], grid[inside]).item()
        got = ((z >= lo) & (z < hi)).float().mean().item()
        assert got == pytest.approx(expected, abs=4 * math.sqrt(expected / 200_000) + 1e-3)
