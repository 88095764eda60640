"""Numerical faults stop training before NaN reaches the parameters, naming the step and the term."""

import pytest
import torch

from inference import RunConfig, UserError, setup
from inference.runs import train_run
from inference.fast_trainer import CompiledSVITrainer
from inference.trainer import NumericalFault, SVITrainer


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
        trainer.step(x, 4500, torch.arange(50))
    assert (fault.value.step, fault.value.term) == (1, "reconstruction")
    assert all(torch.equal(before[k], v) for k, v in run.model.state_dict().items())  # untouched


def test_a_nan_pixel_is_caught_where_it_reaches_a_distribution():
    run = setup(_small())
    x = torch.bernoulli(run.data.train_x[:50])
    x[3, 0, 10, 10] = float("nan")
    with pytest.raises(NumericalFault, match="distribution parameter appeared at SVI step 1"):
        SVITrainer(run.model, run.guide).step(x, 4500, torch.arange(50))


def test_a_collapsed_prior_scale_is_reported_as_the_kl_term():
    run = setup(_small(prior="learned_normal"))
    with torch.no_grad():
        run.model.prior.raw_scale.fill_(-80.0)  # softplus(-80) ~ 1e-35: log p(z) overflows
    trainer = SVITrainer(run.model, run.guide)
    with pytest.raises(NumericalFault) as fault:
        trainer.step(torch.bernoulli(run.data.train_x[:50]), 4500, torch.arange(50))
    assert fault.value.term == "KL"


@pytest.mark.parametrize("engine, compile, term", [(SVITrainer, "off", "reconstruction"),
                                                    (CompiledSVITrainer, "trace", "loss or gradient")])
def test_the_run_stops_with_one_line_naming_the_last_good_checkpoint(tmp_path, monkeypatch, engine, compile, term):
    """The fast engine finds the fault at its next read (here the checkpoint at step 15): same report."""
    calls = {"n": 0}
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
    trainer = SVITrainer(run.model, run.guide, lr=1e-3, clip_norm=0.5)
    trainer.step(torch.bernoulli(run.data.train_x[:50]), 4500, torch.arange(50))
    params = list(run.model.parameters()) + list(run.guide.parameters())
    clips = [trainer.optim.grad_clip[p] for p in params]
    assert all(c is not None for c in clips)
    for p, clip in zip(params, clips):
        p.grad = torch.full_like(p, 3.0)  # norm 3 sqrt(n) > 0.5
        clip(p)
        assert p.grad.norm().item() == pytest.approx(0.5, rel=1e-4)
        p.grad = None
