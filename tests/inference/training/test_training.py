"""SVI on the embedded MNIST digits: it learns, it is reproducible, and a run reloads."""
import pytest

from pyro_vae.inference import RunConfig, setup, train


def _config(epochs, seed=0):
    cfg = RunConfig()
    cfg.train.epochs, cfg.train.seed = epochs, seed
    return cfg


def test_svi_improves_test_elbo_and_is_reproducible():
    run = setup(_config(epochs=8))  # 8 x 36 = 288 SVI steps
    before = run.evaluate(seed=0).elbo
    metrics = train(run)
    after = metrics[-1]["test_elbo"]
    assert metrics[-1]["steps"] == 288
    # An untrained decoder scores ~ -549 nats (784 pixels at ~0.7 nats each);
    # a trained one explains most pixels.
    assert before < -450
    assert after > before + 300
    assert after > -175
    assert metrics[-1]["test_elbo"] == pytest.approx(
        -(metrics[-1]["test_distortion"] + metrics[-1]["test_rate"]))

    again = train(setup(_config(epochs=8)))
    for a, b in zip(metrics, again):
        for key in ("train_objective", "test_elbo", "test_distortion", "test_rate"):
            assert a[key] == b[key]
