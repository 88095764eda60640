"""Each likelihood's log_prob against its closed form at hand-picked values."""
import math

import pytest
import torch

from pyro_vae.models import LIKELIHOODS
from pyro_vae.models.discretized import DiscretizedLogistic

EVENT = torch.Size([1, 1, 2])  # two pixels: the closed forms below sum over them


def _lp(name, decoded, x, scale=1.0):
    lik = LIKELIHOODS.get(name)(EVENT, scale)
    shape = ([lik.params_per_pixel] if lik.params_per_pixel > 1 else []) + list(EVENT)
    return lik(torch.tensor(decoded).reshape(shape)).log_prob(torch.tensor(x).reshape(EVENT)).item()


def sigmoid(t):
    return 1 / (1 + math.exp(-t))


def test_bernoulli_is_cross_entropy():
    expected = math.log(sigmoid(0.3)) + math.log(1 - sigmoid(-1.2))
    assert _lp("bernoulli", [0.3, -1.2], [1.0, 0.0]) == pytest.approx(expected, rel=1e-6)


def test_continuous_bernoulli_has_its_normalizer():
    def log_cb(lam, x):
        c = 2 * math.atanh(1 - 2 * lam) / (1 - 2 * lam)
        return x * math.log(lam) + (1 - x) * math.log(1 - lam) + math.log(c)

    logits = [math.log(0.2 / 0.8), math.log(0.9 / 0.1)]
    expected = log_cb(0.2, 0.3) + log_cb(0.9, 0.75)
    assert _lp("continuous_bernoulli", logits, [0.3, 0.75]) == pytest.approx(expected, rel=1e-5)


def test_unit_gaussian_is_seed000_fit_loss():
    mu, x = [0.2, 0.9], [0.5, 0.1]
    fit = 0.5 * sum((a - b) ** 2 for a, b in zip(x, mu)) + math.log(2 * math.pi)  # D/2 log 2 pi, D = 2
    assert _lp("gaussian", mu, x) == pytest.approx(-fit, rel=1e-6)
    sigma = 0.3
    expected = sum(-0.5 * ((a - b) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi) for a, b in zip(x, mu))
    assert _lp("gaussian", mu, x, scale=sigma) == pytest.approx(expected, rel=1e-6)


def test_laplace_is_l1():
    mu, x, b = [0.2, 0.9], [0.5, 0.1], 0.25
    expected = sum(-abs(a - m) / b - math.log(2 * b) for a, m in zip(x, mu))
    assert _lp("laplace", mu, x, scale=b) == pytest.approx(expected, rel=1e-6)


def _normal(x, mu, sigma):
    return -0.5 * ((x - mu) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)


@pytest.mark.parametrize("name", ["gaussian_learned", "gaussian_pixel"])
def test_learned_scale_gaussians_start_at_the_given_scale(name):
    mu, x = [0.2, 0.9], [0.5, 0.1]
    sigma = 0.4 + 1e-3  # softplus(inverse_softplus(0.4)) + the 1e-3 floor
    expected = sum(_normal(a, m, sigma) for a, m in zip(x, mu))
    assert _lp(name, mu, x, scale=0.4) == pytest.approx(expected, rel=1e-5)


def test_decoder_scale_gaussian_reads_sigma_from_the_decoder():
    raw = [0.0, 1.0]
    sigmas = [math.log1p(math.exp(r)) + 1e-3 for r in raw]
    expected = _normal(0.5, 0.2, sigmas[0]) + _normal(0.1, 0.9, sigmas[1])
    assert _lp("gaussian_decoder", [0.2, 0.9, *raw], [0.5, 0.1]) == pytest.approx(expected, rel=1e-5)


def test_discretized_logistic_bins_and_edges():
    loc, log_s = 0.4, math.log(0.05)
    s = math.exp(log_s)
    cdf = lambda t: sigmoid((t - loc) / s)  # noqa: E731
    k = 100 / 255
    interior = cdf(k + 0.5 / 255) - cdf(k - 0.5 / 255)
    bottom = cdf(0.5 / 255)
    d = DiscretizedLogistic(torch.tensor([loc, loc, loc]), torch.tensor([log_s] * 3))
    lp = d.log_prob(torch.tensor([k, 0.0, 1.0]))
    assert lp[0].item() == pytest.approx(math.log(interior), rel=1e-4)
    assert lp[1].item() == pytest.approx(math.log(bottom), rel=1e-4)
    assert lp[2].item() == pytest.approx(math.log(1 - cdf(1 - 0.5 / 255)), rel=1e-4)


@pytest.mark.parametrize("loc, log_scale", [(0.5, -3.0), (0.02, -5.0), (0.99, -2.0), (-0.3, -4.0), (0.5, -6.5)])
def test_discretized_logistic_is_a_probability_mass_over_256_levels(loc, log_scale):
    levels = torch.arange(256, dtype=torch.float64) / 255
    d = DiscretizedLogistic(torch.full((256,), loc, dtype=torch.float64), torch.full((256,), log_scale, dtype=torch.float64))
    assert d.log_prob(levels).exp().sum().item() == pytest.approx(1.0, abs=1e-3)


def test_means_are_in_the_data_range():
    decoded = torch.randn(2, *EVENT) * 3
    for name in ("bernoulli", "continuous_bernoulli"):
        m = LIKELIHOODS.get(name)(EVENT).mean(decoded)
        assert (m >= 0).all() and (m <= 1).all()
