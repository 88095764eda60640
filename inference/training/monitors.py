"""What watches a training run: a plain log file, TensorBoard (as Lightning's loggers, without Lightning).

``pyro_vae.inference.training.loop.train(..., monitors=[LogFile(path), TensorBoard(folder)])`` calls each monitor's
``note`` for one-line notices, ``log_step`` every ``LOG_EVERY`` steps with the minibatch figures
(ELBO, distortion D, rate R in nats per point, gradient norm before clipping, learning rate, images
per second) and ``end_epoch`` with the epoch's row of ``metrics.jsonl``; ``close`` at the end.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import torch

from pyro_vae.inference.evaluate.elbo import elbo_terms, evaluation_mode

LOG, TENSORBOARD = "train.log", "tensorboard"  # in the run folder


def epoch_line(m: dict) -> str:
    return (f"epoch {m['epoch']:3d}  train objective {m['train_objective']:9.3f}  test ELBO {m['test_elbo']:9.3f}  "
            f"(D {m['test_distortion']:8.3f}, R {m['test_rate']:7.3f})  {m['seconds']:6.2f}s")


def step_values(run, trainer, x: torch.Tensor, y: Optional[torch.Tensor], loss, num_data: int, lr: float,
                images_per_s: float) -> dict:
    """The minibatch's figures for the progress bar and the monitors; the batch's D and R are scored on
    a private random stream (training's draws are untouched)."""
    with evaluation_mode(trainer.steps, x.device, run.model, run.guide):
        distortion, rate = elbo_terms(run.model, run.guide, x, y)
    values = {"elbo": -float(loss) / num_data, "distortion": float(distortion.mean()), "rate": float(rate.mean()),
              "lr": lr, "images_per_s": images_per_s}
    norm = getattr(trainer, "grad_norm", None)
    if norm is not None:
        values["grad_norm"] = float(norm)
    return values


class Monitor:
    def note(self, text: str) -> None:
        pass

    def log_step(self, step: int, values: dict) -> None:
        pass

    def end_epoch(self, run, metrics: dict) -> None:
        pass

    def close(self) -> None:
        pass


class LogFile(Monitor):
    """``train.log``: the notices, one line per logged step and per epoch, appended with a time stamp."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.file = self.path.open("a", buffering=1)

    def _write(self, text: str) -> None:
        self.file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {text}\n")

    def note(self, text: str) -> None:
        self._write(text)

    def log_step(self, step: int, values: dict) -> None:
        self._write(f"step {step}  " + "  ".join(f"{k} {v:.4g}" for k, v in values.items()))

    def end_epoch(self, run, metrics: dict) -> None:
        self._write(epoch_line(metrics))

    def close(self) -> None:
        self.file.close()


def default_monitors(out: Path, tensorboard: Optional[bool] = None) -> list[Monitor]:
    """``out/train.log``, and TensorBoard in ``out/tensorboard`` when asked for (None: when installed)."""
    chosen: list[Monitor] = [LogFile(Path(out) / LOG)]
    if tensorboard or (tensorboard is None and tensorboard_available()):
        chosen.append(TensorBoard(Path(out) / TENSORBOARD))
    return chosen


def tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


class TensorBoard(Monitor):
    """``torch.utils.tensorboard``: scalars per logged step (train/...) and per epoch (test/...), and each
    epoch the grids of prior samples and reconstructions and a histogram of the test codes' means."""

    def __init__(self, folder: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(folder))

    def log_step(self, step: int, values: dict) -> None:
        for key, value in values.items():
            self.writer.add_scalar(f"train/{key}", value, step)

    def end_epoch(self, run, metrics: dict) -> None:
        from pyro_vae.inference.evaluate.autoencoders import codes
        from pyro_vae.inference.report.images import grid, prior_samples, reconstruction_grid

        step = metrics["steps"]
        self.writer.add_scalar("train/epoch_objective", metrics["train_objective"], step)
        for key in ("elbo", "distortion", "rate"):
            self.writer.add_scalar(f"test/{key}", metrics[f"test_{key}"], step)
        x, y = run.data.test_x[:1000], run.labels()
        y = None if y is None else y[:1000]
        if run.can_sample and run.data.is_image:
            samples = run.data.original(prior_samples(run.model, 64, run.config.train.seed, run.sample_label))
            self.writer.add_image("samples", grid(samples, 8), step)
        with evaluation_mode(0, x.device, run.model, run.guide):
            if run.data.is_image and run.data.shift is None:
                self.writer.add_image("reconstructions", reconstruction_grid(run.model, run.guide, x, y=y), step)
            self.writer.add_histogram("latent_means", codes(run.guide, x, y), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
