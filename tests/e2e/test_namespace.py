"""The toolkit installs under one import namespace, ``pyro_vae``: a research project's own ``models.py``,
``models/``, ``guides.py`` or ``inference.py`` (first on ``sys.path``, as a script's folder is) is never
imported in its place, by the library, the ``vae`` command or a reloaded run."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import DATA, ROOT, run_vae

OLD_RUN = DATA / "run_2026_12_v2"


def _users_project(folder):
    """The files of a user's project that shadow generic names; importing any of them fails loudly."""
    for name in ("guides.py", "inference.py"):
        (folder / name).write_text(f"raise ImportError('the user\\'s own {name} was imported')\n")
    (folder / "models").mkdir()
    (folder / "models" / "__init__.py").write_text("raise ImportError('the user\\'s own models/ was imported')\n")
    (folder / "train_mine.py").write_text(
        "import json, sys\n"
        "from pyro_vae.inference import RunConfig, evaluate_elbo, load_run\n"
        "from pyro_vae.models import LIKELIHOODS\n"
        "run = load_run(sys.argv[1])\n"
        "print(json.dumps({'elbo': evaluate_elbo(run.model, run.guide, run.data.test_x[:50]).elbo,\n"
        "                  'likelihoods': len(LIKELIHOODS.names()), 'config': RunConfig().model.likelihood}))\n")


def test_a_users_own_models_guides_and_inference_files_break_nothing(tmp_path):
    _users_project(tmp_path)
    done = subprocess.run([sys.executable, "train_mine.py", str(OLD_RUN)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["likelihoods"] > 5 and found["config"] == "bernoulli" and found["elbo"] < 0
    evaluated = run_vae("evaluate", OLD_RUN, "--iw-samples", "0", "--limit", "50", "--json", tmp_path / "e.json",
                        cwd=tmp_path)  # python -m puts the project's folder first on sys.path
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert json.loads((tmp_path / "e.json").read_text())["elbo"]["elbo"] == found["elbo"]
    trained = run_vae("train", "--epochs", "1", "--latent-dim", "2", "--hidden-dim", "8", "--out", tmp_path / "run",
                      "--quiet", "--no-plots", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]


@pytest.mark.slow
def test_the_built_wheel_installed_in_a_fresh_environment_trains_and_runs_the_readmes_example(tmp_path):
    """Not editable: the wheel's files alone (its dependencies seen through a path file, so that nothing is
    downloaded), from an unrelated folder."""
    import sysconfig

    # built from a copy of the project's files: the build's build/ and *.egg-info are not written into the
    # checkout, where the other tests (in parallel) import the packages and read their version
    wheels, source = tmp_path / "wheels", tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("models", "guides", "inference"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(wheels), str(source)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("pyro_vae_toolkit-*.whl")
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=300)
    python = env_dir / "bin" / "python"
    packages = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
    dependencies = sysconfig.get_paths()["purelib"]  # this environment's torch, Pyro, ArviZ (a plain path: its
    (Path(packages) / "dependencies.pth").write_text(dependencies + "\n")  # editable finder is not loaded)
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                                "--no-index", "-q", str(wheel)], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([str(python), "-c", "import pyro_vae.inference as i, pyro_vae.models as m; "
                            "print(i.__file__); print(m.__version__)"], cwd=elsewhere, capture_output=True,
                           text=True, timeout=300)
    assert where.returncode == 0, where.stderr[-2000:]
    assert str(ROOT) not in where.stdout and where.stdout.split()[1] == __import__("pyro_vae.models").models.__version__
    for typed in ("models", "guides", "inference"):
        assert (Path(packages) / "pyro_vae" / typed / "py.typed").is_file()
    assert (Path(packages) / "pyro_vae" / "inference" / "config" / "recipes").is_dir()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    trained = subprocess.run([str(env_dir / "bin" / "vae"), "train", "--epochs", "1", "--out", "run", "--quiet"],
                             cwd=elsewhere, capture_output=True, text=True, timeout=900, env=env)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert (elsewhere / "run" / "weights.pt").is_file()
    script = (ROOT / "examples" / "own_training_script.py").read_text()
    example = subprocess.run([str(python), "-c", script], cwd=elsewhere, capture_output=True, text=True,
                             timeout=900, env=env)
    assert example.returncode == 0, example.stderr[-2000:]
    assert "epoch 2: test ELBO" in example.stdout
