"""Fixtures the test packages share, and the ``e2e`` marker: every test under tests/e2e/ (training runs through the
``vae`` command, subprocesses, the README's and the benchmarks' scripts) is marked ``e2e`` here, so that
``make test-fast`` (``-m "not e2e and not slow"``) leaves them out. Helpers that are not fixtures:
``tests/helpers.py``."""
import os
import warnings
from pathlib import Path

import pytest
import torch

warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")

if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    # One thread per pytest-xdist worker (make test: one worker per core), and for the subprocesses it starts: two
    # workers of two threads each on two cores contend, and some tests then take many times as long.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

E2E = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if E2E in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def embedded():
    from pyro_vae.inference.data.datasets import load_embedded_mnist

    return load_embedded_mnist()


@pytest.fixture
def small_pair():
    """A small VAE (Z=5, 32 hidden units) and its guide on 28x28 images."""
    import pyro
    from pyro_vae.inference import GuideConfig, ModelConfig, build_guide, build_model

    pyro.set_rng_seed(0)
    event = torch.Size([1, 28, 28])
    model = build_model(ModelConfig(latent_dim=5, hidden_dim=32), event)
    guide = build_guide(GuideConfig(hidden_dim=32), 5, event)
    return model, guide


@pytest.fixture(scope="session")
def param_scale_gaussian():
    """A user's likelihood registered as ``param_scale_gaussian`` (sigma = pyro.param("sigma")), once per process
    and only once a test asks for it: registered at import, it would join the registry before the modules
    that parametrize over every likelihood are collected."""
    from pyro_vae.models import LIKELIHOODS

    from tests.programs import ParamScaleGaussian

    if "param_scale_gaussian" not in LIKELIHOODS.names():
        LIKELIHOODS.register("param_scale_gaussian")(ParamScaleGaussian)
    return "param_scale_gaussian"


@pytest.fixture(scope="session")
def two_epoch_run(tmp_path_factory):
    """A run folder of two epochs of a tiny VAE (helpers.TINY) with its plots and TensorBoard log; read, or copied."""
    from pyro_vae.inference import RunConfig
    from pyro_vae.inference.runs.folder import train_run

    from tests.helpers import TINY

    out = tmp_path_factory.mktemp("tiny") / "run"
    train_run(RunConfig.from_dict(TINY), out, quiet=True)
    return out


@pytest.fixture(scope="session")
def rd_autoencoder(tmp_path_factory):
    """A rate-distortion autoencoder (entropy-model prior, uniform-noise guide) trained 3 epochs, loaded."""
    from pyro_vae.inference import RunConfig
    from pyro_vae.inference.runs.folder import train_run
    from pyro_vae.inference.runs.run import load_run

    out = tmp_path_factory.mktemp("rdae") / "run"
    cfg = RunConfig.from_dict({"data": {"binarize": "none"},
                               "model": {"latent_dim": 8, "hidden_dim": 64, "prior": "entropy_model",
                                         "likelihood": "gaussian", "likelihood_scale": 0.1},
                               "guide": {"guide": "uniform_noise", "hidden_dim": 64}, "train": {"epochs": 3}})
    train_run(cfg, out, quiet=True)
    return load_run(out)
