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


def test_an_engines_note_reaches_stderr_even_when_quiet(capsys):
    """The contractive objective's torch.func Jacobian cannot be captured: training falls back to the interpreter
    and says so in one line, which --quiet (quiet=True, the library's default) does not silence."""
    from pyro_vae.inference import RunConfig, setup, train

    run = setup(RunConfig.from_dict({"model": {"latent_dim": 2, "hidden_dim": 16}, "guide": {"hidden_dim": 16},
                                     "objective": {"name": "contractive"},
                                     "train": {"epochs": 1, "compile": "trace"}}))
    train(run, quiet=True)
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and notes[0].startswith("note: ContractiveELBO could not be captured by trace (") \
        and notes[0].endswith("training with Pyro's interpreter (--compile off) instead"), notes
    assert run.config.train.compile == "trace"  # what was asked; the note says what ran instead
