"""EM against SVI: each method checked against a closed form or a second method."""

import copy

import pyro
import pytest
import torch
from pyro.infer import TraceEnum_ELBO
from sklearn.datasets import load_digits

from pyro_vae.inference import ModelConfig, build_model
from pyro_vae.inference.em.mixture import MarginalizedGuide, em_step, fit_mixture_em, fit_mixture_svi, objective
from pyro_vae.inference.em.nonlinear import (hard_em_epoch, hmc_posterior_samples, laplace_log_likelihood, log_joint,
                                    mcem_epoch, posterior_modes, train_by_epochs)
from pyro_vae.inference.em.ppca import fit_linear_vae, ppca_em
from pyro_vae.models.linear_gaussian import (PPCAParams, largest_principal_angle, ppca_log_likelihood,
                                    ppca_maximum_likelihood, ppca_posterior)
from pyro_vae.models.mixture import BernoulliMixtureModel, mixture_log_likelihood


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's 1,797 real 8x8 handwritten digits, grey levels in [0, 1] (64 dimensions)."""
    x = torch.tensor(load_digits().data, dtype=torch.float64) / 16.0
    return x[:1500], x[1500:]


def _random_init(x, q, seed=0):
    torch.manual_seed(seed)
    return PPCAParams(0.1 * torch.randn(x.shape[1], q, dtype=x.dtype), x.mean(0), 1.0)


def test_ppca_em_is_monotone_and_reaches_the_closed_form_maximum(digits):
    x, x_test = digits
    ml = ppca_maximum_likelihood(x, 5)
    params, history = ppca_em(x, _random_init(x, 5), 300, x_test)
    train = [h["train_log_px"] for h in history]
    assert all(b >= a - 1e-9 for a, b in zip(train, train[1:]))
    best = float(ppca_log_likelihood(x, ml).mean())
    assert train[-1] == pytest.approx(best, rel=1e-4)
    assert largest_principal_angle(params.weight, ml.weight) < 1e-2
    assert params.sigma2 == pytest.approx(ml.sigma2, rel=1e-3)


def test_closed_form_maximum_beats_every_nearby_point(digits):
    x, _ = digits
    ml = ppca_maximum_likelihood(x, 5)
    best = float(ppca_log_likelihood(x, ml).sum())
    torch.manual_seed(1)
    for _ in range(5):
        moved = PPCAParams(ml.weight + 1e-2 * torch.randn_like(ml.weight), ml.bias + 1e-2 * torch.randn_like(ml.bias),
                           ml.sigma2 * (1 + 0.05 * float(torch.randn(()))))
        assert float(ppca_log_likelihood(x, moved).sum()) < best


def test_ppca_posterior_is_bayes_rule_for_the_joint_gaussian(digits):
    x, _ = digits
    ml = ppca_maximum_likelihood(x, 3)
    W, b, s2 = ml.weight, ml.bias, ml.sigma2
    # joint Gaussian of (z, x): Cov(z, x) = W^T, Cov(x) = W W^T + s2 I; condition on x
    cov_x = W @ W.T + s2 * torch.eye(W.shape[0], dtype=W.dtype)
    gain = W.T @ torch.linalg.inv(cov_x)
    means, cov = ppca_posterior(x[:5], ml)
    assert torch.allclose(means, (x[:5] - b) @ gain.T, atol=1e-8)
    assert torch.allclose(cov, torch.eye(3, dtype=W.dtype) - gain @ W, atol=1e-8)


def test_svi_linear_vae_ends_within_half_a_nat_of_the_closed_form(digits):
    x, _ = digits
    best = float(ppca_log_likelihood(x, ppca_maximum_likelihood(x, 5)).mean())
    _, history = fit_linear_vae(x.float(), 5, epochs=60, init=_random_init(x, 5))
    assert history[-1]["train_log_px"] > best - 0.5
    assert history[-1]["train_log_px"] <= best + 1e-3  # nothing beats the maximum


@pytest.fixture(scope="module")
def binary_digits(digits):
    x, x_test = digits
    gen = torch.Generator().manual_seed(0)
    return torch.bernoulli(x.float(), generator=gen), torch.bernoulli(x_test.float(), generator=gen)


def test_pyros_enumerated_loss_is_minus_the_closed_form_objective(binary_digits):
    x, _ = binary_digits
    pyro.set_rng_seed(0)
    model = BernoulliMixtureModel(64, 4, pseudo_count=1.0)
    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(model, MarginalizedGuide(), x, num_data=x.shape[0],
                                                    subsample=torch.arange(x.shape[0]))
    assert loss == pytest.approx(-x.shape[0] * objective(model, x), rel=1e-5)
    brute = torch.stack([  # sum over c by hand, pixel by pixel
        (model.log_weights[k] + torch.distributions.Bernoulli(logits=model.logits[k]).log_prob(x).sum(-1))
        for k in range(4)]).logsumexp(0)
    assert torch.allclose(mixture_log_likelihood(x, model.log_weights, model.logits), brute, atol=1e-4)


def test_mixture_em_is_monotone_and_svi_with_enumeration_reaches_the_same_objective(binary_digits):
    x, _ = binary_digits
    pyro.set_rng_seed(0)
    start = BernoulliMixtureModel(64, 4, pseudo_count=1.0)
    em_model = copy.deepcopy(start)
    history = fit_mixture_em(em_model, x, 100)
    values = [h["objective"] for h in history]
    assert all(b >= a - 1e-5 for a, b in zip(values, values[1:]))
    svi_history = fit_mixture_svi(copy.deepcopy(start), x, epochs=500, lr=0.1, record_every=500)
    assert svi_history[-1]["objective"] == pytest.approx(values[-1], abs=0.05)  # nats per point


def test_mixture_em_step_is_a_fixed_point_at_convergence(binary_digits):
    x, _ = binary_digits
    pyro.set_rng_seed(0)
    model = BernoulliMixtureModel(64, 3)
    fit_mixture_em(model, x, 300)
    before = model.logits.detach().clone()
    em_step(model, x)
    assert torch.allclose(model.logits, before, atol=1e-3)


def _linear_gaussian_vae(event=torch.Size([1, 2, 3]), latent=2):
    """A VAE whose decoder is affine and whose likelihood is N(Wz + b, I): its posterior is known exactly."""
    pyro.set_rng_seed(0)
    model = build_model(ModelConfig(latent_dim=latent, num_hidden_layers=0, likelihood="gaussian"), event)
    layer = model.decoder.net[0]
    params = PPCAParams(layer.weight.detach().double(), layer.bias.detach().double(), 1.0)
    return model, params


def test_posterior_modes_have_zero_gradient_and_match_the_exact_posterior_mean():
    model, params = _linear_gaussian_vae()
    x = torch.randn(50, 1, 2, 3)
    z = posterior_modes(model, x, torch.zeros(50, 2))
    z_grad = z.clone().requires_grad_(True)
    grad = torch.autograd.grad(log_joint(model, x, z_grad).sum(), z_grad)[0]
    assert grad.norm(dim=-1).max() < 1e-3
    exact_means, _ = ppca_posterior(x.flatten(1).double(), params)  # Gaussian: the mode is the mean
    assert torch.allclose(z.double(), exact_means, atol=1e-4)


def test_hmc_draws_match_the_exact_posterior_moments():
    model, params = _linear_gaussian_vae()
    x = torch.randn(20, 1, 2, 3)
    samples = hmc_posterior_samples(model, x, torch.zeros(20, 2), num_samples=1000, warmup_steps=200)
    exact_means, exact_cov = ppca_posterior(x.flatten(1).double(), params)
    standardized = (samples.double().mean(0) - exact_means) / exact_cov.diagonal().sqrt()
    # 1,000 correlated draws for each of 40 coordinates: errors of a few hundredths of a posterior sd on average
    assert standardized.abs().mean() < 0.12 and standardized.abs().max() < 0.4
    var = samples.double().var(0).mean(0)
    assert torch.allclose(var, exact_cov.diagonal(), rtol=0.25)


def test_laplace_importance_sampling_is_exact_for_a_gaussian_posterior():
    model, params = _linear_gaussian_vae()
    x = torch.randn(30, 1, 2, 3)
    exact = ppca_log_likelihood(x.flatten(1).double(), params)
    assert torch.allclose(laplace_log_likelihood(model, x, num_samples=5, widen=1.0).double(), exact, atol=1e-3)
    widened = laplace_log_likelihood(model, x, num_samples=4000).double()  # SE ~0.01 here (weight variance 0.45)
    assert (widened - exact).abs().max() < 0.05


def test_monte_carlo_and_hard_em_improve_held_out_likelihood_at_a_tiny_scale(embedded):
    gen = torch.Generator().manual_seed(0)
    x, x_test = (torch.bernoulli(t, generator=gen) for t in (embedded.train_x[:200], embedded.test_x[:100]))
    for make in (lambda m: mcem_epoch(m, x, {}, num_samples=3, warmup_steps=5), lambda m: hard_em_epoch(m, x, {})):
        pyro.set_rng_seed(0)
        model = build_model(ModelConfig(latent_dim=3, hidden_dim=50, activation="tanh"), x.shape[1:])
        history = train_by_epochs(model, make(model), x, 3, x_test, eval_every=3, eval_samples=50)
        assert history[-1]["test_log_px"] > history[0]["test_log_px"] + 50
