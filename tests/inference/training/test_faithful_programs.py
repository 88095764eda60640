"""Users' own Pyro programs train on every engine exactly as ``pyro.infer.SVI`` trains them on the same seed: the
same loss at every step, the same trained parameters (by name), the same final values, the same random stream
and, where the program's Python runs each step, the same number of calls. Programs: ``tests/user_programs.py``
(step arguments by position and keyword, closure state, a late ``pyro.param``, Pyro's lazy autoguides,
``JitTrace_ELBO``, ``TraceTailAdaptive_ELBO``)."""
import contextlib
import math

import pyro
import pyro.optim
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO

from pyro_vae.inference.programs import known_static
from pyro_vae.inference.training.trainer import SVITrainer

from tests.user_programs import PROGRAMS, STEPS, _annealed_pair, _data

ENGINES = ["off", "trace", pytest.param("inductor", marks=pytest.mark.slow)]
LR = 0.01


class Counted:
    """A program wrapper that counts its calls (Python that runs each time the program runs)."""

    def __init__(self, program):
        self.program, self.calls = program, 0
        self.static_structure = known_static(program)  # what the wrapped program is

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.program(*args, **kwargs)


def _train(name, runner, engine="off"):
    model, guide, objective, steps = PROGRAMS[name]()
    model, guide = Counted(model), Counted(guide)
    pyro.clear_param_store()
    torch.manual_seed(5)
    if runner == "svi":
        svi = SVI(model, guide, pyro.optim.Adam({"lr": LR}), objective)
        step = svi.step
    else:
        trainer = SVITrainer(model, guide, objective, lr=LR, engine=engine)
        step = trainer.step
    losses = []
    for i, (args, kwargs) in enumerate(steps):
        steps.between(i)
        losses.append(float(step(*args, **kwargs)))
    store = pyro.get_param_store()
    if runner == "svi":
        trained = {store.param_name(p): p.detach().clone() for p in svi.optim.optim_objs}
        return losses, trained, (model.calls, guide.calls), float(torch.rand(())), None
    trainer.check()
    trained = {name: p.detach().clone() for name, p in zip(trainer.param_names, trainer.params)}
    return losses, trained, (model.calls, guide.calls), float(torch.rand(())), trainer


@pytest.mark.parametrize("name", list(PROGRAMS))
@pytest.mark.parametrize("engine", ENGINES)
def test_twenty_steps_of_a_users_program_equal_pyros_svi(name, engine):
    losses, trained, calls, next_draw, _ = _train(name, "svi")
    ours, ours_trained, our_calls, our_next_draw, trainer = _train(name, "toolkit", engine)
    assert len(losses) == STEPS
    for step, (a, b) in enumerate(zip(losses, ours)):
        assert (a == b) if math.isinf(a) else b == pytest.approx(a, rel=1e-5), step
    assert set(ours_trained) == set(trained)  # the same parameters, by their names in the param store
    for key, value in trained.items():
        assert (ours_trained[key] - value).norm() <= 1e-5 * max(1.0, value.norm()), key
    assert our_next_draw == next_draw  # one random stream: the same draws, lazy initialization included
    declared = getattr(PROGRAMS[name]()[1], "static_structure", False) or name.startswith(("auto", "tail", "jit"))
    if engine == "off" or not declared:
        assert our_calls == calls  # the program's Python ran as often as under SVI
    if declared or engine == "off":
        if name == "jit-trace-elbo" and engine != "off":  # its own torch.jit cannot be captured: the note says so
            assert trainer.engine == "off" and "JitTrace_ELBO could not be captured" in trainer.notice
        else:
            assert trainer.engine == engine
    else:
        assert trainer.engine == "off" and trainer.notice.startswith("note: ") and "\n" not in trainer.notice
        assert "static_structure = True" in trainer.notice


@pytest.mark.parametrize("engine", ["off", "trace"])
def test_an_argument_a_graph_cannot_take_runs_on_the_interpreter_after_a_note(engine):
    def programs():
        model, guide = _annealed_pair(static=True)

        def dict_model(x, idx, options):
            return model(x, idx, options["factor"])

        def dict_guide(x, idx, options):
            return guide(x, idx, options["factor"])
        dict_model.static_structure = dict_guide.static_structure = True
        return dict_model, dict_guide
    steps = [(_data(i) + ({"factor": 0.1 + 0.04 * i},), {}) for i in range(5)]
    results = []
    for runner in ("svi", "toolkit"):
        dict_model, dict_guide = programs()
        pyro.clear_param_store()
        torch.manual_seed(1)
        if runner == "svi":
            step = SVI(dict_model, dict_guide, pyro.optim.Adam({"lr": LR}), Trace_ELBO()).step
        else:
            trainer = SVITrainer(dict_model, dict_guide, Trace_ELBO(), lr=LR, engine=engine)
            step = trainer.step
        with pytest.warns(UserWarning) if runner == "toolkit" and engine != "off" else contextlib.nullcontext():
            results.append([float(step(*args, **kwargs)) for args, kwargs in steps])
    assert results[1] == pytest.approx(results[0], rel=1e-6)
    if engine != "off":
        assert trainer.engine == "off" and "step argument #3 (positional) is a dict" in trainer.notice


def test_positional_and_keyword_step_arguments_mean_the_same_on_a_captured_engine():
    model, guide = _annealed_pair(static=True)
    (x, idx), factor = _data(0), 0.3
    values = []
    for call in (lambda t: t.step(x, idx, factor), lambda t: t.step(x, idx, annealing_factor=factor),
                 lambda t: t.step(x, idx=idx, annealing_factor=torch.tensor(factor))):
        pyro.clear_param_store()
        model, guide = _annealed_pair(static=True)
        trainer = SVITrainer(model, guide, Trace_ELBO(), lr=LR, engine="trace")
        torch.manual_seed(2)
        call(trainer)  # the first step: parameters read, then captured
        torch.manual_seed(3)
        values.append(float(call(trainer)))
        assert trainer.engine == "trace"
    pyro.clear_param_store()
    model, guide = _annealed_pair(static=True)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": LR}), Trace_ELBO())
    torch.manual_seed(2)
    svi.step(x, idx, factor)
    torch.manual_seed(3)
    expected = svi.step(x, idx, factor)
    assert values == pytest.approx([expected] * 3, rel=1e-6)


@pytest.mark.parametrize("call", [lambda step, x, idx: step(x, idx, 1.0, "extra"),
                                  lambda step, x, idx: step(x, idx, anealing_factor=0.3)],  # a typo
                         ids=["extra-positional", "unknown-keyword"])
def test_arguments_the_program_does_not_take_are_refused_as_by_pyro(call):
    model, guide = _annealed_pair(static=True)
    (x, idx) = _data(0)
    pyro.clear_param_store()
    with pytest.raises(TypeError) as pyros:
        call(SVI(model, guide, pyro.optim.Adam({"lr": LR}), Trace_ELBO()).step, x, idx)
    for engine in ("off", "trace"):
        pyro.clear_param_store()
        with pytest.raises(TypeError) as ours:
            call(SVITrainer(model, guide, Trace_ELBO(), engine=engine).step, x, idx)
        assert str(ours.value) == str(pyros.value)


def test_clipping_twice_is_refused():
    model, guide = _annealed_pair(static=True)
    for optim in (pyro.optim.ClippedAdam({"lr": 0.01}), pyro.optim.ClippedAdam({"lr": 0.01, "clip_norm": 2.0}),
                  pyro.optim.Adam({"lr": 0.01}, {"clip_norm": 2.0})):
        with pytest.raises(ValueError, match="clip the gradients once") as err:
            SVITrainer(model, guide, Trace_ELBO(), optim, clip_norm=1.0)
        assert "\n" not in str(err.value)
    SVITrainer(model, guide, Trace_ELBO(), pyro.optim.ClippedAdam({"lr": 0.01}))  # one clipping: accepted



@pytest.mark.parametrize("optim", ["default", "pyro-adam"])
def test_a_trainer_resumed_from_its_optimizer_state_goes_on_as_svi(optim):
    """A parameter differentiated at steps 1-2 only keeps a zero gradient under SVI, so Adam moves it at steps 3-4;
    a trainer resumed after step 2 (a new trainer, the saved values and optimizer state) moves it alike."""
    import pyro.distributions as dist

    def model(x, flag):
        w, b = pyro.param("w", torch.tensor(0.0)), pyro.param("b", torch.tensor(0.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("obs", dist.Normal(b + (w if flag else w.detach()), 1.0), obs=x)

    def guide(x, flag):
        pass
    x, flags = torch.randn(20) + 3, [True, True, False, False]
    make = (lambda: pyro.optim.Adam({"lr": 0.1})) if optim == "pyro-adam" else (lambda: None)
    pyro.clear_param_store()
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.1}), Trace_ELBO())
    for flag in flags:
        svi.step(x, flag)
    expected = float(pyro.param("w"))
    pyro.clear_param_store()
    first = SVITrainer(model, guide, Trace_ELBO(), make(), lr=0.1)
    for flag in flags[:2]:
        first.step(x, flag)
    state, values = first.optimizer_state(), {n: pyro.param(n).detach().clone() for n in ("w", "b")}
    after_two = float(values["w"])
    pyro.clear_param_store()  # a new process: the checkpoint's values and optimizer state, a new trainer
    for name, value in values.items():
        pyro.param(name, value)
    resumed = SVITrainer(model, guide, Trace_ELBO(), make(), lr=0.1)
    resumed.load_optimizer_state(state)  # before its first step: loaded at that step
    for flag in flags[2:]:
        resumed.step(x, flag)
    assert float(pyro.param("w")) == pytest.approx(expected, rel=1e-6) and abs(expected - after_two) > 1e-3
