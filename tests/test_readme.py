"""The README's example is the file that runs, and it agrees with the library's trainer."""
import re
import subprocess
import sys

from inference import RunConfig, setup, train

from .conftest import ROOT

SCRIPT = ROOT / "examples" / "own_training_script.py"
CUSTOM = ROOT / "examples" / "custom_likelihood.py"


def test_readme_shows_the_example_scripts_verbatim():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert SCRIPT.read_text() in blocks and CUSTOM.read_text() in blocks
    assert (ROOT / "examples" / "experience.py").read_text() in blocks
    assert (ROOT / "examples" / "two_d.yaml").read_text() in re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)
    assert len(CUSTOM.read_text().splitlines()) <= 30


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
