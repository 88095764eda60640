"""One way to extend each part (CONTRIBUTING.md): a toy prior with an option, a toy dataset loader with an
option, a toy engine and a toy flag of a non-train command, each declared once, here, work from the command
line; the config keys, flags, bounds and help follow from their declarations."""
import json
import math
from dataclasses import dataclass

import pyro.distributions as dist
import pytest
import torch

from pyro_vae.models import PRIORS, Prior
from pyro_vae.models.registry import option

from pyro_vae.inference.cli.command import COMMANDS
from pyro_vae.inference.cli.inspect_commands import EvaluateCommand
from pyro_vae.inference.cli.main import main
from pyro_vae.inference.data.datasets import ImageData
from pyro_vae.inference.data.loaders import DATASETS, DatasetLoader
from pyro_vae.inference.runs.run import load_run
from pyro_vae.inference.training.engines import ENGINES, InterpretedEngine


class ToyScaledPrior(Prior):
    """p(z) = N(0, s^2 I), s the option ``toy_prior_scale``."""

    factorized = True

    @dataclass
    class Config:
        toy_prior_scale: float = option(2.0, "toy prior: the scale s of N(0, s^2 I)", above=0)

    @classmethod
    def from_config(cls, config, latent_dim, event_shape):
        return cls(latent_dim, config.toy_prior_scale)

    def __init__(self, latent_dim: int, scale: float = 2.0):
        super().__init__(latent_dim)
        self.register_buffer("loc", torch.zeros(latent_dim))
        self.register_buffer("scale", torch.full((latent_dim,), float(scale)))

    def distribution(self):
        return dist.Normal(self.loc, self.scale).to_event(1)


class ToyBlobs(DatasetLoader):
    """Two Gaussian blobs in 6 dimensions, ``toy_points`` points, the last sixth the test set; no labels."""

    images, labels = False, False
    loads = 0

    @dataclass
    class Config:
        toy_points: int = option(120, "toy dataset: how many points", above=0)

    def load(self):
        ToyBlobs.loads += 1
        gen = torch.Generator().manual_seed(3)
        n = self.config.toy_points
        x = torch.randn(n, 6, generator=gen) + 4.0 * (torch.arange(n) % 2).unsqueeze(1)
        test = n // 6
        y = torch.zeros(n, dtype=torch.long)
        return ImageData(self.name, x[test:], y[test:], x[:test], y[:test], labelled=False)


class CountingEngine(InterpretedEngine):
    """Pyro's interpreter, counting the steps it takes."""

    name, fallback = "toy_counting", None
    steps = 0

    def loss_and_grads(self, *args, **kwargs):
        CountingEngine.steps += 1
        return super().loss_and_grads(*args, **kwargs)


class EvaluateToyDigits(EvaluateCommand):
    """``vae evaluate`` with one more flag: the -ELBO again, to ``--toy-digits`` digits."""

    @dataclass
    class Options(EvaluateCommand.Options):
        toy_digits: int = option(3, "toy: digits of the repeated -ELBO", minimum=0)

    def print_figures(self, found) -> None:
        super().print_figures(found)
        print(f"toy -ELBO {-found.elbo.elbo:.{self.digits}f}")

    def run(self, args) -> int:
        self.digits = args.toy_digits
        return super().run(args)


@pytest.fixture
def toys():
    PRIORS.register("toy_scaled")(ToyScaledPrior)
    DATASETS.register("toy-blobs")(ToyBlobs)
    ENGINES.register("toy_counting")(CountingEngine)
    COMMANDS.register("evaluate", replace=True)(EvaluateToyDigits)
    CountingEngine.steps = ToyBlobs.loads = 0
    try:
        yield
    finally:
        PRIORS.unregister("toy_scaled")
        DATASETS.unregister("toy-blobs")
        ENGINES.unregister("toy_counting")
        COMMANDS.register("evaluate", replace=True)(EvaluateCommand)


def test_toy_components_declared_once_train_reload_and_evaluate_from_the_command_line(toys, tmp_path, capsys):
    out = tmp_path / "run"
    status = main(["train", "--dataset", "toy-blobs", "--toy-points", "150", "--likelihood", "gaussian",
                   "--prior", "toy-scaled", "--toy-prior-scale", "3", "--compile", "toy_counting", "--epochs", "1",
                   "--latent-dim", "2", "--hidden-dim", "16", "--batch-size", "50", "--out", str(out), "--quiet",
                   "--no-plots", "--no-tensorboard"])
    assert status == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert (config["model"]["prior"], config["model"]["toy_prior_scale"]) == ("toy_scaled", 3.0)
    assert (config["data"]["dataset"], config["data"]["toy_points"], config["train"]["compile"]) == \
        ("toy-blobs", 150, "toy_counting")
    assert CountingEngine.steps == 3  # 125 training points in batches of 50: the toy engine took every step

    run = load_run(out)
    assert run.data.train_x.shape == (125, 6) and run.data.test_x.shape == (25, 6)
    assert torch.equal(run.data.test_x, ToyBlobs("toy-blobs", run.config.data).load().test_x)
    log_p0 = float(run.model.prior.distribution().log_prob(torch.zeros(2)))
    assert log_p0 == pytest.approx(-0.5 * 2 * math.log(2 * math.pi * 3.0 ** 2), rel=1e-6)  # N(0, 3^2 I) at 0

    capsys.readouterr()
    assert main(["evaluate", str(out), "--toy-digits", "2"]) == 0
    printed = capsys.readouterr().out
    figures = json.loads((out / "evaluation.json").read_text())
    assert f"toy -ELBO {-figures['elbo']['elbo']:.2f}" in printed


def test_the_toys_bounds_and_help_follow_their_declarations(toys, tmp_path, capsys):
    assert main(["train", "--prior", "toy_scaled", "--toy-prior-scale", "0", "--out", str(tmp_path / "a")]) == 2
    assert capsys.readouterr().err.strip() == "vae: error: model.toy_prior_scale must be positive, got 0.0"
    assert main(["train", "--dataset", "toy-blobs", "--toy-points", "-5", "--out", str(tmp_path / "b")]) == 2
    assert "data.toy_points must be positive, got -5" in capsys.readouterr().err
    assert main(["train", "--dataset", "toy-blobs", "--likelihood", "gaussian", "--conditional",
                 "--out", str(tmp_path / "d")]) == 2
    assert "dataset 'toy-blobs' has no labels, which a conditional VAE is trained on" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in "abd") and ToyBlobs.loads == 0  # refused before any load
    assert main(["evaluate", str(tmp_path), "--toy-digits", "-1"]) == 2
    assert capsys.readouterr().err.strip() == "vae: error: --toy-digits must be >= 0, got -1"
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--toy-prior-scale X toy prior: the scale s of N(0, s^2 I) [default: 2.0]" in text
    assert "--toy-points N toy dataset: how many points [default: 120]" in text and "toy_counting" in text


def test_a_toy_unregistered_leaves_no_flag_behind(tmp_path, capsys):
    assert "toy_scaled" not in PRIORS and "toy-blobs" not in DATASETS and "toy_counting" not in ENGINES
    assert main(["train", "--toy-prior-scale", "3", "--out", str(tmp_path / "c")]) == 2
    assert "unrecognized arguments: --toy-prior-scale" in capsys.readouterr().err
