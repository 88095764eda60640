"""Posterior diagnostics against known answers: a linear-Gaussian VAE whose posterior is closed form."""

import arviz as az
import numpy as np
import pyro
import pytest
import torch

from inference import GuideConfig, ModelConfig, build_guide, build_model
from inference.diagnostics import gaps, gaussian_kl, guide_draws, moment_comparison, nuts_reference, psis_khat
from inference.diagnostics.report import _save_netcdf
from models.linear_gaussian import PPCAParams, ppca_log_likelihood, ppca_posterior

EVENT = torch.Size([1, 2, 3])


def _exact_pair(shrink=1.0, shift=0.0):
    """Decoder x = Wz + b + N(0, I) with orthogonal W columns, so p(z | x) is Gaussian with a diagonal
    covariance; a linear guide set to that posterior (scale times ``shrink``, mean plus ``shift``)."""
    pyro.set_rng_seed(0)
    model = build_model(ModelConfig(latent_dim=2, num_hidden_layers=0, likelihood="gaussian"), EVENT)
    guide = build_guide(GuideConfig(num_hidden_layers=0, min_scale=1e-6), 2, EVENT)
    W = torch.linalg.qr(torch.randn(6, 2))[0] * torch.tensor([2.0, 0.7])
    b = 0.1 * torch.randn(6)
    with torch.no_grad():
        model.decoder.net[0].weight.copy_(W)
        model.decoder.net[0].bias.copy_(b)
        M = W.T @ W + torch.eye(2)  # diagonal
        gain = torch.linalg.inv(M) @ W.T  # loc = gain (x - b)
        sd = torch.linalg.inv(M).diagonal().sqrt() * shrink
        layer = guide.encoder.net[0]
        layer.weight.zero_()
        layer.bias.zero_()
        layer.weight[:2] = gain
        layer.bias[:2] = -gain @ b + shift
        layer.bias[2:] = torch.log(torch.expm1(sd - 1e-6))  # softplus(raw) + min_scale = sd
    params = PPCAParams(W.double(), b.double(), 1.0)
    return model, guide, params


@pytest.fixture(scope="module")
def points():
    torch.manual_seed(1)
    return torch.randn(12, *EVENT)


def test_the_constructed_guide_is_the_exact_posterior(points):
    model, guide, params = _exact_pair()
    loc, scale = guide.posterior_params(points)
    means, cov = ppca_posterior(points.flatten(1).double(), params)
    assert torch.allclose(loc.double(), means, atol=1e-5)
    assert torch.allclose(scale.double() ** 2, cov.diagonal().expand_as(loc), atol=1e-5)


def test_nuts_matches_the_closed_form_posterior_within_monte_carlo_error(points):
    model, guide, params = _exact_pair()
    ref = nuts_reference(model, points, list(range(12)), torch.zeros(12, 2), num_chains=4, num_draws=800, warmup=300)
    assert ref.converged and ref.divergences == 0
    draws = ref.idata.posterior["z"].values.reshape(-1, 12, 2)
    means, cov = ppca_posterior(points.flatten(1).double(), params)
    sd = cov.diagonal().sqrt().numpy()
    se = sd / np.sqrt(ref.min_ess_bulk)
    assert (np.abs(draws.mean(0) - means.numpy()) < 5 * se).all()
    assert np.allclose(draws.std(0), sd, rtol=0.15)
    assert np.allclose(np.corrcoef(draws[:, 0, 0], draws[:, 0, 1])[0, 1], 0.0, atol=0.1)  # diagonal covariance


def test_exact_guide_has_small_khat_and_no_gaps_while_bad_guides_fail(points):
    model, guide, params = _exact_pair()
    khat = psis_khat(model, guide, points, 2000)
    assert (khat < 0.5).all()
    exact_gaps = gaps(model, guide, points, elbo_draws=4000, iw_samples=2000)
    assert np.abs(exact_gaps["amortization_gap"]).max() < 0.02
    assert np.abs(exact_gaps["approximation_gap"]).max() < 0.02
    assert np.allclose(exact_gaps["log_px"], ppca_log_likelihood(points.flatten(1).double(), params).numpy(), atol=1e-3)
    for bad in (_exact_pair(shrink=0.1)[1], _exact_pair(shift=1.5)[1]):
        bad_khat = psis_khat(model, bad, points, 2000)
        assert (bad_khat > 0.7).mean() > 0.5
        bad_gaps = gaps(model, bad, points, elbo_draws=4000, iw_samples=2000)
        assert bad_gaps["amortization_gap"].mean() > 1.0 > 10 * np.abs(exact_gaps["amortization_gap"]).mean()


def test_moment_comparison_against_closed_form_kl():
    rng = np.random.default_rng(0)
    ref = rng.normal(0.0, 1.0, size=(20000, 3, 2))
    guide = rng.normal(0.5, 2.0, size=(20000, 3, 2))
    result = moment_comparison(ref, guide)
    expected = 2 * 0.5 * (4.0 + 0.25 - 1 - np.log(4.0))  # KL(N(0.5, 4) || N(0, 1)) in each of two dimensions
    assert np.allclose(result["gaussian_kl"], expected, rtol=0.05)
    assert np.allclose(gaussian_kl(np.zeros((1, 2)), np.eye(2)[None], np.zeros((1, 2)), np.eye(2)[None]), 0.0)


def test_inference_data_round_trips_through_netcdf(points, tmp_path):
    model, guide, _ = _exact_pair()
    ref = nuts_reference(model, points[:3], [5, 7, 9], torch.zeros(3, 2), num_chains=2, num_draws=50, warmup=50)
    _save_netcdf(ref.idata, tmp_path / "reference.nc")
    back = az.from_netcdf(tmp_path / "reference.nc")
    assert set(back.groups()) >= {"posterior", "sample_stats", "observed_data"}
    assert back.posterior["z"].dims == ("chain", "draw", "point", "latent")
    assert list(back.posterior["point"].values) == [5, 7, 9]
    assert np.array_equal(back.posterior["z"].values, ref.idata.posterior["z"].values)
    assert "r_hat" in az.summary(back).columns
    z, _ = guide_draws(guide, points[:3], 10)
    assert z.shape == (10, 3, 2)


def test_vae_diagnose_writes_the_run_folder_files(tmp_path):
    import json

    from inference import RunConfig
    from inference.runs.folder import train_run

    from .conftest import run_vae

    run = tmp_path / "run"
    train_run(RunConfig.from_dict({"model": {"latent_dim": 3, "hidden_dim": 32}, "guide": {"hidden_dim": 32},
                                   "train": {"epochs": 1}}), run, quiet=True)
    done = run_vae("diagnose", run, "--points", "3", "--chains", "2", "--draws", "60", "--warmup", "60",
                   "--guide-samples", "200", "--iw-samples", "200")
    assert done.returncode == 0, done.stderr
    out = run / "diagnostics"
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["points"]) == 3 and len(summary["per_point"]["khat"]) == 3
    assert summary["collapse"]["latent_dim"] == 3
    assert az.from_netcdf(out / "guide.nc").posterior["z"].shape == (1, 200, 3, 3)
    for name in ("pair.png", "khat.png", "kl_per_dim.png", "ppc.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
