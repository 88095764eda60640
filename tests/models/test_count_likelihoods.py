"""The likelihoods for counts and colour levels against their closed forms at hand-picked values
(scipy.stats for the Poisson and the negative binomial)."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from pyro_vae.models import LIKELIHOODS
from pyro_vae.models.discretized import DiscretizedLogistic, DiscretizedLogisticMixture


def _inverse_softplus(v):
    return torch.as_tensor(v, dtype=torch.float64).expm1().log()


def _build(name, event, **options):
    lik = LIKELIHOODS.get(name)(torch.Size(event), **options).double()
    return lik


@pytest.mark.parametrize("mu,k", [(0.3, 0), (0.3, 2), (4.0, 3), (17.5, 40), (2.0, 0)])
def test_poisson_matches_scipy(mu, k):
    lik = _build("poisson", [1])
    decoded = _inverse_softplus([mu - 1e-6])
    lp = lik(decoded).log_prob(torch.tensor([float(k)], dtype=torch.float64))
    assert lp.item() == pytest.approx(stats.poisson.logpmf(k, mu), abs=1e-6)


@pytest.mark.parametrize("mu,theta,k", [(3.0, 0.5, 0), (3.0, 0.5, 7), (10.0, 2.0, 4), (0.2, 20.0, 1), (50.0, 1.3, 120)])
def test_negative_binomial_matches_scipy(mu, theta, k):
    """scipy's nbinom(n, p) counts failures before n successes: n = theta, p = theta / (theta + mu)."""
    lik = _build("negative_binomial", [1], scale=theta)
    decoded = _inverse_softplus([mu - 1e-6])
    assert lik.dispersion.item() == pytest.approx(theta, abs=1e-5)
    theta = lik.dispersion.item()  # the float32 initial value, exactly
    d = lik(decoded)
    expected = stats.nbinom.logpmf(k, theta, theta / (theta + mu))
    assert d.log_prob(torch.tensor([float(k)], dtype=torch.float64)).item() == pytest.approx(expected, abs=1e-5)
    assert lik.mean(decoded).item() == pytest.approx(mu, rel=1e-6)


@pytest.mark.parametrize("k", [0, 1, 5])
def test_zero_inflated_negative_binomial_matches_its_closed_form(k):
    mu, theta, gate = 4.0, 1.5, 0.3
    lik = _build("zero_inflated_negative_binomial", [1], scale=theta)
    theta = lik.dispersion.item()
    decoded = torch.stack([_inverse_softplus([mu - 1e-6]), torch.logit(torch.tensor([gate], dtype=torch.float64))])
    nb = stats.nbinom.pmf(k, theta, theta / (theta + mu))
    expected = math.log(gate + (1 - gate) * nb) if k == 0 else math.log((1 - gate) * nb)
    assert lik(decoded).log_prob(torch.tensor([float(k)], dtype=torch.float64)).item() == pytest.approx(expected, abs=1e-5)
    assert lik.mean(decoded).item() == pytest.approx((1 - gate) * mu, rel=1e-6)


def test_count_likelihoods_sum_over_features_into_one_event():
    lik = _build("negative_binomial", [3])
    mu = np.array([0.5, 2.0, 9.0])
    decoded = _inverse_softplus(torch.tensor(mu) - 1e-6).expand(4, 3)
    x = np.array([[0, 1, 2], [3, 0, 1], [7, 9, 12], [0, 0, 0]])
    theta = lik.dispersion.detach().numpy()
    by_scipy = stats.nbinom.logpmf(x, theta, theta / (theta + mu)).sum(-1)
    got = lik(decoded).log_prob(torch.tensor(x, dtype=torch.float64)).detach().numpy()
    assert np.allclose(got, by_scipy, atol=1e-5)


def test_discretized_logistic_mixture_sums_to_one_over_the_256_levels_of_each_channel():
    torch.manual_seed(0)
    k = 4
    lik = _build("discretized_logistic_mixture", [3, 2, 2], num_components=k)
    assert lik.params_per_pixel == 3 * k
    decoded = torch.randn(3 * k, 3, 2, 2, dtype=torch.float64)
    decoded[k:2 * k] = decoded[k:2 * k].sigmoid()  # locations inside [0, 1]
    d = lik._mixture(decoded)  # per channel and pixel: batch (3, 2, 2)
    levels = torch.arange(256, dtype=torch.float64).div(255).reshape(256, 1, 1, 1).expand(256, 3, 2, 2)
    total = d.log_prob(levels).exp().sum(0)
    assert torch.allclose(total, torch.ones(3, 2, 2, dtype=torch.float64), atol=1e-6)


def test_a_one_component_mixture_is_the_discretized_logistic():
    loc, log_scale = torch.tensor([0.2, 0.7], dtype=torch.float64), torch.tensor([-3.0, -2.0], dtype=torch.float64)
    mixture = DiscretizedLogisticMixture(torch.zeros(2, 1, dtype=torch.float64), loc[:, None], log_scale[:, None])
    x = torch.tensor([0.0, 178 / 255], dtype=torch.float64)
    assert torch.allclose(mixture.log_prob(x), DiscretizedLogistic(loc, log_scale).log_prob(x))


def test_two_component_mixture_is_the_weighted_sum_of_its_components():
    logits = torch.tensor([[0.3, -0.4]], dtype=torch.float64)
    loc, log_scale = torch.tensor([[0.1, 0.8]], dtype=torch.float64), torch.tensor([[-3.0, -2.5]], dtype=torch.float64)
    x = torch.tensor([200 / 255], dtype=torch.float64)
    w = logits.softmax(-1)[0]
    by_hand = sum(w[j] * DiscretizedLogistic(loc[0, j], log_scale[0, j]).log_prob(x).exp() for j in range(2))
    assert DiscretizedLogisticMixture(logits, loc, log_scale).log_prob(x).exp().item() == pytest.approx(by_hand.item())


def test_mixture_samples_lie_on_the_8_bit_grid_and_follow_the_weights():
    torch.manual_seed(1)
    d = DiscretizedLogisticMixture(torch.tensor([[0.0, math.log(3.0)]]).expand(20000, 2),
                                   torch.tensor([0.1, 0.9]), torch.tensor([-6.0, -6.0]))
    x = d.sample()
    assert torch.allclose(x * 255, (x * 255).round())
    assert (x > 0.5).float().mean().item() == pytest.approx(0.75, abs=0.02)


@pytest.mark.parametrize("name", ["poisson", "negative_binomial", "zero_inflated_negative_binomial",
                                  "discretized_logistic_mixture"])
def test_new_likelihoods_train_through_the_vae_program(name):
    """One Trace_ELBO gradient step through the model with each new likelihood: finite loss, gradients reach the
    decoder (and the dispersion)."""
    import pyro
    from pyro.infer import Trace_ELBO
    from pyro_vae.inference import GuideConfig, ModelConfig, build_guide, build_model

    pyro.set_rng_seed(0)
    event = torch.Size([3, 4, 4]) if name.startswith("discretized") else torch.Size([6])
    model = build_model(ModelConfig(latent_dim=2, hidden_dim=8, likelihood=name, arch="mlp"), event)
    guide = build_guide(GuideConfig(hidden_dim=8), 2, event)
    x = torch.randint(0, 256, (5, *event)).float().div(255) if name.startswith("discretized") else \
        torch.poisson(torch.full((5, *event), 3.0))
    loss = Trace_ELBO().differentiable_loss(model, guide, x)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
