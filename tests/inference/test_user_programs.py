"""Pyro's conventions at the seams: users' programs and param stores, optimizers, and the library's own runs."""
import pyro
import pyro.optim
import pytest
import torch
from pyro.infer import SVI

from pyro_vae.inference import (RunConfig, SVITrainer, evaluate_elbo, importance_log_likelihood, load_run, posterior_collapse,
                       setup, train, train_run)

from tests.programs import Z, build

pytestmark = pytest.mark.usefixtures("param_scale_gaussian")  # sigma = pyro.param("sigma"): a user's likelihood


def _config(seed=0, epochs=1):
    return RunConfig.from_dict({"data": {"binarize": "none"}, "train": {"epochs": epochs, "seed": seed},
                                "model": {"latent_dim": 3, "hidden_dim": 32, "likelihood": "param_scale_gaussian"},
                                "guide": {"hidden_dim": 32}})


def test_library_runs_leave_the_users_param_store_alone_and_train_their_own_pyro_params():
    pyro.clear_param_store()
    mine = pyro.param("mine", torch.tensor(3.0))
    alone = setup(_config(seed=1))
    train(alone)
    with alone.params():
        sigma_alone = float(pyro.param("sigma"))
    first = setup(_config(seed=0))
    train(first)
    with first.params():
        sigma_first = float(pyro.param("sigma"))
    second = setup(_config(seed=1))  # setup seeds: the same draws as the run trained alone
    train(second)  # starts from its own sigma = 0.5, not from the first run's trained one
    with second.params():
        assert float(pyro.param("sigma")) == pytest.approx(sigma_alone, abs=1e-6)
    with first.params():
        assert float(pyro.param("sigma")) == sigma_first  # untouched by the second run
    assert abs(sigma_first - 0.5) > 0.01
    assert list(pyro.get_param_store().keys()) == ["mine"] and pyro.param("mine") is mine


def test_a_runs_pyro_params_are_saved_with_its_weights_and_reloaded(tmp_path):
    train_run(_config(), tmp_path / "run", quiet=True, plots=False, tensorboard=False)
    state = torch.load(tmp_path / "run" / "weights.pt", weights_only=True)
    assert set(state["params"]) == {"sigma"} and abs(float(state["params"]["sigma"]) - 0.5) > 0.01  # the trained one
    checkpoint = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert float(checkpoint["params"]["sigma"]) == float(state["params"]["sigma"])
    run = load_run(tmp_path / "run")
    with run.params():
        assert float(pyro.param("sigma")) == pytest.approx(float(state["params"]["sigma"]))
    metrics = [line for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if line]
    assert run.evaluate().elbo == pytest.approx(__import__("json").loads(metrics[-1])["test_elbo"], abs=1e-3)


def _plain_guide(encoder):
    """A function guide that takes only x, as in Pyro's tutorials."""
    def guide(x):
        loc, raw = encoder(x).split(Z, -1)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", pyro.distributions.Normal(loc, torch.nn.functional.softplus(raw) + 1e-3).to_event(1))
    return guide


def test_the_evaluators_take_function_guides_that_accept_only_x():
    model, module_guide, _, x, _ = build("elbo")
    module_guide.min_scale = 1e-3
    function_guide = _plain_guide(module_guide.encoder)
    for evaluate in (lambda g: evaluate_elbo(model, g, x).elbo,
                     lambda g: importance_log_likelihood(model, g, x, num_samples=50).log_likelihood,
                     lambda g: posterior_collapse(model, g, x).activity):
        assert evaluate(function_guide) == pytest.approx(evaluate(module_guide), rel=1e-5)


@pytest.mark.parametrize("optim", ["pyro-adam", "pyro-scheduler", "torch-class"])
@pytest.mark.parametrize("engine", ["off", "trace"])
def test_the_trainer_takes_pyro_optimizers_and_torch_classes_as_svi_does(optim, engine):
    """Five steps from the same start on the same draws: the parameters Pyro's SVI reaches with that optimizer."""
    def make():
        return {"pyro-adam": pyro.optim.Adam({"lr": LR}),
                "pyro-scheduler": pyro.optim.StepLR({"optimizer": torch.optim.Adam, "optim_args": {"lr": LR},
                                                     "step_size": 1, "gamma": 0.5}),
                "torch-class": torch.optim.SGD}[optim]
    LR = 1e-5 if optim == "torch-class" else 1e-2  # plain SGD on an N-scaled loss needs a small step
    results = []
    for runner in ("pyro", "toolkit"):
        model, guide, objective, x, kwargs = build("pyro-param-likelihood")
        pyro.clear_param_store()
        opt = make()
        if runner == "pyro":
            svi = SVI(model, guide, pyro.optim.SGD({"lr": LR}) if optim == "torch-class" else opt, objective)
            step = lambda: svi.step(x, **kwargs)  # noqa: E731
        else:
            trainer = SVITrainer(model, guide, objective, opt, lr=LR, engine=engine)
            step = lambda: trainer.step(x, **kwargs)  # noqa: E731
        torch.manual_seed(3)
        for _ in range(5):
            step()
            if optim == "pyro-scheduler":
                opt.step()  # the user steps the schedule, as with SVI
        store = pyro.get_param_store()
        results.append({name: store[name].detach().clone() for name in store.keys()})
    assert results[0].keys() == results[1].keys() and "sigma" in results[0]
    for name, value in results[0].items():
        assert torch.allclose(results[1][name], value, atol=1e-6), name


def test_an_optimizer_built_on_parameters_is_refused_with_what_to_pass_instead():
    model, guide, objective, x, kwargs = build("elbo")
    built = torch.optim.Adam(torch.nn.Linear(2, 2).parameters())
    with pytest.raises(ValueError, match="pass the optimizer's class or a function of the parameter list"):
        SVITrainer(model, guide, objective, built).step(x, **kwargs)


def test_train_into_a_folder_checks_it_first_and_leaves_one_load_run_reads(tmp_path):
    from pyro_vae.inference import RunFolder, UserError

    missing = tmp_path / "new" / "run"  # its parent does not exist either
    run = setup(_config())
    metrics = train(run, monitors=[RunFolder(missing)])
    assert load_run(missing).evaluate().elbo == pytest.approx(metrics[-1]["test_elbo"], abs=1e-3)
    empty = tmp_path / "empty"
    empty.mkdir()
    train(setup(_config()), monitors=[RunFolder(empty)])
    assert (empty / "config.json").is_file() and load_run(empty).config.to_dict() == _config().to_dict()
    before = (missing / "weights.pt").read_bytes()
    steps = []
    other = setup(_config(seed=3))
    with pytest.raises(UserError, match="already holds a run") as err:
        train(other, monitors=[type("Counting", (), {"note": steps.append, "log_step": steps.append,
                                                     "end_epoch": steps.append})(), RunFolder(missing)])
    assert "\n" not in str(err.value) and steps == []  # refused before any step
    assert (missing / "weights.pt").read_bytes() == before
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        train(setup(_config()), monitors=[RunFolder(a_file)])


def test_a_runs_store_survives_an_interruption_and_nests_with_another_runs():
    from pyro_vae.inference.training.state import TrainingInterrupted

    a, b = setup(_config(seed=0)), setup(_config(seed=1))
    steps = []
    with pytest.raises(TrainingInterrupted):
        train(a, stop_requested=lambda: steps.append(1) or len(steps) >= 20)  # stopped mid-epoch
    train(b)
    sigma_a, sigma_b = (float(r.store_params()["sigma"]) for r in (a, b))
    assert abs(sigma_a - 0.5) > 1e-3 and abs(sigma_b - sigma_a) > 1e-3  # a's 20 steps were kept, b has its own
    alone = a.evaluate().elbo
    with b.params():  # a's programs inside b's block read a's store, and b's block goes on with b's
        assert a.evaluate().elbo == alone and float(pyro.param("sigma")) == sigma_b
        with pyro.get_param_store().scope():  # and inside a user's own scope
            assert a.evaluate().elbo == alone and "sigma" not in pyro.get_param_store()


def test_pyros_own_svi_trains_a_loaded_runs_programs_as_inside_its_store(tmp_path):
    train_run(_config(), tmp_path / "run", quiet=True, plots=False, tensorboard=False)
    trained = []
    for inside in (False, True):
        run = load_run(tmp_path / "run")
        pyro.clear_param_store()
        svi = SVI(run.model, run.guide, pyro.optim.Adam({"lr": 1e-2}), pyro.infer.Trace_ELBO())
        torch.manual_seed(0)
        with run.params() if inside else __import__("contextlib").nullcontext():
            for _ in range(3):
                svi.step(run.data.train_x[:32], num_data=run.data.train_x.shape[0], subsample=torch.arange(32))
        trained.append(run.store_params()["sigma"])
        assert list(pyro.get_param_store().keys()) == []
    assert torch.equal(trained[0], trained[1])
