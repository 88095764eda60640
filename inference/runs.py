"""A run folder: everything needed to reload, evaluate or retrain a model.

    config.json          RunConfig (rebuilds model and guide without the command line)
    versions.json        Python, torch, Pyro, NumPy versions, seed, device
    weights.pt           {"model": state_dict, "guide": state_dict}  (weights_only)
    metrics.jsonl        one line per epoch: train objective, test ELBO, distortion D, rate R, seconds
    samples.png          E[x | z], z ~ p(z)
    reconstructions.png  test images above their reconstructions
"""
from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pyro
import torch
from torch import nn
from tqdm import tqdm

from .build import build_model_and_guide, resolve_device
from .checkpoint import atomic_write_text, load_module_state, load_state, save_state
from .config import RunConfig
from .data import ImageData, MinibatchStream, load_dataset, prepare
from .errors import UserError
from .evaluation import evaluate_elbo
from .images import save_prior_samples, save_reconstructions
from .objectives import build_objective
from .trainer import SVITrainer

CONFIG, VERSIONS, WEIGHTS, METRICS = "config.json", "versions.json", "weights.pt", "metrics.jsonl"
SAMPLES, RECONSTRUCTIONS, EVALUATION = "samples.png", "reconstructions.png", "evaluation.json"
RUN_MARKERS = (CONFIG, WEIGHTS, METRICS)


def library_versions() -> dict:
    import arviz

    return {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
            "pyro": pyro.__version__, "numpy": np.__version__, "arviz": arviz.__version__}


def check_output_folder(out: Path, force: bool) -> None:
    """Refuse to write into a folder that holds a run unless ``force``; refuse a file."""
    if out.exists() and not out.is_dir():
        raise UserError(f"output path {out} exists and is not a folder; choose another --out")
    if not force and out.is_dir() and any((out / name).exists() for name in RUN_MARKERS):
        raise UserError(f"output folder {out} already holds a run; pass --force to overwrite it or choose another --out")


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


@dataclass
class Run:
    """A model, its guide and the data they were trained on, as loaded or trained."""

    config: RunConfig
    model: nn.Module
    guide: nn.Module
    data: ImageData
    device: torch.device
    path: Optional[Path] = None

    def labels(self, split: str = "test") -> Optional[torch.Tensor]:
        """The labels a conditional VAE is conditioned on; None for an unconditional one."""
        return getattr(self.data, f"{split}_y") if self.config.model.conditional else None

    def evaluate(self, seed: int = 0):
        return evaluate_elbo(self.model, self.guide, self.data.test_x, self.config.train.eval_batch_size, seed,
                             y=self.labels())


def setup(config: RunConfig, device: Optional[str] = None) -> Run:
    """Seed, load and prepare the data, build model and guide on the device."""
    config.validate()
    dev = resolve_device(device or config.train.device)
    data = prepare(load_dataset(config.data), config.data.binarize).to(dev)
    pyro.set_rng_seed(config.train.seed)
    model, guide = build_model_and_guide(config.model, config.guide, data.event_shape)
    model, guide = model.to(dev), guide.to(dev)
    return Run(config, model, guide, data, dev)


def train(run: Run, out: Optional[Path] = None, quiet: bool = True) -> list[dict]:
    """Train ``run`` by SVI for ``config.train.epochs``; with ``out``, keep the run folder current."""
    cfg = run.config.train
    trainer = SVITrainer(run.model, run.guide, lr=cfg.lr, loss=build_objective(run.config.objective))
    stream = MinibatchStream(run.data.train_x, cfg.batch_size, dynamic=run.config.data.binarize == "dynamic")
    metrics: list[dict] = []
    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        with tqdm(stream, desc=f"epoch {epoch}/{cfg.epochs}", disable=quiet, leave=False, file=sys.stderr) as bar:
            train_elbo = trainer.train_epoch(
                bar, stream.num_data, on_step=lambda elbo: bar.set_postfix(elbo=f"{elbo:.2f}", refresh=False),
                labels=run.labels("train"))
        seconds = time.perf_counter() - start
        report = run.evaluate(seed=cfg.seed)
        metrics.append({"epoch": epoch, "steps": trainer.steps, "train_objective": train_elbo,
                        "test_elbo": report.elbo, "test_distortion": report.distortion, "test_rate": report.rate,
                        "seconds": seconds})
        if not quiet:
            print(f"epoch {epoch:3d}  train objective {train_elbo:9.3f}  test ELBO {report.elbo:9.3f}  "
                  f"(D {report.distortion:8.3f}, R {report.rate:7.3f})  {seconds:6.2f}s", file=sys.stderr)
        if out is not None:
            atomic_write_text(out / METRICS, "".join(json.dumps(m, sort_keys=True) + "\n" for m in metrics))
            save_weights(run, out / WEIGHTS)
    return metrics


def save_weights(run: Run, path: Path) -> None:
    save_state(path, {"model": run.model.state_dict(), "guide": run.guide.state_dict()})


def train_run(config: RunConfig, out: Path, force: bool = False, quiet: bool = False) -> list[dict]:
    """``vae train``: validate everything, then train into the run folder ``out``."""
    out = Path(out)
    check_output_folder(out, force)  # before the data load: fail fast, touch nothing
    run = setup(config)
    out.mkdir(parents=True, exist_ok=True)
    (out / EVALUATION).unlink(missing_ok=True)  # --force: no figure of the old run survives beside the new one
    run.path = out
    write_json(out / CONFIG, config.to_dict())
    write_json(out / VERSIONS, {**library_versions(), "seed": config.train.seed, "device": str(run.device)})
    metrics = train(run, out, quiet)
    save_prior_samples(run.model, out / SAMPLES, seed=config.train.seed,
                       label=0 if config.model.conditional else None)
    save_reconstructions(run.model, run.guide, run.data.test_x, out / RECONSTRUCTIONS, y=run.labels())
    return metrics


def load_run(path: Path, device: str = "cpu") -> Run:
    """Rebuild model and guide from ``path/config.json`` and load ``path/weights.pt``."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"run folder {path} does not exist")
    config = RunConfig.load(path / CONFIG)
    run = setup(config, device)
    state = load_state(path / WEIGHTS, map_location=run.device)
    for part in ("model", "guide"):
        if not isinstance(state.get(part), dict):
            raise UserError(f"{path / WEIGHTS} has no {part} state; it was not written by 'vae train'")
    load_module_state(run.model, state["model"], "model")
    load_module_state(run.guide, state["guide"], "guide")
    run.path = path
    return run
