"""Posterior diagnostics against known answers: a linear-Gaussian VAE whose posterior is closed form."""

import arviz as az
import numpy as np
import pyro
import pytest
import torch

from pyro_vae.inference import GuideConfig, ModelConfig, build_guide, build_model
from pyro_vae.inference.diagnostics import gaps, gaussian_kl, guide_draws, moment_comparison, nuts_reference, psis_khat
from pyro_vae.models.linear_gaussian import PPCAParams, ppca_log_likelihood, ppca_posterior

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


@pytest.mark.slow  # a long NUTS run (4 chains of 800 iterations): make test, not make test-fast
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
    ref.idata.to_netcdf(str(tmp_path / "reference.nc"))  # as vae diagnose writes it
    back = az.from_netcdf(tmp_path / "reference.nc")
    assert set(back.groups()) >= {"posterior", "sample_stats", "observed_data"}
    assert back.posterior["z"].dims == ("chain", "draw", "point", "latent")
    assert list(back.posterior["point"].values) == [5, 7, 9]
    assert np.array_equal(back.posterior["z"].values, ref.idata.posterior["z"].values)
    assert "r_hat" in az.summary(back).columns
    z, _ = guide_draws(guide, points[:3], 10)
    assert z.shape == (10, 3, 2)


@pytest.fixture(scope="module")
def complete_reference(points):
    model, guide, params = _exact_pair()
    ref = nuts_reference(model, points, list(range(12)), torch.zeros(12, 2), num_chains=4, num_draws=400,
                         warmup=300, predictive_draws=100)
    return model, params, ref


@pytest.mark.slow  # complete_reference: a long NUTS run (4 chains of 700 iterations)
def test_the_reference_has_arvizs_groups_and_its_log_likelihood_is_the_closed_form_one(points, complete_reference):
    """log_likelihood['x'][c, d, n] = log N(x_n; W z_cdn + b, I), each image's pixels summed, at the drawn z;
    az.loo and az.waic leave one image out and give a finite elpd."""
    model, params, ref = complete_reference
    idata = ref.idata
    assert set(idata.groups()) >= {"posterior", "sample_stats", "log_likelihood", "posterior_predictive",
                                   "observed_data"}
    z = torch.as_tensor(idata.posterior["z"].values, dtype=torch.float64)  # (C, D, P, Z)
    mean = z @ params.weight.T + params.bias
    by_hand = torch.distributions.Normal(mean, 1.0).log_prob(points.flatten(1).double()).sum(-1)
    assert idata.log_likelihood["x"].dims == ("chain", "draw", "point")
    assert np.allclose(idata.log_likelihood["x"].values, by_hand.numpy(), atol=1e-4)
    loo, waic = az.loo(idata), az.waic(idata)
    assert np.isfinite(loo.elpd_loo) and np.isfinite(waic.elpd_waic) and loo.n_data_points == 12


@pytest.mark.slow  # complete_reference: a long NUTS run (4 chains of 700 iterations)
def test_the_reference_records_each_chains_energy_and_the_tree_statistics(points, complete_reference):
    """energy[c, d] = U_c + K_c at the start of each iteration: it is at least the chain's potential at the
    draw before (K >= 0) and its E-BFMI is healthy on a Gaussian posterior; the tree statistics agree
    (n_steps <= 2^depth - 1)."""
    model, params, ref = complete_reference
    stats = ref.idata.sample_stats
    assert {"energy", "step_size", "tree_depth", "n_steps", "acceptance_rate", "diverging"} <= set(stats.data_vars)
    assert stats["energy"].dims == ("chain", "draw") and stats["energy"].shape == (4, 400)
    bfmi = az.bfmi(ref.idata)
    assert bfmi.shape == (4,) and (bfmi > 0.3).all()
    z = torch.as_tensor(ref.idata.posterior["z"].values[:, :-1], dtype=torch.float32)  # the start of draw d + 1
    with torch.no_grad():
        potential = -(model.prior(torch.Size([12])).log_prob(z)
                      + model.likelihood(model.decode(z)).log_prob(points)).sum(-1).double().numpy()
    assert (stats["energy"].values[:, 1:] >= potential - 1e-3).all()
    kinetic = stats["energy"].values[:, 1:] - potential  # K_c = |r|^2 / 2 with r ~ N(0, I_{P Z}): mean P Z / 2
    assert kinetic.mean() == pytest.approx(12 * 2 / 2, rel=0.15)
    depth, steps = stats["tree_depth"].values, stats["n_steps"].values
    assert (depth >= 1).all() and (steps <= 2 ** depth - 1).all() and (steps >= 2 ** (depth - 1)).all()
    assert 0.0 < float(stats["acceptance_rate"].mean()) <= 1.0 and len(np.unique(stats["step_size"].values)) == 1


@pytest.mark.slow  # complete_reference: a long NUTS run (4 chains of 700 iterations)
def test_the_posterior_predictive_mean_is_the_closed_form_one(points, complete_reference):
    """E[x_rep | x_n] = W E[z | x_n] + b: the predictive draws' mean within 5 Monte Carlo standard errors
    (Var x_rep = W Cov[z | x] W^T + I, over the thinned draws' effective number)."""
    model, params, ref = complete_reference
    x_rep = ref.idata.posterior_predictive["x"].values  # (C, D', P, pixels)
    assert x_rep.shape == (4, 100, 12, 6)
    means, cov = ppca_posterior(points.flatten(1).double(), params)
    expected = (means @ params.weight.T + params.bias).numpy()
    var = (params.weight @ cov @ params.weight.T).diagonal().numpy() + 1.0
    se = np.sqrt(var / (0.5 * 400))  # at least half of the 400 predictive draws' worth: NUTS on a Gaussian
    assert (np.abs(x_rep.reshape(-1, 12, 6).mean(0) - expected) < 5 * se).all()


def test_examine_gives_inference_data_that_arviz_compares_from_one_set_of_guide_draws(tmp_path):
    """The Python entry: the guide's log_likelihood is log p(x_n | z) at its own draws, az.loo and az.compare
    take the two objects as they are, and the amortized ELBO is the mean log weight of those same draws."""
    from pyro_vae.inference import RunConfig
    from pyro_vae.inference.diagnostics import examine
    from pyro_vae.inference.runs.folder import train_run
    from pyro_vae.inference.runs.run import load_run

    folder = tmp_path / "run"
    train_run(RunConfig.from_dict({"model": {"latent_dim": 2, "hidden_dim": 32}, "guide": {"hidden_dim": 32},
                                   "train": {"epochs": 1}}), folder, quiet=True)
    run = load_run(folder)
    found = examine(run, [3, 8], chains=2, draws=80, warmup=80, guide_samples=300)
    x = run.data.test_x[[3, 8]]
    assert found.guide.posterior.sizes["chain"] == 4 and found.guide.posterior.sizes["draw"] == 75
    z = torch.as_tensor(found.guide.posterior["z"].values.reshape(300, 2, 2))  # (S, P, Z)
    with torch.no_grad():
        log_lik = run.model.likelihood(run.model.decode(z)).log_prob(x)
        log_w = run.model.prior(torch.Size([2])).log_prob(z) + log_lik - run.guide.posterior(x).log_prob(z)
    assert np.allclose(found.guide.log_likelihood["x"].values.reshape(300, 2), log_lik.numpy(), atol=1e-3)
    assert np.allclose(found.summary["per_point"]["elbo_amortized"], log_w.mean(0).numpy(), atol=1e-3)
    # log p(x) of the gaps is the importance estimate from those same draws, the one k-hat judges
    log_px = (torch.logsumexp(log_w.double(), 0) - np.log(300)).numpy()
    assert np.allclose(found.summary["per_point"]["log_px"], log_px, atol=1e-3)
    # independent draws cut into chains: ArviZ's R-hat of them is 1 up to Monte Carlo noise
    assert float(az.rhat(found.guide).to_array().max()) < 1.05
    assert found.guide.posterior["z"].dims == found.reference.posterior["z"].dims
    assert np.isfinite(az.loo(found.reference).elpd_loo)
    table = az.compare({"nuts": found.reference, "guide": found.guide})
    assert set(table.index) == {"nuts", "guide"} and np.isfinite(table["elpd_loo"]).all()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    from pyro_vae.inference import RunConfig
    from pyro_vae.inference.runs.folder import train_run
    from pyro_vae.inference.runs.run import load_run

    folder = tmp_path_factory.mktemp("small") / "run"
    train_run(RunConfig.from_dict({"model": {"latent_dim": 2, "hidden_dim": 32}, "guide": {"hidden_dim": 32},
                                   "train": {"epochs": 1}}), folder, quiet=True)
    return load_run(folder)


def test_training_points_are_binarized_once_like_the_test_set(small_run):
    """A dynamically binarized run keeps grey training images; the diagnosed ones are one fixed draw of them."""
    from pyro_vae.inference.diagnostics import split_points

    x = split_points(small_run, "train", [4, 9])
    assert set(x.unique().tolist()) <= {0.0, 1.0} and torch.equal(x, split_points(small_run, "train", [4, 9]))
    assert torch.equal(split_points(small_run, "train", [1, 4, 7, 9])[[1, 3]], x)  # whatever else is chosen
    grey = small_run.data.train_x[[4, 9]]
    assert not torch.equal(grey, grey.round()) and (x.mean() - grey.mean()).abs() < 0.05
    assert torch.equal(split_points(small_run, "test", [4, 9]), small_run.data.test_x[[4, 9]])


def test_the_worst_points_by_a_fast_khat_pass_are_bad_proposals_on_a_full_one(small_run):
    from pyro_vae.inference.diagnostics import psis_khat, worst_points
    from pyro_vae.inference.diagnostics.points import choose_points

    chosen, screening = worst_points(small_run, "test", 3, screen=100, seed=0)
    assert screening["screened"] == 100 and len(set(chosen)) == 3
    others = [i for i in choose_points(500, 12, None, seed=5) if i not in chosen][:10]
    torch.manual_seed(11)  # fresh draws, five times as many as the screening's
    model, guide, x = small_run.model, small_run.guide, small_run.data.test_x
    worst, typical = psis_khat(model, guide, x[chosen]), psis_khat(model, guide, x[others])
    assert worst.mean() > np.median(typical) and screening["chosen_min_khat"] >= screening["median_khat"]


def test_a_diagnosis_of_one_split_leaves_no_earlier_split_behind_and_points_are_named_once(small_run, tmp_path):
    import json

    from pyro_vae.inference.diagnostics import diagnose
    from pyro_vae.inference.diagnostics.points import choose_points
    from pyro_vae.inference.errors import UserError

    out = tmp_path / "diagnostics"
    (out / "train").mkdir(parents=True)
    (out / "train" / "reference.nc").write_text("an earlier diagnosis")
    diagnose(small_run, out, {"test": [2, 5]}, chains=2, draws=20, warmup=20, guide_samples=40)
    assert not (out / "train").exists() and (out / "test" / "reference.nc").is_file()
    assert set(json.loads((out / "summary.json").read_text())["splits"]) == {"test"}
    with pytest.raises(UserError, match="names test point 5 twice"):
        choose_points(500, 0, [5, 2, 5], seed=0)


def _memorizing_run(tmp_path, images: int = 50):
    """A VAE trained to memorize ``images`` MNIST digits (statically binarized, 1,000 steps), tested on 50 others."""
    from pyro_vae.inference import RunConfig, setup
    from pyro_vae.inference.data.datasets import IDX_FILES, load_embedded_mnist
    from pyro_vae.inference.training.loop import train

    from tests.helpers import write_idx

    digits = load_embedded_mnist()
    grey = (digits.train_x[: images + 50, 0] * 255).round().numpy()
    labels = digits.train_y[: images + 50].numpy()
    arrays = {"train_images": grey[:images], "train_labels": labels[:images], "test_images": grey[images:],
              "test_labels": labels[images:]}
    for key, name in IDX_FILES.items():
        write_idx(tmp_path / name, arrays[key])
    run = setup(RunConfig.from_dict({"data": {"dataset": "idx", "data_dir": str(tmp_path), "binarize": "static"},
                                     "model": {"latent_dim": 4, "hidden_dim": 128}, "guide": {"hidden_dim": 128},
                                     "train": {"epochs": 200, "batch_size": 10, "lr": 3e-3, "compile": "trace"}}))
    train(run)
    return run


@pytest.mark.slow
def test_an_overfitted_guide_has_a_larger_amortization_gap_on_test_points(tmp_path):
    """Cremer et al. (2018): an encoder that memorized its training images is a much worse amortized posterior on
    held-out ones. Both splits go through one examination (one NUTS run); each split's cut is its own points."""
    from pyro_vae.inference.diagnostics import examine_splits, split_points

    run = _memorizing_run(tmp_path)
    points = {"train": list(range(10)), "test": list(range(10))}
    found = examine_splits(run, points, chains=2, draws=30, warmup=30, guide_samples=200)
    gap = {split: np.asarray(d.summary["per_point"]["amortization_gap"]) for split, d in found.items()}
    se = np.sqrt(sum(g.var(ddof=1) / len(g) for g in gap.values()))
    assert gap["test"].mean() > gap["train"].mean() + 3 * se, {k: g.mean() for k, g in gap.items()}
    elbo = {split: np.mean(d.summary["per_point"]["elbo_amortized"]) for split, d in found.items()}
    assert elbo["train"] > elbo["test"]
    for split, d in found.items():
        x = split_points(run, split, points[split]).flatten(1).numpy()
        assert np.array_equal(d.reference.observed_data["x"].values, x)
        assert np.array_equal(d.guide.observed_data["x"].values, x)
        assert list(d.reference.posterior["point"].values) == points[split]
        assert d.reference.posterior["z"].shape == (2, 30, 10, 4)
