import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")

ROOT = Path(__file__).resolve().parents[1]
VAE = [sys.executable, "-m", "pyro_vae.inference.cli"]


def run_vae(*args, cwd=None, timeout=600):
    """The real ``vae`` command in a subprocess (what a user types)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([*VAE, *map(str, args)], cwd=cwd or ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


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
