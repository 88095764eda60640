"""The example scripts the docs show (tests/e2e/test_docs.py checks that they are included, not pasted) run,
and agree with the library's trainer."""
import re
import subprocess
import sys

from pyro_vae.inference import RunConfig, setup, train

from tests.helpers import ROOT

SCRIPT = ROOT / "examples" / "own_training_script.py"
CUSTOM = ROOT / "examples" / "custom_likelihood.py"


def test_a_likelihood_added_from_a_users_script_trains():
    proc = subprocess.run([sys.executable, "-W", "ignore", str(CUSTOM)], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"Student-t likelihood: -?\d+\.\d nats", proc.stdout)


def test_users_own_svi_loop_matches_vae_train_figures():
    proc = subprocess.run([sys.executable, "-W", "ignore", str(SCRIPT)], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    printed = [float(v) for v in re.findall(r"test ELBO (-?\d+\.\d)", proc.stdout)]
    cfg = RunConfig()
    cfg.train.epochs = 3
    expected = [round(m["test_elbo"], 1) for m in train(setup(cfg))]
    assert printed == expected


def test_a_users_own_pyro_program_trains_on_the_captured_engine_and_evaluates():
    """A function model and guide (networks by pyro.module), a pyro.param scale and a pyro.optim scheduler: the
    captured engine runs it (no fallback), the learned scale moves, and the library's evaluators take the functions."""
    script = ROOT / "examples" / "pyro_program.py"
    proc = subprocess.run([sys.executable, "-W", "ignore", str(script)], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "note:" not in proc.stderr
    engine, count, sigma = re.search(r"engine (\w+); trained (\d+) parameters, sigma 0.500 -> (\d\.\d+)",
                                     proc.stdout).groups()
    assert engine == "trace" and int(count) == 9 and abs(float(sigma) - 0.5) > 0.02
    elbo, ll = (float(v) for v in re.search(r"test ELBO (-?\d+\.\d) nats; log p\(x\) of 100 test images (-?\d+\.\d)",
                                             proc.stdout).groups())
    assert -400 < elbo < 0 and -400 < ll < 0


def test_the_own_counts_example_comes_close_to_the_exact_log_likelihood(tmp_path):
    script = ROOT / "examples" / "own_counts.py"
    proc = subprocess.run([sys.executable, "-W", "ignore", str(script)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    found = re.search(r"test log p\(x\): (-?\d+\.\d+) nats per row; exact under the true model: (-?\d+\.\d+)",
                      proc.stdout)
    estimate, exact = float(found.group(1)), float(found.group(2))
    assert exact - 10 < estimate < exact + 0.5  # a lower bound, within 10 nats of the truth


def test_the_arviz_example_runs_on_a_run(tmp_path):
    from pyro_vae.inference.runs.folder import train_run

    script = ROOT / "examples" / "diagnose_in_arviz.py"
    train_run(RunConfig.from_dict({"model": {"latent_dim": 2, "hidden_dim": 32}, "guide": {"hidden_dim": 32},
                                   "train": {"epochs": 1}}), tmp_path / "run", quiet=True)
    proc = subprocess.run([sys.executable, "-W", "ignore", str(script), str(tmp_path / "run")], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "elpd_loo" in proc.stdout and re.search(r"^nuts ", proc.stdout, flags=re.M) \
        and re.search(r"^guide ", proc.stdout, flags=re.M) and "r_hat" in proc.stdout


def test_the_own_dataset_example_trains_from_a_users_dataset_class():
    """examples/own_dataset.py: a DataLoader of a user's Dataset (2 workers) trains with the loader's batch size,
    and its importance-sampled log p(x) lies above the test ELBO (a tighter bound on the same test images)."""
    script = ROOT / "examples" / "own_dataset.py"
    proc = subprocess.run([sys.executable, "-W", "ignore", str(script)], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    elbo = float(re.search(r"test ELBO (-?\d+\.\d) nats after 3 epochs of batch 100", proc.stdout).group(1))
    log_px = float(re.search(r"log p\(x\) (-?\d+\.\d) nats \(importance sampled, k = 100, 200 test", proc.stdout)
                   .group(1))
    assert elbo < log_px < 0
