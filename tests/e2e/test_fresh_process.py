"""A trained run reloads in a fresh process and scores as it did where it was trained: the library's run, and a
run whose likelihood reads a trained ``pyro.param`` (every evaluator and ``vae evaluate``, tests/reload_check.py)."""
import json
import subprocess
import sys

import pyro
import pytest

from pyro_vae.inference import RunConfig, RunFolder, setup, train, train_run

from tests.helpers import ROOT


def _default_config(epochs, seed=0):
    cfg = RunConfig()
    cfg.train.epochs, cfg.train.seed = epochs, seed
    return cfg


def _user_config(seed=0, epochs=1):
    return RunConfig.from_dict({"data": {"binarize": "none"}, "train": {"epochs": epochs, "seed": seed},
                                "model": {"latent_dim": 3, "hidden_dim": 32, "likelihood": "param_scale_gaussian"},
                                "guide": {"hidden_dim": 32}})


def test_checkpoint_reloads_in_a_fresh_process_with_the_same_test_elbo(tmp_path):
    out = tmp_path / "run"
    metrics = train_run(_default_config(epochs=2, seed=5), out, quiet=True)
    code = ("import warnings; warnings.simplefilter('ignore');"
            "import json, sys; from pyro_vae.inference import load_run;"
            "print(json.dumps(load_run(sys.argv[1]).evaluate(seed=5).to_dict()))")
    proc = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    reloaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert reloaded["elbo"] == metrics[-1]["test_elbo"]
    assert reloaded["rate"] == metrics[-1]["test_rate"]


@pytest.mark.usefixtures("param_scale_gaussian")
def test_a_reloaded_runs_trained_pyro_params_score_it_in_a_fresh_process(tmp_path):
    """Every evaluator and ``vae evaluate`` in a new process (``tests/reload_check.py``), called on the loaded run's
    model and guide without entering its store by hand, give the figures of the trained run: the test ELBO that
    training logged, and what the same calls give in the training process inside ``run.params()``."""
    from tests.reload_check import figures

    folder = tmp_path / "run"
    run = setup(_user_config(epochs=2))
    pyro.clear_param_store()
    metrics = train(run, monitors=[RunFolder(folder)])
    with run.params():
        trained = figures(run)
        sigma = float(pyro.param("sigma"))
    assert abs(sigma - 0.5) > 0.01  # sigma trained away from its initial value: the figures depend on it
    out = tmp_path / "figures.json"
    subprocess.run([sys.executable, "-m", "tests.reload_check", str(folder), str(out)], check=True,
                   cwd=ROOT, capture_output=True, timeout=600)
    fresh = json.loads(out.read_text())
    assert fresh["elbo"] == pytest.approx(metrics[-1]["test_elbo"], abs=1e-3)  # what training logged
    assert fresh["elbo"] == pytest.approx(trained["elbo"], abs=1e-4)
    assert fresh["log_likelihood"] == pytest.approx(trained["log_likelihood"], abs=1e-4)
    assert fresh["cli_log_likelihood"] == pytest.approx(trained["log_likelihood"], abs=1e-4) and fresh["cli_code"] == 0
    assert fresh["activity"] == pytest.approx(trained["activity"], rel=1e-5)
    assert json.dumps(fresh["examine"], sort_keys=True) == json.dumps(json.loads(json.dumps(
        trained["examine"], default=float)), sort_keys=True)
    assert fresh["global_store"] == []  # nothing written into the user's global store
