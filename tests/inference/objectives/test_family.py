"""The autoencoder family: each member's defining property against an independent figure."""

import pyro
import pytest
import torch
from sklearn.datasets import load_digits

from pyro_vae.guides import DeltaGuide
from pyro_vae.inference import RunConfig, UserError
from pyro_vae.inference.evaluate.autoencoders import code_sparsity, mean_jacobian_norm, reconstruction_error
from pyro_vae.inference.config.sections import FAMILIES, apply_family
from pyro_vae.inference.objectives import trace_elbo
from pyro_vae.inference.runs.folder import train_run
from pyro_vae.inference.runs.run import load_run
from pyro_vae.inference.training.trainer import SVITrainer
from pyro_vae.models import FixedScaleGaussianLikelihood, MLPDecoder, MLPEncoder, VAEModel
from pyro_vae.models.linear_gaussian import largest_principal_angle
from pyro_vae.models.priors import FlatPrior


def test_linear_autoencoder_spans_the_pca_subspace():
    """Seed 000: a linear encoder and decoder with the L2 loss learn the top-k principal subspace."""
    x = torch.tensor(load_digits().data, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    event, k = x.shape[1:], 5
    pyro.set_rng_seed(0)
    model = VAEModel(FlatPrior(k), MLPDecoder(k, event, num_hidden_layers=0), FixedScaleGaussianLikelihood(event))
    guide = DeltaGuide(MLPEncoder(event, k, num_hidden_layers=0), k)
    trainer = SVITrainer(model, guide, trace_elbo(), lr=0.03, engine="trace")
    idx = torch.arange(x.shape[0])
    for _ in range(1500):
        trainer.step(x, num_data=x.shape[0], subsample=idx)
    centred = x.flatten(1).double() - x.flatten(1).double().mean(0)
    pca = torch.linalg.svd(centred, full_matrices=False)[2][:k].T  # the top-k right singular vectors
    assert largest_principal_angle(model.decoder.net[0].weight.detach().double(), pca) < 0.05


def _train(tmp_path, family, **extra):
    raw = apply_family({"model": {"latent_dim": 8, "hidden_dim": 96}, "guide": {"hidden_dim": 96},
                        "train": {"epochs": 6}}, family)
    for section, values in extra.items():
        raw.setdefault(section, {}).update(values)
    train_run(RunConfig.from_dict(raw), tmp_path / family, quiet=True)
    return load_run(tmp_path / family)


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("plain"), "plain")


def test_denoising_reconstructs_clean_images_from_masked_ones_better_than_plain(plain, tmp_path):
    denoising = _train(tmp_path, "denoising", guide={"corruption_level": 0.8})
    x = plain.data.test_x
    masked = x * (torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) >= 0.8)  # 80 % of pixels off
    errors = {name: reconstruction_error(run.model, run.guide, masked, x) for name, run in
              (("plain", plain), ("denoising", denoising))}
    assert errors["denoising"] < 0.9 * errors["plain"]


def test_sparse_codes_are_sparser_than_plain(plain, tmp_path):
    sparse = _train(tmp_path, "sparse")
    x = plain.data.test_x
    assert code_sparsity(sparse.guide, x) > 1.5 * code_sparsity(plain.guide, x)


def test_contractive_encoder_has_a_smaller_jacobian_than_plain(plain, tmp_path):
    contractive = _train(tmp_path, "contractive", objective={"contractive_weight": 1.0})
    x = plain.data.test_x[:100]
    assert mean_jacobian_norm(contractive.guide, x) < 0.5 * mean_jacobian_norm(plain.guide, x)


def test_every_family_is_a_valid_config_and_unknown_ones_are_refused():
    for family in FAMILIES:
        RunConfig.from_dict(apply_family({}, family)).validate()
    with pytest.raises(UserError, match="unknown family 'bogus'"):
        apply_family({}, "bogus")


def test_adversarial_codes_match_the_prior_better_than_plain_and_sampling_works(plain, tmp_path):
    from pyro_vae.inference.evaluate.autoencoders import codes, mmd_squared
    from pyro_vae.inference.report.images import prior_samples

    aae = _train(tmp_path, "adversarial")
    x = plain.data.test_x
    prior = torch.randn(x.shape[0], 8, generator=torch.Generator().manual_seed(0))
    fresh = torch.randn(x.shape[0], 8, generator=torch.Generator().manual_seed(1))
    mmd = {name: mmd_squared(codes(run.guide, x), prior) for name, run in (("aae", aae), ("plain", plain))}
    noise = abs(mmd_squared(fresh, prior))  # the statistic between two prior samples: its own noise level
    assert noise < 0.02 and mmd["aae"] < mmd["plain"] - 5 * max(noise, 0.01)
    assert prior_samples(aae.model, 16).shape == (16, 1, 28, 28)


def test_adversarial_settings_reach_the_trainer_and_bad_ones_are_refused():
    from pyro_vae.inference.objectives import AdversarialObjective
    from pyro_vae.inference.objectives import build_objective

    raw = apply_family({"objective": {"adversarial_lr": 2e-4, "discriminator_steps": 3}}, "adversarial")
    objective = build_objective(RunConfig.from_dict(raw).objective)
    assert isinstance(objective, AdversarialObjective)
    assert (objective.adversarial_lr, objective.discriminator_steps) == (2e-4, 3)
    with pytest.raises(UserError, match="objective.discriminator_steps must be positive, got 0"):
        RunConfig.from_dict(apply_family({"objective": {"discriminator_steps": 0}}, "adversarial")).validate()


def test_an_ex_post_mixture_gives_the_plain_autoencoder_samples_where_its_codes_are(plain, tmp_path, capsys):
    """Ghosh et al. 2020: a density fitted to the training codes (the plain AE has no prior to sample) describes
    held-out codes better than one Gaussian, and its draws are as close to them as training codes are."""
    from PIL import Image

    from pyro_vae.inference.evaluate.autoencoders import codes, mmd_squared
    from pyro_vae.inference.cli.main import main
    from pyro_vae.inference.experiments.ex_post import fit_gaussian_mixture, training_codes

    train, test = training_codes(plain), codes(plain.guide, plain.data.test_x).double()
    mixture, one = fit_gaussian_mixture(train, 10), fit_gaussian_mixture(train, 1)
    assert float(mixture.log_prob(test).mean()) > float(one.log_prob(test).mean()) + 1.0
    subset = train[torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(0))[:1000]]
    mmd = {name: mmd_squared(draws, test) for name, draws in
           (("mixture", mixture.sample(1000)), ("one", one.sample(1000)), ("train", subset),
            ("normal", torch.randn(1000, 8, generator=torch.Generator().manual_seed(0))))}
    assert mmd["mixture"] < mmd["one"] and mmd["mixture"] < mmd["train"] + 0.005 < 0.05 * mmd["normal"], mmd
    assert main(["sample", str(plain.path), "--ex-post", "5", "-n", "16", "--out", str(tmp_path / "s.png")]) == 0
    assert "mixture (K = 5)" in capsys.readouterr().out
    assert Image.open(tmp_path / "s.png").size == (122, 122)  # 4 x 4 grid of 28 px + 2 px padding
