"""Trace_ELBO on the VAE program against hand-written formulas (seeds 000, 001)."""
import math

import pyro
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer import Trace_ELBO
from pyro.poutine.util import site_is_subsample

from pyro_vae.inference import GuideConfig, ModelConfig, build_guide, build_model, evaluate_elbo
from pyro_vae.inference.data.datasets import binarize_once

N = 4500
LOG_2PI = math.log(2 * math.pi)


def _batch(embedded, size=100):
    return binarize_once(embedded.train_x[:size * 45:45])


def test_trace_elbo_equals_hand_formula_for_a_fixed_draw(embedded, small_pair):
    model, guide = small_pair
    x = _batch(embedded)
    idx = torch.arange(100)
    guide_tr = poutine.trace(guide).get_trace(x, num_data=N, subsample=idx)
    z = guide_tr.nodes["z"]["value"]
    loss = Trace_ELBO().loss(model, poutine.replay(guide, trace=guide_tr), x, num_data=N, subsample=idx)

    # Hand-written: Bernoulli cross-entropy, N(0, I) and N(mu, sigma^2) densities.
    with torch.no_grad():
        logits = model.decoder(z)
        log_px = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
        log_pz = (-0.5 * z ** 2 - 0.5 * LOG_2PI).sum(1)
        loc, scale = guide.posterior_params(x)
        log_qz = (-0.5 * ((z - loc) / scale) ** 2 - scale.log() - 0.5 * LOG_2PI).sum(1)
    hand = -(N / 100) * (log_px + log_pz - log_qz).sum()
    assert loss == pytest.approx(hand.item(), rel=1e-5)


def test_expected_loss_matches_seed000_closed_form(embedded):
    """Linear decoder + unit-variance Gaussian: E_q[fit_loss] has a closed form,
    1/2 (||x - W mu - b||^2 + sum_j sigma_j^2 ||W_j||^2) + D/2 log 2 pi, and
    kl_loss = -1/2 sum(1 + 2 log sigma - mu^2 - sigma^2) (seed 000)."""
    pyro.set_rng_seed(1)
    event = torch.Size([1, 28, 28])
    model = build_model(ModelConfig(latent_dim=4, num_hidden_layers=0, likelihood="gaussian"), event)
    guide = build_guide(GuideConfig(hidden_dim=32), 4, event)
    x = embedded.test_x[::50]  # 10 grey-level digits, one per class
    with torch.no_grad():
        mu, sigma = guide.posterior_params(x)
        linear = model.decoder.net[0]
        W, b = linear.weight, linear.bias
        mean_fit = 0.5 * ((x.flatten(1) - mu @ W.T - b) ** 2).sum(1)
        var_fit = 0.5 * (sigma ** 2 @ (W ** 2).sum(0))
        fit_loss = mean_fit + var_fit + 0.5 * 784 * LOG_2PI
        kl_loss = -0.5 * (1 + 2 * sigma.log() - mu ** 2 - sigma ** 2).sum(1)
        closed = (fit_loss + kl_loss).sum().item()

    elbo = Trace_ELBO(num_particles=200, vectorize_particles=True, max_plate_nesting=1)
    estimates = torch.tensor([elbo.loss(model, guide, x) for _ in range(40)])
    mean, se = estimates.mean().item(), (estimates.std() / math.sqrt(len(estimates))).item()
    assert se < 1e-3 * abs(closed)  # the check has power: the MC error is small
    assert abs(mean - closed) < 4 * se


def test_model_and_guide_traces_sites_shapes_and_plate_scaling(embedded, small_pair):
    model, guide = small_pair
    x = _batch(embedded)
    idx = torch.arange(100, 200)
    guide_tr = poutine.trace(guide).get_trace(x, num_data=N, subsample=idx)
    model_tr = poutine.trace(poutine.replay(model, trace=guide_tr)).get_trace(x, num_data=N, subsample=idx)
    samples = lambda tr: {n: s for n, s in tr.nodes.items()  # noqa: E731
                          if s["type"] == "sample" and not site_is_subsample(s)}
    assert set(samples(guide_tr)) == {"z"}
    assert set(samples(model_tr)) == {"z", "x"}
    assert samples(model_tr)["x"]["is_observed"] and not samples(model_tr)["z"]["is_observed"]
    assert guide_tr.nodes["z"]["value"].shape == (100, 5)
    assert model_tr.nodes["x"]["fn"].batch_shape == (100,)
    assert model_tr.nodes["x"]["fn"].event_shape == (1, 28, 28)
    plate = model_tr.nodes["x"]["cond_indep_stack"][0]
    assert (plate.name, plate.size) == ("data", 100)  # the subsample; N enters through the scale
    assert torch.equal(model_tr.nodes["data"]["value"], idx)
    for tr in (model_tr, guide_tr):
        tr.compute_log_prob()
        for site in samples(tr).values():
            assert site["scale"] == pytest.approx(45.0)
            unscaled = site["fn"].log_prob(site["value"]).sum()
            assert site["log_prob_sum"].item() == pytest.approx(45.0 * unscaled.item(), rel=1e-6)


def test_evaluation_terms_are_seed000_kl_and_bernoulli_cross_entropy(embedded, small_pair):
    model, guide = small_pair
    x = _batch(embedded, 50)
    report = evaluate_elbo(model, guide, x, batch_size=1000, seed=3)
    with torch.no_grad():
        mu, sigma = guide.posterior_params(x)
        kl = -0.5 * (1 + 2 * sigma.log() - mu ** 2 - sigma ** 2).sum(1).mean().item()
        torch.manual_seed(3)  # evaluate_elbo draws its z from the same seed: one guide call
        z = guide(x)
        rec = -F.binary_cross_entropy_with_logits(model.decoder(z), x, reduction="none").flatten(1).sum(1)
    assert report.rate == pytest.approx(kl, rel=1e-5)
    assert report.distortion == pytest.approx(-rec.mean().item(), rel=1e-5)
    assert report.elbo == pytest.approx(-(report.distortion + report.rate))
    assert report.to_dict()["neg_elbo_bits_per_dim"] == pytest.approx(-report.elbo / (784 * math.log(2)))
