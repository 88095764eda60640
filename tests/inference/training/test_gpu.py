"""The step recorded as a CUDA graph (``inference/training/graphs.py``) against the eager step on the same
seed: the same losses, the same trained parameters, the same skipped step. Needs a CUDA device."""
from __future__ import annotations

import pytest
import torch

from pyro_vae.inference import RunConfig
from pyro_vae.inference.objectives import build_objective
from pyro_vae.inference.runs.build import build_model_and_guide
from pyro_vae.inference.training.loss import new_param_state
from pyro_vae.inference.training.step import NumericalFault
from pyro_vae.inference.training.trainer import SVITrainer

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def _trainer(cuda_graph: bool, objective: dict, clip_norm=None, optim=None):
    cfg = RunConfig.from_dict({"model": {"latent_dim": 4, "hidden_dim": 32}, "guide": {"hidden_dim": 32},
                               "objective": objective})
    torch.manual_seed(0)
    model, guide = (m.cuda() for m in build_model_and_guide(cfg.model, cfg.guide, (1, 28, 28)))
    return SVITrainer(model, guide, build_objective(cfg.objective), optim, engine="trace", clip_norm=clip_norm,
                      param_state=new_param_state(), cuda_graph=cuda_graph)


def _batches(n=200, batch=64, epochs=3):
    """Full batches and a partial last one, each shape seen again after its graph is recorded."""
    torch.manual_seed(1)
    x = torch.rand(n, 1, 28, 28, device="cuda").bernoulli()
    for _ in range(epochs):
        perm = torch.randperm(n, device="cuda")
        for start in range(0, n, batch):
            idx = perm[start:start + batch]
            yield x[idx], {"num_data": n, "subsample": idx}


def _run(trainer, batches):
    torch.manual_seed(5)
    losses = [trainer.step(x, **kw) for x, kw in batches]
    trainer.check()
    return torch.stack(losses), [p.detach().clone() for p in trainer.params]


@pytest.mark.parametrize("objective,clip_norm", [({"name": "elbo"}, None),
                                                 ({"name": "beta", "beta": 2.0, "kl_schedule": "linear",
                                                   "warmup_steps": 7}, 5.0)])
def test_recorded_steps_train_as_the_eager_steps(objective, clip_norm):
    batches = list(_batches())
    graphed = _trainer(True, objective, clip_norm)
    eager = _trainer(False, objective, clip_norm)
    got_losses, got = _run(graphed, batches)
    want_losses, want = _run(eager, batches)
    assert graphed.engine == "trace+cuda-graph" and eager.engine == "trace"
    assert len(graphed.graphs.graphs) == 2  # the full batch and the partial one
    assert graphed.steps == eager.steps == len(batches)
    torch.testing.assert_close(got_losses, want_losses, rtol=1e-5, atol=1e-3)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)
    assert float(graphed.grad_norm) == pytest.approx(float(eager.grad_norm), rel=1e-4)


def test_a_non_finite_step_is_skipped_on_the_device_and_reported_with_its_number():
    batches = list(_batches(epochs=2))
    trainer = _trainer(True, {"name": "elbo"})
    torch.manual_seed(5)
    for x, kw in batches[:6]:  # every shape recorded by now
        trainer.step(x, **kw)
    trainer.check()
    before = [p.detach().clone() for p in trainer.params]
    x, kw = batches[6]
    trainer.step(torch.full_like(x, float("nan")), **kw)
    after = [p.detach().clone() for p in trainer.params]
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    trainer.step(*batches[7][:1], **batches[7][1])
    with pytest.raises(NumericalFault, match="at SVI step 7"):
        trainer.check()
    trainer.check()  # reported once


def test_a_pyro_optimizer_steps_eagerly_with_a_note():
    import pyro.optim

    trainer = _trainer(True, {"name": "elbo"}, optim=pyro.optim.Adam({"lr": 1e-3}))
    x, kw = next(_batches())
    with pytest.warns(UserWarning, match="not recorded as a CUDA graph .*fused, capturable Adam"):
        trainer.step(x, **kw)
    assert trainer.engine == "trace"


def test_images_on_cuda_0_are_indexed_in_place_for_a_run_on_cuda():
    """``vae train --device cuda`` puts the images on ``cuda:0``: no streaming through host buffers."""
    from pyro_vae.inference.data.datasets import MinibatchStream

    x = torch.rand(300, 1, 8, 8, device="cuda")
    stream = MinibatchStream(x, 128, device=torch.device("cuda"))
    assert not stream.streaming
    for idx, batch in stream:
        assert torch.equal(batch, x[idx])


def test_a_step_that_cannot_be_recorded_runs_eagerly_with_a_note():
    """A host read inside the step aborts the recording: the same step runs eagerly, with gradients of its own
    (none left over from the aborted recording), and training goes on eagerly. (A failed recording leaves
    torch's CUDA generator on another stream of draws, so the losses are not compared with the eager engine's.)"""
    batches = list(_batches(epochs=1))
    trainer = _trainer(True, {"name": "elbo"})
    torch.manual_seed(5)
    x, kw = batches[0]
    trainer.step(x, **kw)
    step = trainer.svi_step.updater.step
    trainer.svi_step.updater.step = lambda params, bad: (float(bad), step(params, bad))  # a host read
    with pytest.warns(UserWarning, match="could not be recorded as a CUDA graph"):
        losses = torch.stack([trainer.step(x, **kw) for x, kw in batches[1:]])
    trainer.check()
    assert trainer.engine == "trace" and trainer.steps == len(batches) and trainer.graphs is None
    assert torch.isfinite(losses).all() and all(p.grad is None and torch.isfinite(p).all() for p in trainer.params)


def _annealed_cuda_pair():
    """A user's program with a KL-annealing factor as a step argument (declared static), on the GPU."""
    import pyro
    import pyro.distributions as dist
    from pyro import poutine

    torch.manual_seed(0)
    decoder, encoder = torch.nn.Linear(2, 6).cuda(), torch.nn.Linear(6, 4).cuda()

    def model(x, idx, factor):
        pyro.module("decoder", decoder)
        with pyro.plate("data", 64, subsample=idx):
            with poutine.scale(scale=factor):
                z = pyro.sample("z", dist.Normal(torch.zeros(2, device="cuda"), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(decoder(z), 0.5).to_event(1), obs=x)

    def guide(x, idx, factor):
        pyro.module("encoder", encoder)
        loc, raw = encoder(x).split(2, -1)
        with pyro.plate("data", 64, subsample=idx), poutine.scale(scale=factor):
            pyro.sample("z", dist.Normal(loc, torch.nn.functional.softplus(raw) + 1e-3).to_event(1))
    model.static_structure = guide.static_structure = True
    return model, guide


@pytest.mark.parametrize("where", ["cuda", "cpu"])
def test_a_tensor_step_argument_reaches_the_recorded_step_or_the_step_says_why_not(where):
    """A factor on the batch's device goes through the graph's input buffer (the same losses as Pyro's interpreter);
    a CPU scalar would be frozen at recording, so those steps are not recorded, after a note."""
    import pyro
    from pyro.infer import Trace_ELBO

    losses = {}
    for engine in ("off", "trace"):
        pyro.clear_param_store()
        model, guide = _annealed_cuda_pair()
        trainer = SVITrainer(model, guide, Trace_ELBO(), engine=engine, param_state=new_param_state())
        torch.manual_seed(3)
        x = torch.randn(16, 6, device="cuda")
        idx = torch.arange(16, device="cuda")
        losses[engine] = [float(trainer.step(x, idx, torch.tensor(0.1 + 0.05 * i, device=where))) for i in range(12)]
    assert losses["trace"] == pytest.approx(losses["off"], rel=1e-5)
    assert ("cuda-graph" in trainer.engine) == (where == "cuda")
    if where == "cpu":
        assert "not on the batch's device" in trainer.notice
