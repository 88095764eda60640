"""The captured engines keep the objectives' semantics: checked against Pyro's own machinery on the same draws
(the whole matrix of components is in tests/inference/training/test_engine_matrix.py)."""

import random

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyro_vae.inference import RunConfig, UserError
from pyro_vae.inference.runs.build import build_model_and_guide
from pyro_vae.inference.objectives import build_objective
from pyro_vae.inference.runs.folder import resume_run, train_run
from pyro_vae.inference.training.capture import CaptureError, CapturedLoss
from pyro_vae.inference.training.loss import ProgramLoss
from pyro_vae.inference.training.step import NumericalFault
from pyro_vae.inference.training.trainer import SVITrainer, make_trainer

from tests.programs import REGISTRY_CASES

EVENT = torch.Size([1, 28, 28])


def _pair(case, seed=0):
    sections = REGISTRY_CASES[case]  # the differential matrix's components, on 28 x 28 images
    raw = {"model": {"latent_dim": 4, "hidden_dim": 32, **sections.get("model", {})},
           "guide": {"hidden_dim": 32, **sections.get("guide", {})},
           "objective": sections.get("objective", {}), "data": sections.get("data", {})}
    cfg = RunConfig.from_dict(raw)
    pyro.set_rng_seed(seed)
    model, guide = build_model_and_guide(cfg.model, cfg.guide, EVENT)
    x = torch.rand(16, 1, 28, 28)
    if cfg.data.binarize != "none":
        x = x.bernoulli()
    y = torch.randint(0, 10, (16,)) if cfg.model.conditional else None
    return model, guide, build_objective(cfg.objective), x, y


def _pyro_loss_and_grads(model, guide, objective, x, y, params, num_data=500):
    kwargs = {"num_data": num_data, "subsample": torch.arange(x.shape[0]), **({"y": y} if y is not None else {})}
    pyro.clear_param_store()
    loss = objective.differentiable_loss(model, guide, x, **kwargs)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return loss.detach(), grads


def _captured(model, guide, objective, x, num_data=500, y=None):
    captured = CapturedLoss(ProgramLoss(model, guide, objective), "trace")
    captured.prepare(x, num_data=num_data, subsample=torch.arange(x.shape[0]), y=y)
    return captured


def test_the_beta_weight_follows_the_schedule_after_capture():
    model, guide, objective, x, y = _pair("beta-warm-up")
    captured = _captured(model, guide, objective, x)
    values = []
    for step in (0, 5, 10):  # beta_t = 4 * min(1, (t + 1) / 10)
        captured.loss.schedule_weight = objective.schedule_weight(step)
        torch.manual_seed(7)
        values.append(captured(x, num_data=500, subsample=torch.arange(16)).item())
        torch.manual_seed(7)
        assert values[-1] == pytest.approx(_pyro_loss_and_grads(model, guide, objective.at_step(step), x, y,
                                                                captured.params)[0].item(), rel=1e-5)
    assert values[0] < values[1] < values[2] and len(captured.graphs) == 1


def test_the_trainer_passes_the_weight_of_its_step_count():
    """One place: step t minimizes the loss at ``schedule_weight(t)`` (also after a resume sets the count)."""
    model, guide, objective, x, _ = _pair("beta-warm-up")
    trainer = SVITrainer(model, guide, objective, engine="trace")
    seen = []
    for _ in range(3):
        trainer.step(x, num_data=500, subsample=torch.arange(16))
        seen.append(trainer.loss.schedule_weight)
    trainer.steps = 8
    trainer.step(x, num_data=500, subsample=torch.arange(16))
    assert seen == [objective.schedule_weight(t) for t in range(3)] == [0.4, 0.8, 1.2]
    assert trainer.loss.schedule_weight == objective.schedule_weight(8) == 3.6 and trainer.steps == 9


def test_training_curves_match_pyros_svi_over_300_steps(embedded):
    """Same init, same draws: the per-step losses agree to float rounding at first and in mean at the end."""
    x_all = torch.bernoulli(embedded.train_x[:2000], generator=torch.Generator().manual_seed(0))
    curves = {}
    for engine in ("off", "trace"):
        model, guide, objective, _, _ = _pair("elbo")
        trainer = SVITrainer(model, guide, objective, lr=1e-3, engine=engine)
        torch.manual_seed(1)
        losses = []
        for step in range(300):
            idx = torch.randint(0, 2000, (64,))
            losses.append(float(trainer.step(x_all[idx], num_data=2000, subsample=idx)))
        assert trainer.engine == engine and trainer.notice is None
        curves[engine] = torch.tensor(losses) / 2000
    pyro_curve, fast_curve = curves["off"], curves["trace"]
    assert torch.allclose(fast_curve[:20], pyro_curve[:20], rtol=1e-4)
    assert fast_curve[-50:].mean().item() == pytest.approx(pyro_curve[-50:].mean().item(), rel=0.01)
    assert fast_curve[-50:].mean() < fast_curve[:20].mean() - 50  # it learned


def test_one_step_with_clipping_moves_the_parameters_as_pyros_clip_args_do():
    after = {}
    for engine in ("off", "trace"):
        model, guide, objective, x, _ = _pair("elbo")
        trainer = SVITrainer(model, guide, objective, lr=0.1, clip_norm=0.05, engine=engine)
        torch.manual_seed(3)
        trainer.step(x, num_data=500, subsample=torch.arange(16))
        after[engine] = [p.detach().clone() for p in list(model.parameters()) + list(guide.parameters())]
    model, guide, objective, x, _ = _pair("elbo")  # Pyro's SVI with clip_args: the same rule
    pyro.clear_param_store()
    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 0.1}, {"clip_norm": 0.05}), objective)
    torch.manual_seed(3)
    svi.step(x, num_data=500, subsample=torch.arange(16))
    after["pyro"] = [p.detach().clone() for p in list(model.parameters()) + list(guide.parameters())]
    for engine in ("trace", "pyro"):
        for p, q in zip(after["off"], after[engine]):
            assert torch.allclose(p, q, atol=1e-6)


def test_a_non_finite_step_is_skipped_on_the_device_and_reported_at_the_next_check():
    model, guide, objective, x, _ = _pair("elbo")
    trainer = SVITrainer(model, guide, objective, engine="trace")
    trainer.step(x, num_data=500, subsample=torch.arange(16))
    trainer.check()
    with torch.no_grad():
        model.decoder.net[-1].weight.mul_(1e38)  # logits overflow: the loss is not finite
    before = [p.detach().clone() for p in trainer.params]
    adam = trainer.svi_step.updater.optim
    state = {k: v.clone() for k, v in adam.state_dict()["state"][0].items()}
    trainer.step(x, num_data=500, subsample=torch.arange(16))
    assert all(torch.equal(b, p) for b, p in zip(before, trainer.params))  # no parameter moved
    assert torch.equal(adam.state_dict()["state"][0]["exp_avg"], state["exp_avg"])  # nor Adam's moments
    with pytest.raises(NumericalFault, match="non-finite gradient appeared at SVI step 2"):
        trainer.check()


class _Model(torch.nn.Module):
    """A tiny program the tracer cannot follow faithfully: a branch on the data, or Python-side randomness."""

    def __init__(self, kind):
        super().__init__()
        self.kind, self.w = kind, torch.nn.Parameter(torch.ones(()))

    def forward(self, x, num_data=None, subsample=None):
        with pyro.plate("data", num_data, subsample=subsample):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            shift = random.random() if self.kind == "random" else 0.0  # frozen into the graph
            if self.kind == "branch" and x.sum() > 0:  # a host read of the data
                shift = 2.0
            pyro.sample("x", dist.Normal(self.w * z + shift, 1.0), obs=x)


class _Guide(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, x, num_data=None, subsample=None):
        with pyro.plate("data", num_data, subsample=subsample):
            pyro.sample("z", dist.Normal(x * self.w, 1.0))


@pytest.mark.parametrize("kind", ["branch", "random"])
def test_programs_that_cannot_be_captured_faithfully_raise_capture_error(kind):
    captured = CapturedLoss(ProgramLoss(_Model(kind), _Guide(), build_objective(RunConfig().objective)), "trace")
    with pytest.raises(CaptureError) as err:
        captured.prepare(torch.randn(8), num_data=100, subsample=torch.arange(8))
    assert "\n" not in str(err.value)
    if kind == "random":
        assert "on the same draws" in str(err.value)  # caught by the check against the program itself
    trainer, notice = make_trainer(_Model(kind), _Guide(), build_objective(RunConfig().objective), compile="trace",
                                   examples=[((torch.randn(8),), {"num_data": 100, "subsample": torch.arange(8)})])
    assert trainer.engine == "off" and notice.startswith("note: TraceELBO could not be captured by trace (")


EXAMPLE = {"num_data": 500, "subsample": torch.arange(16)}


def test_make_trainer_falls_back_to_the_interpreter_and_says_so(monkeypatch):
    model, guide, objective, x, _ = _pair("elbo")

    def refuse(self, *args, **kwargs):
        raise CaptureError("RuntimeError: nope")

    monkeypatch.setattr(CapturedLoss, "prepare", refuse)
    trainer, notice = make_trainer(model, guide, objective, compile="trace", examples=[((x,), EXAMPLE)])
    assert trainer.engine == "off"
    assert notice == ("note: TraceELBO could not be captured by trace (RuntimeError: nope); training with Pyro's "
                      "interpreter (--compile off) instead")


def test_an_uncapturable_batch_shape_falls_back_at_step_time_with_a_warning(monkeypatch):
    model, guide, objective, x, _ = _pair("elbo")
    trainer = SVITrainer(model, guide, objective, engine="trace")
    trainer.step(x, **EXAMPLE)
    monkeypatch.setattr(CapturedLoss, "_capture", lambda self, *a: (_ for _ in ()).throw(CaptureError("X: no")))
    with pytest.warns(UserWarning, match="could not be captured"):
        trainer.step(x[:8], num_data=500, subsample=torch.arange(8))
    assert trainer.engine == "off" and trainer.steps == 2


def test_auto_picks_inductor_only_for_long_runs(monkeypatch):
    chosen = []
    monkeypatch.setattr(CapturedLoss, "prepare", lambda self, *a, **k: chosen.append(self.backend))
    model, guide, objective, x, _ = _pair("elbo")
    for steps in (100, 100_000):
        make_trainer(model, guide, objective, compile="auto", planned_steps=steps, examples=[((x,), EXAMPLE)])
    assert chosen == ["trace", "inductor"]


def test_a_run_resumes_on_another_engine_with_the_same_parameters_and_optimizer(tmp_path):
    """Every engine trains the same parameters with the same optimizer, so a checkpoint of one resumes on another."""
    cfg = RunConfig.from_dict({"model": {"latent_dim": 3, "hidden_dim": 16}, "guide": {"hidden_dim": 16},
                               "train": {"epochs": 1, "compile": "trace"}})
    train_run(cfg, tmp_path / "run", quiet=True)
    config_path = tmp_path / "run" / "config.json"
    raw = config_path.read_text().replace('"compile": "trace"', '"compile": "off"').replace('"epochs": 1', '"epochs": 2')
    config_path.write_text(raw)
    metrics = resume_run(tmp_path / "run", quiet=True)
    assert [m["epoch"] for m in metrics] == [1, 2] and metrics[1]["steps"] == 2 * metrics[0]["steps"]


def test_an_optimizer_state_of_an_earlier_version_is_refused_in_one_line(tmp_path):
    cfg = RunConfig.from_dict({"model": {"latent_dim": 3, "hidden_dim": 16}, "guide": {"hidden_dim": 16},
                               "train": {"epochs": 1}})
    train_run(cfg, tmp_path / "run", quiet=True)
    path = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    state["optimizer"] = {"engine": "captured", "adam": state["optimizer"]["state"]}  # the format before 2026-11
    state.pop("digest")  # as a file of that release: no digest (it would find the edit)
    torch.save(state, path)
    before = path.read_bytes()
    raw = (tmp_path / "run" / "config.json").read_text().replace('"epochs": 1', '"epochs": 2')
    (tmp_path / "run" / "config.json").write_text(raw)
    with pytest.raises(UserError, match="earlier version of the toolkit; its weights load"):
        resume_run(tmp_path / "run", quiet=True)
    assert path.read_bytes() == before


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_fast_engine_on_cuda_matches_pyro_on_the_same_draws():
    model, guide, objective, x, y = _pair("elbo")
    model, guide, x = model.cuda(), guide.cuda(), x.cuda()
    idx = torch.arange(16, device="cuda")
    captured = CapturedLoss(ProgramLoss(model, guide, objective), "trace")
    captured.prepare(x, num_data=500, subsample=idx)
    torch.manual_seed(9)
    pyro.clear_param_store()
    expected = objective.differentiable_loss(model, guide, x, num_data=500, subsample=idx)
    torch.manual_seed(9)
    got = captured(x, num_data=500, subsample=idx)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    grads = torch.autograd.grad(got, captured.params, allow_unused=True)
    torch.manual_seed(9)
    wanted = torch.autograd.grad(objective.differentiable_loss(model, guide, x, num_data=500, subsample=idx),
                                 captured.params, allow_unused=True)
    assert all((g - e).norm() <= 1e-4 * e.norm() + 1e-5 for g, e in zip(grads, wanted) if e is not None)


class _DiscreteModel(torch.nn.Module):
    """c_n ~ Bernoulli(sigmoid(a)), x_n ~ N(2 c_n, 1): Trace_ELBO needs its score-function surrogate."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(0.3))

    def forward(self, x, num_data=None, subsample=None):
        with pyro.plate("data", num_data, subsample=subsample):
            c = pyro.sample("c", dist.Bernoulli(logits=self.a.expand(x.shape)))
            pyro.sample("x", dist.Normal(2.0 * c, 1.0), obs=x)


class _DiscreteGuide(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.v = torch.nn.Parameter(torch.tensor(0.5))

    def forward(self, x, num_data=None, subsample=None):
        with pyro.plate("data", num_data, subsample=subsample):
            pyro.sample("c", dist.Bernoulli(logits=self.v * x))


def test_score_function_gradients_survive_capture():
    """The stop-gradients of Pyro's surrogate loss are kept (the graph is recorded above autograd)."""
    model, guide, objective = _DiscreteModel(), _DiscreteGuide(), build_objective(RunConfig().objective)
    x = torch.randn(32) + 1.0
    captured = _captured(model, guide, objective, x, num_data=100)
    torch.manual_seed(11)
    expected, expected_grads = _pyro_loss_and_grads(model, guide, objective, x, None, captured.params, 100)
    torch.manual_seed(11)
    got = captured(x, num_data=100, subsample=torch.arange(32))
    grads = torch.autograd.grad(got, captured.params)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    assert all(torch.allclose(g, e, rtol=1e-4) for g, e in zip(grads, expected_grads))
    # the score-function part matters here: the pathwise-only gradient of the guide is zero (c is discrete)
    assert expected_grads[1].abs() > 1e-3
