"""The conditional VAE (seed 002): samples drawn for a label look like that label
to a classifier trained independently on the real training digits."""
import numpy as np
import pyro
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from pyro_vae.inference import RunConfig, UserError, setup, train
from pyro_vae.inference.cli.main import main
from pyro_vae.inference.report.images import prior_samples


@pytest.fixture(scope="module")
def cvae():
    cfg = RunConfig.from_dict({"model": {"conditional": True}, "train": {"epochs": 8}})
    run = setup(cfg)
    train(run)
    return run


def test_samples_for_a_label_are_classified_as_that_label(cvae, embedded):
    clf = LogisticRegression(max_iter=300).fit(embedded.train_x.flatten(1).numpy(), embedded.train_y.numpy())
    test_acc = clf.score(embedded.test_x.flatten(1).numpy(), embedded.test_y.numpy())
    assert test_acc > 0.8  # the judge itself is good on real digits
    hits = []
    for label in range(10):
        images = prior_samples(cvae.model, 50, seed=label, label=label)
        hits.append(clf.predict(images.flatten(1).numpy()) == label)
    accuracy = np.concatenate(hits).mean()
    # chance is 0.1; 0.3 is 15 binomial standard deviations above it for 500 samples
    # (measured: ~0.5 after 8 epochs; the samples are blurry means E[x | z, y])
    assert accuracy > 0.3, accuracy


def test_conditioning_changes_the_decoded_image(cvae):
    pyro.set_rng_seed(0)
    z = torch.zeros(1, cvae.config.model.latent_dim)
    a, b = (cvae.model.decode_mean(z, torch.tensor([k])) for k in (1, 7))
    assert (a - b).abs().mean() > 0.05


def test_label_flag_needs_a_conditional_run(tmp_path, capsys, cvae):
    from pyro_vae.inference.runs.folder import train_run

    train_run(RunConfig.from_dict({"train": {"epochs": 1}, "model": {"latent_dim": 2, "hidden_dim": 16},
                                   "guide": {"hidden_dim": 16}}), tmp_path / "plain", quiet=True)
    assert main(["sample", str(tmp_path / "plain"), "--label", "3"]) == 2
    assert "needs a conditional VAE" in capsys.readouterr().err


def test_vamp_prior_is_refused_for_the_conditional_vae():
    with pytest.raises(UserError, match="VampPrior"):
        RunConfig.from_dict({"model": {"conditional": True, "prior": "vamp"}})
