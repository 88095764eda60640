"""The ``vae`` command end to end in a subprocess, and its real exit status on bad input (the table of
refusals, in this process, is tests/inference/cli/test_bad_input.py)."""
import json
import subprocess
import sys

import pytest
import torch
from PIL import Image

from pyro_vae.inference import RunConfig

from tests.helpers import ROOT, run_vae
from tests.inference.cli.test_bad_input import SAID

RUN_FILES = ["config.json", "versions.json", "weights.pt", "metrics.jsonl", "samples.png", "reconstructions.png"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    proc = run_vae("train", "--epochs", 2, "--latent-dim", 8, "--hidden-dim", 64, "--seed", 3, "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "test ELBO" in proc.stdout
    return out


def test_train_writes_every_run_file(trained_run):
    for name in RUN_FILES:
        assert (trained_run / name).is_file(), name
    cfg = RunConfig.load(trained_run / "config.json")
    assert (cfg.model.latent_dim, cfg.model.hidden_dim, cfg.train.seed) == (8, 64, 3)
    lines = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    assert {"train_objective", "test_elbo", "test_distortion", "test_rate", "seconds"} <= set(lines[0])
    versions = json.loads((trained_run / "versions.json").read_text())
    assert versions["torch"] == torch.__version__ and versions["seed"] == 3
    assert Image.open(trained_run / "samples.png").size == (242, 242)  # 8 x 8 grid of 28 px + 2 px padding
    assert Image.open(trained_run / "reconstructions.png").size == (242, 242)  # 4 pairs of rows of 8


def test_evaluate_reproduces_the_training_figure(trained_run, tmp_path):
    out = tmp_path / "eval.json"
    proc = run_vae("evaluate", trained_run, "--seed", 3, "--json", out, "--iw-samples", 100)
    assert proc.returncode == 0, proc.stderr
    assert "rate R" in proc.stdout and "-log p(x), k=100" in proc.stdout and "active units" in proc.stdout
    figures = json.loads(out.read_text())
    last = json.loads((trained_run / "metrics.jsonl").read_text().splitlines()[-1])
    assert figures["elbo"]["elbo"] == pytest.approx(last["test_elbo"], abs=1e-9)
    # log p(x) >= ELBO: the k = 100 estimate sits above the bound it improves on
    assert figures["log_likelihood"]["log_likelihood"] > figures["elbo"]["elbo"]
    assert len(figures["collapse"]["kl_per_dim"]) == 8
    assert sum(figures["collapse"]["kl_per_dim"]) == pytest.approx(figures["elbo"]["rate"], rel=1e-6)


def test_sample_writes_a_grid(trained_run, tmp_path):
    proc = run_vae("sample", trained_run, "-n", 16, "--out", tmp_path / "s.png")
    assert proc.returncode == 0, proc.stderr
    assert Image.open(tmp_path / "s.png").size == (122, 122)


def test_train_with_another_objective_records_it(tmp_path):
    out = tmp_path / "iwae"
    proc = run_vae("train", "--epochs", 1, "--objective", "iwae", "--num-particles", 3, "--dreg", "--latent-dim", 4,
                   "--hidden-dim", 32, "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    cfg = RunConfig.load(out / "config.json")
    assert (cfg.objective.name, cfg.objective.num_particles, cfg.objective.dreg) == ("iwae", 3, True)


def test_real_exit_status_and_no_traceback_in_a_subprocess(tmp_path):
    proc = run_vae("train", "--dataset", "nope", "--out", tmp_path / "o")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "Traceback" not in proc.stderr


SMALL = ["--epochs", "1", "--latent-dim", "3", "--hidden-dim", "32", "--quiet"]


def test_full_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        proc = run_vae("train", *SMALL, "--out", mount / "run")
        assert proc.returncode == 2
        err = proc.stderr.strip()
        assert err.startswith("vae: error: cannot write") and SAID["full-disk"] in err
        assert "\n" not in err and "Traceback" not in err
        assert not [p for p in (mount / "run").iterdir() if p.name.endswith(".tmp")]  # no half-written file
        json.loads((mount / "run" / "config.json").read_text())  # what was written is whole
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def test_the_command_line_imports_no_heavy_library_before_a_command_needs_it():
    """vae --help starts about as fast as importing torch and pyro: no torchvision, ArviZ, matplotlib, TensorBoard."""
    code = ("import sys; from pyro_vae.inference.cli.main import build_parser; build_parser().format_help(); "
            "print(sorted(m for m in ('torchvision', 'arviz', 'matplotlib', 'tensorboard', 'torch._dynamo') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
