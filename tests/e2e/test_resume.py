"""Resumable training: a run killed with SIGKILL (or stopped by SIGINT) at a random step and
resumed ends with exactly the parameters of an uninterrupted run with the same seed."""
import json
import os
import random
import signal
import subprocess
import time

import pytest
import torch

from tests.helpers import ROOT, VAE, run_vae, same_weights

ARGS = ["--epochs", "5", "--latent-dim", "4", "--hidden-dim", "64", "--seed", "11", "--checkpoint-every", "5",
        "--quiet"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    proc = run_vae("train", *ARGS, "--out", out)
    assert proc.returncode == 0, proc.stderr
    return torch.load(out / "weights.pt", weights_only=True)


def _start(out):
    return subprocess.Popen([*VAE, "train", *ARGS, "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def _wait_for_checkpoints(proc, path, count, timeout=120):
    """Block until ``path`` has been (re)written ``count`` times."""
    seen, last, deadline = 0, None, time.time() + timeout
    while seen < count and time.time() < deadline and proc.poll() is None:
        stamp = path.stat().st_mtime_ns if path.exists() else None
        if stamp is not None and stamp != last:
            seen, last = seen + 1, stamp
        time.sleep(0.005)
    assert seen >= count, "the run ended before the kill point"


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [1, 4, 9])
def test_sigkill_at_a_random_step_then_resume_gives_identical_parameters(tmp_path, reference, kill_after):
    out = tmp_path / "run"
    proc = _start(out)
    _wait_for_checkpoints(proc, out / "checkpoint.pt", kill_after)
    time.sleep(random.Random(kill_after).uniform(0, 0.05))  # land between checkpoints
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)  # the last checkpoint is whole
    assert 0 < checkpoint["steps"] < 180
    before = (out / "metrics.jsonl").read_text().splitlines() if (out / "metrics.jsonl").exists() else []
    resumed = run_vae("train", "--resume", out, "--checkpoint-every", "5", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert same_weights(torch.load(out / "weights.pt", weights_only=True), reference)
    after = (out / "metrics.jsonl").read_text().splitlines()
    assert len(after) == 5 and json.loads(after[-1])["steps"] == 180
    assert after[: len(before)] == before  # epochs done before the kill were not retrained (same timings)


@pytest.mark.slow
def test_sigint_checkpoints_and_says_how_to_resume(tmp_path, reference):
    out = tmp_path / "run"
    proc = _start(out)
    _wait_for_checkpoints(proc, out / "checkpoint.pt", 2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert f"resume with: vae train --resume {out}" in err and "Traceback" not in err
    resumed = run_vae("train", "--resume", out, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert same_weights(torch.load(out / "weights.pt", weights_only=True), reference)
