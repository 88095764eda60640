"""Objectives against hand computations and each other (seeds 000-003, Burda et al. 2015)."""
import math

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

from pyro_vae.inference import BetaELBO, IWAEBound, RunConfig, SVITrainer, build_objective
from pyro_vae.inference.data.datasets import binarize_once
from pyro_vae.inference.objectives import kl_weight
from pyro_vae.inference.objectives.weights import trace_pair

N = 4500


@pytest.fixture
def batch(embedded):
    return binarize_once(embedded.train_x[:2000:20]), torch.arange(100)


def _loss(objective, model, guide, x, idx, seed=0):
    pyro.set_rng_seed(seed)
    return objective.loss(model, guide, x, num_data=N, subsample=idx)


def _closed_kl(guide, x):
    with torch.no_grad():
        mu, sigma = guide.posterior_params(x)
        return -0.5 * (1 + 2 * sigma.log() - mu ** 2 - sigma ** 2)  # (B, Z), seed 000


def test_beta_one_with_sampled_kl_is_trace_elbo_on_the_same_draws(small_pair, batch):
    model, guide = small_pair
    x, idx = batch
    expected = _loss(Trace_ELBO(), model, guide, x, idx, seed=7)
    assert _loss(BetaELBO(1.0, analytic_kl=False), model, guide, x, idx, seed=7) == pytest.approx(expected, rel=1e-6)


def test_beta_weights_the_closed_form_rate(small_pair, batch):
    model, guide = small_pair
    x, idx = batch
    one = _loss(BetaELBO(1.0), model, guide, x, idx, seed=3)
    four = _loss(BetaELBO(4.0), model, guide, x, idx, seed=3)
    kl = _closed_kl(guide, x).sum().item()
    assert four - one == pytest.approx(3 * (N / 100) * kl, abs=8 * abs(four) * 2 ** -24)


def test_free_bits_floor_each_dimension_of_the_batch_mean_kl(small_pair, batch):
    model, guide = small_pair
    x, idx = batch
    kl_dim = _closed_kl(guide, x).mean(0)  # mean KL of each latent dimension over the batch
    lam = float(kl_dim.median())  # some dimensions below the floor, some above
    plain = _loss(BetaELBO(1.0), model, guide, x, idx, seed=5)
    floored = _loss(BetaELBO(1.0, free_bits=lam), model, guide, x, idx, seed=5)
    expected = (N / 100) * 100 * (kl_dim.clamp(min=lam) - kl_dim).sum().item()
    assert expected > 0
    float32_rounding = 8 * abs(plain) * 2 ** -24  # both losses are float32 sums of ~2.5e6
    assert floored - plain == pytest.approx(expected, abs=float32_rounding)


def test_analytic_and_sampled_kl_agree_in_expectation(small_pair, batch):
    model, guide = small_pair
    x, idx = batch[0][:20], batch[1][:20]
    runs = 30
    analytic = torch.tensor([_loss(TraceMeanField_ELBO(num_particles=100, vectorize_particles=True,
                                                       max_plate_nesting=1), model, guide, x, idx, s) for s in range(runs)])
    sampled = torch.tensor([_loss(Trace_ELBO(num_particles=100, vectorize_particles=True, max_plate_nesting=1),
                                  model, guide, x, idx, 100 + s) for s in range(runs)])
    se = math.sqrt(analytic.var() / runs + sampled.var() / runs)
    assert se < 1e-3 * abs(sampled.mean().item())
    assert abs(analytic.mean() - sampled.mean()) < 4 * se


def test_kl_schedules():
    assert [kl_weight("linear", s, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert [kl_weight("cyclical", s, 4) for s in range(8)] == [0.25, 0.75, 1.0, 1.0] * 2
    assert kl_weight("constant", 0, 10) == 1.0
    with pytest.raises(ValueError, match="unknown KL schedule"):
        kl_weight("cosine", 0, 4)


def test_warmup_follows_the_trainers_step_count_and_the_objective_keeps_none(small_pair, batch):
    """Step t (t steps taken) minimizes D + beta_t R with beta_t = 2 min(1, (t + 1) / 4): the loss it reports is
    the loss of ``at_step(t)`` (beta fixed) on the same draws; the objective itself holds no step count."""
    model, guide = small_pair
    x, idx = batch
    objective = BetaELBO(2.0, schedule="linear", warmup_steps=4)
    trainer = SVITrainer(model, guide, lr=1e-3, loss=objective, engine="off")
    betas, losses, expected = [], [], []
    for t in range(5):
        expected.append(_loss(objective.at_step(t), model, guide, x, idx, seed=30 + t))
        pyro.set_rng_seed(30 + t)
        losses.append(float(trainer.step(x, num_data=N, subsample=idx)))
        betas.append(trainer.loss.schedule_weight)
    assert betas == [0.5, 1.0, 1.5, 2.0, 2.0] and [objective.at_step(t).beta for t in range(5)] == betas
    assert losses == pytest.approx(expected, rel=1e-6)
    assert vars(objective) == vars(BetaELBO(2.0, schedule="linear", warmup_steps=4))  # stateless


def test_a_warmup_under_pyros_svi_is_refused_in_one_line(small_pair, batch):
    """Pyro's SVI passes no step count: a scheduled beta would silently stay at one value, so it is refused."""
    model, guide = small_pair
    x, idx = batch
    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), BetaELBO(2.0, schedule="linear", warmup_steps=4))
    with pytest.raises(ValueError, match="needs the step count, which Pyro's SVI does not pass") as err:
        svi.step(x, num_data=N, subsample=idx)
    assert "\n" not in str(err.value)
    constant = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), BetaELBO(2.0, warmup_steps=4))
    assert math.isfinite(constant.step(x, num_data=N, subsample=idx))  # constant schedule: no step needed


def test_iwae_is_a_log_mean_exp_per_data_point(small_pair, batch):
    model, guide = small_pair
    x, idx = batch[0][:10], batch[1][:10]
    k = 7
    loss = _loss(IWAEBound(k), model, guide, x, idx, seed=11)
    pyro.set_rng_seed(11)
    guide_trace, _ = trace_pair(guide, guide, k, x, num_data=N, subsample=idx)  # the same draws of z
    z = guide_trace.nodes["z"]["value"]  # (k, B, Z)
    with torch.no_grad():
        logits = model.decoder(z)
        log_px = -torch.nn.functional.binary_cross_entropy_with_logits(
            logits, x.expand_as(logits), reduction="none").flatten(2).sum(-1)
        log_pz = (-0.5 * z ** 2 - 0.5 * math.log(2 * math.pi)).sum(-1)
        loc, scale = guide.posterior_params(x)
        log_qz = (-0.5 * ((z - loc) / scale) ** 2 - scale.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
    log_w = log_px + log_pz - log_qz
    per_point = torch.logsumexp(log_w, 0) - math.log(k)
    assert loss == pytest.approx(-(N / 10) * per_point.sum().item(), rel=1e-5)
    pooled = torch.logsumexp(log_w.sum(1), 0) - math.log(k)  # RenyiELBO's one global weight per particle
    assert abs(-(N / 10) * pooled.item() - loss) > 1.0


def test_iwae_with_one_particle_is_trace_elbo(small_pair, batch):
    model, guide = small_pair
    x, idx = batch
    assert _loss(IWAEBound(1), model, guide, x, idx, 2) == pytest.approx(
        _loss(Trace_ELBO(), model, guide, x, idx, 2), rel=1e-6)


def _grads(objective, model, guide, x, idx, seed):
    pyro.set_rng_seed(seed)
    for p in list(model.parameters()) + list(guide.parameters()):
        p.grad = None
    loss = objective.differentiable_loss(model, guide, x, num_data=N, subsample=idx)
    loss.backward()
    return (loss.item(), [p.grad.clone() for p in model.parameters()],
            torch.cat([p.grad.flatten() for p in guide.parameters()]))


def test_dreg_keeps_the_value_and_decoder_gradient_and_the_encoder_gradient_in_expectation(embedded):
    from pyro_vae.inference import GuideConfig, ModelConfig, build_guide, build_model

    pyro.set_rng_seed(0)
    event = torch.Size([1, 28, 28])
    model = build_model(ModelConfig(latent_dim=2, hidden_dim=16), event)
    guide = build_guide(GuideConfig(hidden_dim=16), 2, event)
    model.double(), guide.double()  # float64: the identities below hold to rounding, not to float32 noise
    x, idx = binarize_once(embedded.train_x[:200:20]).double(), torch.arange(10)
    plain_loss, plain_dec, _ = _grads(IWAEBound(10), model, guide, x, idx, 1)
    dreg_loss, dreg_dec, _ = _grads(IWAEBound(10, dreg=True), model, guide, x, idx, 1)
    assert dreg_loss == pytest.approx(plain_loss, rel=1e-12)
    for a, b in zip(plain_dec, dreg_dec):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    reps = 300
    plain = torch.stack([_grads(IWAEBound(10), model, guide, x, idx, s)[2] for s in range(reps)])
    dreg = torch.stack([_grads(IWAEBound(10, dreg=True), model, guide, x, idx, 10_000 + s)[2] for s in range(reps)])
    diff = plain.mean(0) - dreg.mean(0)
    se = (plain.var(0) / reps + dreg.var(0) / reps).sqrt()
    z = diff / se.clamp(min=1e-12)
    assert (z.abs() < 4.5).float().mean() > 0.99  # unbiased: means agree coordinate by coordinate
    assert dreg.var(0).sum() < plain.var(0).sum()  # and the point of DReG: lower variance


@pytest.mark.parametrize("settings", [
    {"name": "elbo"}, {"name": "elbo", "num_particles": 3}, {"name": "mean_field"},
    {"name": "beta", "beta": 0.5, "kl_schedule": "linear", "warmup_steps": 10, "free_bits": 0.1},
    {"name": "iwae", "num_particles": 5}, {"name": "iwae", "num_particles": 5, "dreg": True},
])
def test_every_objective_trains_the_vae(embedded, settings):
    from pyro_vae.inference import setup

    cfg = RunConfig.from_dict({"objective": settings, "model": {"latent_dim": 5, "hidden_dim": 64},
                               "guide": {"hidden_dim": 64}})
    run = setup(cfg)
    before = run.evaluate().elbo
    trainer = SVITrainer(run.model, run.guide, lr=3e-3, loss=build_objective(cfg.objective))
    x = run.data.train_x[:1000]
    for step in range(40):
        idx = torch.randint(0, 1000, (100,))
        trainer.step(torch.bernoulli(x[idx]), num_data=1000, subsample=idx)
    assert run.evaluate().elbo > before + 100
