"""Every likelihood x guide, and every prior with a guide it pairs with, trains on the embedded digits; every
prior x guide pair of the registries either trains one epoch or is refused before anything is loaded."""
import math

import pyro
import pytest
import torch

from pyro_vae.guides import GUIDES
from pyro_vae.inference import RunConfig, SVITrainer, UserError, build_model_and_guide, prepare, train_run
from pyro_vae.models import LIKELIHOODS, PRIORS
from pyro_vae.models.likelihoods import BINARY, COUNT

STEPS = 30


def _train(embedded, likelihood="bernoulli", guide="diagonal_normal", prior="normal", arch="mlp",
           upsample="transposed"):
    binarize = "dynamic" if LIKELIHOODS.get(likelihood).data == BINARY else "none"
    counts = LIKELIHOODS.get(likelihood).data == COUNT  # trained on the grey levels as counts 0..20
    cfg = RunConfig.from_dict({
        "data": {"binarize": binarize, **({"dataset": "array", "data_dir": "counts.npz"} if counts else {})},
        "model": {"latent_dim": 4, "hidden_dim": 64, "likelihood": likelihood, "prior": prior,
                  "prior_components": 3, "likelihood_scale": 0.3, "arch": arch, "channels": 8, "upsample": upsample},
        "guide": {"guide": guide, "hidden_dim": 64, "arch": arch, "channels": 8}})
    data = prepare(embedded, binarize)
    if counts:
        data = data.replace(train_x=(data.train_x * 20).round())
    pyro.set_rng_seed(0)
    model, q = build_model_and_guide(cfg.model, cfg.guide, data.event_shape)
    trainer = SVITrainer(model, q, lr=1e-3)
    x = data.train_x[:1000]
    losses = []
    for _ in range(STEPS):
        idx = torch.randint(0, x.shape[0], (100,))
        batch = torch.bernoulli(x[idx]) if binarize == "dynamic" else x[idx]
        losses.append(float(trainer.step(batch, num_data=x.shape[0], subsample=idx)))
    assert all(math.isfinite(v) for v in losses)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.05 * abs(first), (first, last)


@pytest.mark.parametrize("guide", GUIDES.names())
@pytest.mark.parametrize("likelihood", LIKELIHOODS.names())
def test_every_likelihood_with_every_guide_trains(embedded, likelihood, guide):
    _train(embedded, likelihood=likelihood, guide=guide)


@pytest.mark.parametrize("prior", PRIORS.names())
def test_every_prior_trains(embedded, prior):
    guide = next(g for g in GUIDES.names() if not PRIORS.get(prior).pairing_problem(GUIDES.get(g)))
    _train(embedded, prior=prior, guide=guide)


@pytest.mark.parametrize("prior", PRIORS.names())
def test_every_prior_guide_pair_trains_an_epoch_or_is_refused_in_one_line(tmp_path, prior):
    """No other exception than a UserError naming both, raised before the data is loaded or a file written."""
    for guide in GUIDES.names():
        raw = {"model": {"latent_dim": 3, "hidden_dim": 16, "prior": prior, "prior_components": 3},
               "guide": {"hidden_dim": 16, "guide": guide}, "train": {"epochs": 1, "batch_size": 500}}
        problem = PRIORS.get(prior).pairing_problem(GUIDES.get(guide))
        if problem:
            with pytest.raises(UserError) as err:
                train_run(RunConfig.from_dict(raw), tmp_path / guide, quiet=True)
            assert f"prior {prior!r} with guide {guide!r}" in str(err.value) and "\n" not in str(err.value)
            assert not (tmp_path / guide).exists()
        else:
            metrics = train_run(RunConfig.from_dict(raw), tmp_path / guide, quiet=True, plots=False,
                                tensorboard=False)
            assert math.isfinite(metrics[-1]["test_elbo"]), (prior, guide)


@pytest.mark.parametrize("upsample", ["transposed", "pixel_shuffle"])
def test_convolutional_vae_trains(embedded, upsample):
    _train(embedded, arch="conv", upsample=upsample)



OBJECTIVE_VARIANTS = {  # every objective, with the options that change what it needs from the prior and guide
    "elbo": {}, "mean_field": {}, "beta": {"beta": 2.0, "free_bits": 0.1, "analytic_kl": False},
    "iwae": {"num_particles": 3}, "iwae-dreg": {"num_particles": 3, "dreg": True},
    "contractive": {}, "adversarial": {"discriminator_steps": 1}}
REFUSED = {  # (prior, guide) pairs that ended in a traceback before objectives said what they need
    "beta": {("normal", "full_covariance"), ("normal", "iaf"), ("flat", "delta"), ("flow", "delta"),
             ("mog", "delta"), ("vamp", "diagonal_normal")},  # free bits need factorized p and q
    "iwae-dreg": {("normal", "delta"), ("normal", "iaf"), ("normal", "uniform_noise"), ("flat", "delta")},  # Gaussian q
    "contractive": {("normal", "iaf")},  # a deterministic code
    "adversarial": {("flat", "delta")}}  # draws of the prior


@pytest.mark.parametrize("variant", OBJECTIVE_VARIANTS)
def test_every_objective_with_every_guide_and_prior_trains_or_is_refused_in_one_line(variant):
    """Objective x guide (with N(0, I)) and objective x prior (with the first guide both accept): two steps on
    200 digits and a finite test ELBO, or a UserError naming all three before anything is loaded."""
    from pyro_vae.inference import setup, train
    from pyro_vae.inference.config.sections import ObjectiveConfig
    from pyro_vae.inference.objectives import OBJECTIVES

    name, options = variant.split("-")[0], OBJECTIVE_VARIANTS[variant]
    objective = OBJECTIVES.get(name)

    def fits(prior, guide):
        return not PRIORS.get(prior).pairing_problem(GUIDES.get(guide)) and not objective.pairing_problem(
            ObjectiveConfig(name=name, **options), PRIORS.get(prior), GUIDES.get(guide))

    pairs = [("normal", g) for g in GUIDES.names()]
    for prior in (p for p in PRIORS.names() if p != "normal"):
        paired = [g for g in GUIDES.names() if not PRIORS.get(prior).pairing_problem(GUIDES.get(g))]
        pairs.append((prior, next((g for g in paired if fits(prior, g)), paired[0])))
    refused = set()
    for prior, guide in pairs:
        raw = {"model": {"latent_dim": 3, "hidden_dim": 16, "prior": prior, "prior_components": 3},
               "guide": {"hidden_dim": 16, "guide": guide}, "objective": {"name": name, **options},
               "train": {"epochs": 1, "batch_size": 100, "compile": "off"}}  # engines: test_engine_matrix.py
        try:
            run = setup(RunConfig.from_dict(raw))
        except UserError as err:
            assert f"objective {name!r} with prior {prior!r} and guide {guide!r}" in str(err) and "\n" not in str(err)
            refused.add((prior, guide))
            continue
        run.data = run.data.replace(train_x=run.data.train_x[:200], train_y=run.data.train_y[:200],
                                    test_x=run.data.test_x[:100], test_y=run.data.test_y[:100])
        metrics = train(run)
        assert math.isfinite(metrics[-1]["test_elbo"]), (variant, prior, guide)
    assert refused == REFUSED.get(variant, set())
