"""Every likelihood x guide, and every prior with the default guide, trains on the embedded digits."""
import math

import pyro
import pytest
import torch

from guides import GUIDES
from inference import RunConfig, SVITrainer, build_model_and_guide, prepare
from models import LIKELIHOODS, PRIORS
from models.likelihoods import BINARY

STEPS = 30


def _train(embedded, likelihood="bernoulli", guide="diagonal_normal", prior="normal", arch="mlp",
           upsample="transposed"):
    binarize = "dynamic" if LIKELIHOODS.get(likelihood).data == BINARY else "none"
    cfg = RunConfig.from_dict({
        "data": {"binarize": binarize},
        "model": {"latent_dim": 4, "hidden_dim": 64, "likelihood": likelihood, "prior": prior,
                  "prior_components": 3, "likelihood_scale": 0.3, "arch": arch, "channels": 8, "upsample": upsample},
        "guide": {"guide": guide, "hidden_dim": 64, "arch": arch, "channels": 8}})
    data = prepare(embedded, binarize)
    pyro.set_rng_seed(0)
    model, q = build_model_and_guide(cfg.model, cfg.guide, data.event_shape)
    trainer = SVITrainer(model, q, lr=3e-3)
    x = data.train_x[:1000]
    losses = []
    for _ in range(STEPS):
        idx = torch.randint(0, x.shape[0], (100,))
        batch = torch.bernoulli(x[idx]) if binarize == "dynamic" else x[idx]
        losses.append(trainer.step(batch, x.shape[0], idx))
    assert all(math.isfinite(v) for v in losses)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.05 * abs(first), (first, last)


@pytest.mark.parametrize("guide", GUIDES.names())
@pytest.mark.parametrize("likelihood", LIKELIHOODS.names())
def test_every_likelihood_with_every_guide_trains(embedded, likelihood, guide):
    _train(embedded, likelihood=likelihood, guide=guide)


@pytest.mark.parametrize("prior", PRIORS.names())
def test_every_prior_trains(embedded, prior):
    _train(embedded, prior=prior)


@pytest.mark.parametrize("upsample", ["transposed", "pixel_shuffle"])
def test_convolutional_vae_trains(embedded, upsample):
    _train(embedded, arch="conv", upsample=upsample)
