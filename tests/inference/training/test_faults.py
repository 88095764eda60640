"""Numerical faults stop training before NaN reaches the parameters, naming the step and the term."""

import pyro.optim
import pytest
import torch

from pyro_vae.inference import RunConfig, UserError, setup
from pyro_vae.inference.runs.folder import train_run
from pyro_vae.inference.training.optim import TorchUpdater
from pyro_vae.inference.training.step import NumericalFault
from pyro_vae.inference.training.trainer import SVITrainer


def _small(compile="off", **model):
    return RunConfig.from_dict({"model": {"latent_dim": 3, "hidden_dim": 32, **model}, "guide": {"hidden_dim": 32},
                                "train": {"epochs": 2, "compile": compile}})


def test_overflowing_decoder_is_reported_as_the_reconstruction_term():
    run = setup(_small())
    x = torch.bernoulli(run.data.train_x[:50])
    with torch.no_grad():
        run.model.decoder.net[-1].weight.mul_(1e38)  # logits overflow to +-inf: log p(x | z) = inf - inf
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    trainer = SVITrainer(run.model, run.guide)
    with pytest.raises(NumericalFault) as fault:
        trainer.step(x, num_data=4500, subsample=torch.arange(50))
    assert (fault.value.step, fault.value.term) == (1, "reconstruction")
    assert all(torch.equal(before[k], v) for k, v in run.model.state_dict().items())  # untouched


def test_a_nan_pixel_is_caught_where_it_reaches_a_distribution():
    run = setup(_small())
    x = torch.bernoulli(run.data.train_x[:50])
    x[3, 0, 10, 10] = float("nan")
    with pytest.raises(NumericalFault, match="distribution parameter appeared at SVI step 1"):
        SVITrainer(run.model, run.guide).step(x, num_data=4500, subsample=torch.arange(50))


def test_a_collapsed_prior_scale_is_reported_as_the_kl_term():
    run = setup(_small(prior="learned_normal"))
    with torch.no_grad():
        run.model.prior.raw_scale.fill_(-80.0)  # softplus(-80) ~ 1e-35: log p(z) overflows
    trainer = SVITrainer(run.model, run.guide)
    with pytest.raises(NumericalFault) as fault:
        trainer.step(torch.bernoulli(run.data.train_x[:50]), num_data=4500, subsample=torch.arange(50))
    assert fault.value.term == "KL"


@pytest.mark.parametrize("compile, term", [("off", "reconstruction"), ("trace", "gradient")])
def test_the_run_stops_with_one_line_naming_the_last_good_checkpoint(tmp_path, monkeypatch, compile, term):
    """The captured engine finds the fault at its next read (here the checkpoint at step 15): same report."""
    calls = {"n": 0}
    engine = SVITrainer
    real_step = engine.step

    def step_that_fails_at_12(self, x, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 12:
            with torch.no_grad():
                self.model.decoder.net[-1].weight.mul_(1e38)
        return real_step(self, x, *args, **kwargs)

    monkeypatch.setattr(engine, "step", step_that_fails_at_12)
    with pytest.raises(UserError) as err:
        train_run(_small(compile), tmp_path / "run", quiet=True, checkpoint_every=5)
    message = str(err.value)
    assert f"{term} appeared at SVI step 12" in message and "\n" not in message
    assert f"last good checkpoint: {tmp_path / 'run' / 'checkpoint.pt'} (after step 10)" in message
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert saved["steps"] == 10
    assert all(torch.isfinite(v).all() for v in saved["model"].values())


def test_gradient_clipping_bounds_every_parameters_gradient_norm():
    run = setup(_small())
    seen = []
    real = TorchUpdater.step

    def spy(self, params, bad):
        seen.append([p.grad.norm().item() for p in params if p.grad is not None])
        return real(self, params, bad)

    for engine in ("off", "trace"):
        run = setup(_small())
        trainer = SVITrainer(run.model, run.guide, lr=1e-3, clip_norm=0.5, engine=engine)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(TorchUpdater, "step", spy)
            trainer.step(torch.bernoulli(run.data.train_x[:50]), num_data=4500, subsample=torch.arange(50))
        norms = seen.pop()
        assert len(norms) == len(trainer.params) == 8 and float(trainer.grad_norm) > 0.5  # there was clipping to do
        assert max(norms) <= 0.5 * (1 + 1e-5) and max(norms) == pytest.approx(0.5, rel=1e-4)


def test_clipping_twice_is_refused():
    run = setup(_small())
    with pytest.raises(ValueError, match="clip the gradients once"):
        SVITrainer(run.model, run.guide, optim=pyro.optim.Adam({"lr": 1e-3}, {"clip_norm": 1.0}), clip_norm=0.5)
