"""SVI on the embedded MNIST digits: it learns, it is reproducible, and a run reloads."""
import json
import subprocess
import sys

import pytest

from pyro_vae.inference import RunConfig, setup, train, train_run


def _config(epochs, seed=0):
    cfg = RunConfig()
    cfg.train.epochs, cfg.train.seed = epochs, seed
    return cfg


def test_svi_improves_test_elbo_and_is_reproducible():
    run = setup(_config(epochs=8))  # 8 x 36 = 288 SVI steps
    before = run.evaluate(seed=0).elbo
    metrics = train(run)
    after = metrics[-1]["test_elbo"]
    assert metrics[-1]["steps"] == 288
    # An untrained decoder scores ~ -549 nats (784 pixels at ~0.7 nats each);
    # a trained one explains most pixels.
    assert before < -450
    assert after > before + 300
    assert after > -175
    assert metrics[-1]["test_elbo"] == pytest.approx(
        -(metrics[-1]["test_distortion"] + metrics[-1]["test_rate"]))

    again = train(setup(_config(epochs=8)))
    for a, b in zip(metrics, again):
        for key in ("train_objective", "test_elbo", "test_distortion", "test_rate"):
            assert a[key] == b[key]


def test_checkpoint_reloads_in_a_fresh_process_with_the_same_test_elbo(tmp_path):
    out = tmp_path / "run"
    metrics = train_run(_config(epochs=2, seed=5), out, quiet=True)
    code = ("import warnings; warnings.simplefilter('ignore');"
            "import json, sys; from inference import load_run;"
            "print(json.dumps(load_run(sys.argv[1]).evaluate(seed=5).to_dict()))")
    proc = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    reloaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert reloaded["elbo"] == metrics[-1]["test_elbo"]
    assert reloaded["rate"] == metrics[-1]["test_rate"]
