"""Importance-sampled log p(x) against the closed form of probabilistic PCA, IWAE bounds
in k, and the active-unit report (Burda et al. 2015; Tipping & Bishop 1999)."""
import math

import pytest
import torch
from pyro.infer import Trace_ELBO
from torch.distributions import MultivariateNormal

from pyro_vae.guides import DiagonalNormalGuide
from pyro_vae.inference import RunConfig, evaluate_elbo, importance_log_likelihood, posterior_collapse, setup, train
from pyro_vae.models import FixedScaleGaussianLikelihood, MLPDecoder, MLPEncoder, StandardNormalPrior, VAEModel

Z, SIGMA = 3, 0.5


def _inverse_softplus(y):
    return y + torch.log(-torch.expm1(-y))


@pytest.fixture
def ppca(embedded):
    """x | z ~ N(Wz + b, sigma^2 I) with orthogonal columns of W, so that the exact
    posterior N(M^-1 W^T (x - b), sigma^2 M^-1), M = W^T W + sigma^2 I, is diagonal."""
    torch.manual_seed(0)
    x = embedded.test_x[::25][:20]  # 20 grey-level digits
    event = x.shape[1:]
    q, _ = torch.linalg.qr(torch.randn(784, Z))
    d = torch.tensor([3.0, 2.0, 1.0])
    W, b = q * d, embedded.train_x.flatten(1).mean(0)
    model = VAEModel(StandardNormalPrior(Z), MLPDecoder(Z, event, num_hidden_layers=0),
                     FixedScaleGaussianLikelihood(event, SIGMA))
    guide = DiagonalNormalGuide(MLPEncoder(event, 2 * Z, num_hidden_layers=0), Z)
    m_diag = d ** 2 + SIGMA ** 2
    post_map = W.T / m_diag[:, None]  # M^-1 W^T
    post_sd = SIGMA / m_diag.sqrt()
    with torch.no_grad():
        model.decoder.net[0].weight.copy_(W)
        model.decoder.net[0].bias.copy_(b)
        enc = guide.encoder.net[0]
        enc.weight.zero_()
        enc.weight[:Z] = post_map
        enc.bias[:Z] = -post_map @ b
        enc.bias[Z:] = _inverse_softplus(post_sd - guide.min_scale)
    exact = MultivariateNormal(b, W @ W.T + SIGMA ** 2 * torch.eye(784)).log_prob(x.flatten(1).double().float())
    return model, guide, x, exact


def test_exact_posterior_guide_recovers_the_closed_form_exactly(ppca):
    model, guide, x, exact = ppca
    report, est, se = importance_log_likelihood(model, guide, x, num_samples=50, per_point=True)
    torch.testing.assert_close(est.float(), exact, rtol=0, atol=2e-2)  # every weight equals p(x)
    assert se.max() < 1e-3
    # and the sampled ELBO is tight with zero variance: log p(x, z) - log q(z | x) = log p(x) for every z
    loss = Trace_ELBO().loss(model, guide, x)
    assert -loss / len(x) == pytest.approx(exact.mean().item(), abs=2e-2)


def test_estimate_with_an_imperfect_guide_agrees_within_its_standard_error(ppca):
    model, guide, x, exact = ppca
    with torch.no_grad():
        guide.encoder.net[0].bias[:Z] += 0.3  # shift the means and widen the scales
        guide.encoder.net[0].bias[Z:] += 0.5
    report, est, se = importance_log_likelihood(model, guide, x, num_samples=5000, max_points_per_pass=20_000,
                                                per_point=True, seed=1)
    assert report.standard_error > 1e-3  # the guide is not exact: there is Monte Carlo error to report
    assert abs(report.log_likelihood - exact.mean().item()) < 4 * report.standard_error
    z = (est - exact.double()) / se
    assert z.abs().max() < 5
    elbo = evaluate_elbo(model, guide, x)
    assert elbo.elbo < exact.mean().item() - 0.1  # the ELBO is a strict lower bound here


def test_chunking_does_not_change_the_estimate(ppca):
    model, guide, x, _ = ppca
    with torch.no_grad():
        guide.encoder.net[0].bias[Z:] += 0.5
    a = importance_log_likelihood(model, guide, x, 600, max_points_per_pass=20 * 600, seed=4)
    b = importance_log_likelihood(model, guide, x, 600, max_points_per_pass=20 * 7, seed=4)
    assert a.log_likelihood == pytest.approx(b.log_likelihood, abs=4 * a.standard_error + 1e-6)


@pytest.fixture(scope="module")
def trained():
    cfg = RunConfig()
    cfg.train.epochs = 5
    run = setup(cfg)
    train(run)
    return run


def test_iwae_bound_increases_with_k_and_stays_below_k5000(trained):
    x = trained.data.test_x[:100]
    bounds = {k: importance_log_likelihood(trained.model, trained.guide, x, k, seed=k) for k in (1, 5, 50, 500, 5000)}
    ks = sorted(bounds)
    for lo, hi in zip(ks, ks[1:]):
        noise = 3 * math.hypot(bounds[lo].standard_error, bounds[hi].standard_error)
        assert bounds[hi].log_likelihood > bounds[lo].log_likelihood - noise, (lo, hi)
    assert bounds[5000].log_likelihood - bounds[1].log_likelihood > 3.0  # a real gap, not noise
    elbo = evaluate_elbo(trained.model, trained.guide, x).elbo
    assert bounds[1].log_likelihood == pytest.approx(elbo, abs=3.0)  # k = 1 is a one-sample ELBO


def test_large_beta_switches_off_latent_units(trained):
    ref = posterior_collapse(trained.model, trained.guide, trained.data.test_x)
    cfg = RunConfig.from_dict({"objective": {"name": "beta", "beta": 30.0}, "train": {"epochs": 5}})
    collapsed = setup(cfg)
    train(collapsed)
    low = posterior_collapse(collapsed.model, collapsed.guide, collapsed.data.test_x)
    assert ref.active_units >= 15
    assert low.active_units < ref.active_units - 5
    # a switched-off unit carries (almost) no KL: q(z_u | x) ~ p(z_u) for every x
    kl = torch.tensor(low.kl_per_dim)
    inactive = torch.tensor(low.activity) <= low.threshold
    assert inactive.any() and kl[inactive].max() < 0.05
    assert kl.sum() < 0.1 * sum(ref.kl_per_dim)
