"""What watches a training run (as Lightning's callbacks, without Lightning): a plain log file, TensorBoard,
and the run folder's writer (``pyro_vae.inference.runs.writer.RunFolder``).

``pyro_vae.inference.training.loop.train(run, monitors=[LogFile(path), TensorBoard(folder)])`` calls each
monitor's ``begin`` before the first step, ``note`` for one-line notices, ``log_step`` every ``LOG_EVERY``
steps with the minibatch figures (ELBO, distortion D, rate R in nats per point, gradient norm before
clipping, learning rate, images per second), ``after_step`` after every step, ``end_epoch`` with the
epoch's row of metrics, then ``after_epoch``; ``close`` at the end, also when training fails. A monitor
that saves the training state reads it with ``progress.snapshot()`` and says where in ``last_checkpoint``
(the fault messages name it).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from pyro_vae.inference.evaluate.elbo import elbo_terms, evaluation_mode
from pyro_vae.inference.training.state import TrainingState


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


@dataclass
class Progress:
    """What a monitor sees of the loop after a step: the run, the trainer, the epoch, whether training stops
    after this step (a signal), and the training state."""

    run: Any
    trainer: Any
    epoch: int
    stopping: bool
    _snapshot: Callable[[], TrainingState]

    def snapshot(self) -> TrainingState:
        """The training state as of now, complete (step count, optimizer state, per-step values read), after
        the trainer's numerical checks: what a checkpoint saves."""
        return self._snapshot()


class Monitor:
    """The base of every monitor: each hook does nothing unless overridden."""

    last_checkpoint: Optional[str] = None  # where the training state was last saved (for the fault messages)

    def begin(self, run, state: TrainingState) -> None:
        """Called once before the first step with the ``Run`` and the training state it starts from."""
        pass

    def note(self, text: str) -> None:
        """Called with a one-line notice (an engine given up, a resumed run)."""
        pass

    def after_step(self, progress: Progress) -> None:
        """Called after every step."""
        pass

    def after_epoch(self, progress: Progress) -> None:
        """Called after each epoch, after ``end_epoch``."""
        pass

    def log_step(self, step: int, values: dict) -> None:
        """Called every ``LOG_EVERY`` steps with the minibatch figures (elbo, distortion, rate, grad_norm, lr, images_per_s)."""
        pass

    def end_epoch(self, run, metrics: dict) -> None:
        """Called at the end of each epoch with its row of metrics (what ``metrics.jsonl`` holds)."""
        pass

    def close(self) -> None:
        """Called once at the end, also when training fails."""
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
