"""A run folder: everything needed to reload, evaluate or retrain a model.

    config.json          RunConfig (rebuilds model and guide without the command line)
    config.yaml          the same, as a file for ``vae train --config`` (inference/config_files.py)
    versions.json        Python, torch, Pyro, NumPy versions, seed, device
    weights.pt           {"model": state_dict, "guide": state_dict}  (weights_only)
    checkpoint.pt        everything ``vae train --resume`` needs (inference/resume.py)
    metrics.jsonl        one line per epoch: train objective, test ELBO, distortion D, rate R, seconds
    samples.png          E[x | z], z ~ p(z)
    samples_ex_post.png  E[x | z], z from a mixture fitted to the codes (``vae sample --ex-post K``, inference/ex_post.py)
    reconstructions.png  test images above their reconstructions
    train.log            notices, logged steps and epochs (inference/monitors.py)
    tensorboard/         TensorBoard events, when installed (off: --no-tensorboard)
    curves.png, latent_space.png, interpolations.png, neighbours.png, manifold.png (2-D codes): inference/plots.py
    report.html          ``vae report RUN`` (inference/report.py)
"""
from __future__ import annotations

import json
import platform
import shutil
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import pyro
import torch
from torch import nn
from tqdm import tqdm

from . import distributed
from .build import build_model_and_guide, resolve_device
from .checkpoint import atomic_write_text, load_module_state, load_state, save_state
from .config import RunConfig
from .config_files import write_config_file
from .data import ImageData, MinibatchStream, load_dataset, prepare
from .errors import UserError
from .evaluation import evaluate_elbo
from .images import save_prior_samples, save_reconstructions
from .objectives import build_objective
from .resume import CHECKPOINT, TrainingInterrupted, TrainingState, load_checkpoint, save_checkpoint, set_rng_state
from .fast_trainer import build_trainer
from .plots import PLOTS, write_plots
from .monitors import LOG, TENSORBOARD, Monitor, default_monitors, epoch_line, step_values
from .trainer import NumericalFault

CONFIG, VERSIONS, WEIGHTS, METRICS = "config.json", "versions.json", "weights.pt", "metrics.jsonl"
CONFIG_FILE = "config.yaml"
SAMPLES, RECONSTRUCTIONS, EVALUATION = "samples.png", "reconstructions.png", "evaluation.json"
SAMPLES_EX_POST, REPORT = "samples_ex_post.png", "report.html"  # written after training, by vae sample / report
RUN_MARKERS = (CONFIG, WEIGHTS, METRICS, CHECKPOINT)
LOG_EVERY = 50  # steps between progress-bar reads (each read waits for the device)


def _floats(values: list) -> list[float]:
    """Per-step values as floats; the device tensors among them are read in one transfer."""
    tensors = [v for v in values if torch.is_tensor(v)]
    read = iter(torch.stack(tensors).tolist() if tensors else ())
    return [next(read) if torch.is_tensor(v) else float(v) for v in values]


def _example_batches(stream: MinibatchStream, labels: Optional[torch.Tensor]) -> list:
    """One batch of each size an epoch has (full, and the remainder), for capturing the graphs up front."""
    sizes = sorted({min(stream.batch_size, stream.num_data), stream.num_data % stream.batch_size} - {0})
    idx = [torch.arange(n, device=stream.device) for n in sizes]
    return [(stream.x[: len(i)].to(stream.device), stream.num_data, i, None if labels is None else labels[i])
            for i in idx]


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

    @property
    def can_sample(self) -> bool:
        """False for a prior without samples (the flat prior of the plain autoencoder family)."""
        return getattr(self.model.prior, "can_sample", True)

    @property
    def sample_label(self) -> Optional[int]:
        """The class a conditional VAE's pictures of prior samples are drawn for (0); None when unconditional."""
        return 0 if self.config.model.conditional else None

    def labels(self, split: str = "test") -> Optional[torch.Tensor]:
        """The labels a conditional VAE is conditioned on; None for an unconditional one."""
        return getattr(self.data, f"{split}_y") if self.config.model.conditional else None

    def evaluate(self, seed: int = 0):
        """Test ELBO, distortion and rate; in a data-parallel job each rank scores its shard and the sums meet."""
        def on(x, y, s):
            return evaluate_elbo(self.model, self.guide, x, self.config.train.eval_batch_size, s, y=y)

        if distributed.current().active:
            return distributed.sharded_evaluate(on, self.data.test_x, self.labels(), seed)
        return on(self.data.test_x, self.labels(), seed)


def setup(config: RunConfig, device: Optional[str] = None) -> Run:
    """Seed, load and prepare the data, build model and guide on the device."""
    config.validate()
    dev = distributed.local_device(resolve_device(device or config.train.device))
    data = place(prepare(load_dataset(config.data), config.data.binarize), dev, config.train.data_placement)
    if config.model.conditional:
        _check_labels(data, config.model.num_classes)
    pyro.set_rng_seed(config.train.seed)
    try:
        model, guide = build_model_and_guide(config.model, config.guide, data.event_shape)
    except ValueError as err:  # e.g. a conv network for images whose size it cannot take
        raise UserError(str(err)) from None
    model, guide = model.to(dev), guide.to(dev)
    return Run(config, model, guide, data, dev)


def train(run: Run, out: Optional[Path] = None, quiet: bool = True, resume: Optional[TrainingState] = None,
          checkpoint_every: int = 0, stop_requested: Callable[[], bool] = lambda: False,
          monitors: Sequence[Monitor] = ()) -> list[dict]:
    """Train ``run`` by SVI for ``config.train.epochs``; with ``out``, keep the run folder current:
    metrics and weights each epoch, ``checkpoint.pt`` every ``checkpoint_every`` steps and at each
    epoch end. ``resume`` continues from a checkpoint's state exactly; when ``stop_requested()``
    turns true after a step, a checkpoint is written and ``TrainingInterrupted`` raised. ``monitors``
    (``inference.monitors``) see the notices, every ``LOG_EVERY``-th step and each epoch."""
    cfg, ctx = run.config.train, distributed.current()
    if not ctx.is_main:  # rank 0 alone writes the run folder and reports
        out, quiet, monitors = None, True, ()
    objective = build_objective(run.config.objective)
    stream = MinibatchStream(run.data.train_x, cfg.batch_size, dynamic=run.config.data.binarize == "dynamic",
                             device=run.device)
    labels = run.labels("train")
    build = distributed.build_data_parallel_trainer if ctx.active else build_trainer
    trainer, notice = build(run.model, run.guide, objective, cfg.lr, cfg.clip_norm, cfg.compile,
                            planned_steps=cfg.epochs * len(stream), examples=_example_batches(stream, labels))
    if notice and not quiet:
        print(notice, file=sys.stderr)
    for monitor in monitors if notice else ():
        monitor.note(notice)
    state = resume or TrainingState()
    if resume is not None:
        if resume.optimizer.get("engine") != trainer.engine:
            raise UserError(f"the checkpoint's optimizer state is from the {resume.optimizer.get('engine', 'pyro')} "
                            f"engine, this run trains on the {trainer.engine} one; "
                            f"resume with the same --compile and --nproc")
        trainer.load_optimizer_state(resume.optimizer)
        trainer.steps, objective.step = resume.steps, resume.objective_step
        set_rng_state(resume.rng)
    if ctx.rank:  # its own draws (the data order comes from rank 0)
        pyro.set_rng_seed(cfg.seed + 7919 * ctx.rank + trainer.steps)

    last_good = ["none was written yet"]

    def fail(fault: NumericalFault, epoch: int):
        if isinstance(fault, distributed.WorkerLost):
            raise UserError(f"training stopped: {fault} (epoch {epoch}); last complete checkpoint: {last_good[0]}; "
                            f"resume with: vae train --resume {run.path} --nproc {ctx.world_size}") from None
        raise UserError(f"training stopped: {fault} (epoch {epoch}); the parameters were not updated "
                        f"with it; last good checkpoint: {last_good[0]}; try a lower --lr or --clip-norm") from None

    def check_faults(epoch: int) -> None:
        try:
            trainer.check()
        except (NumericalFault, distributed.WorkerLost) as fault:
            fail(fault, epoch)

    def checkpoint(epoch: int) -> None:
        check_faults(epoch)
        state.steps, state.optimizer = trainer.steps, trainer.optimizer_state()
        state.objective_step = getattr(objective, "step", 0)
        state.epoch_values = _floats(state.epoch_values)
        save_checkpoint(out / CHECKPOINT, run.model, run.guide, state)
        last_good[0] = f"{out / CHECKPOINT} (after step {trainer.steps})"

    log_every = min(LOG_EVERY, max(1, len(stream) // 2))  # at least two reads an epoch
    for epoch in range(state.epoch + 1, cfg.epochs + 1):
        if state.perm is None:
            state.perm, state.step_in_epoch, state.epoch_values = distributed.broadcast(stream.permutation()), 0, []
        start = logged = time.perf_counter()
        batches = stream.batches(state.perm, state.step_in_epoch)
        with tqdm(batches, total=len(stream), initial=state.step_in_epoch, desc=f"epoch {epoch}/{cfg.epochs}",
                  disable=quiet, leave=False, file=sys.stderr) as bar:
            for idx, x in bar:
                try:
                    loss = trainer.step(x, stream.num_data, idx, None if labels is None else labels[idx])
                except (NumericalFault, distributed.WorkerLost) as fault:
                    fail(fault, epoch)
                state.epoch_values.append(-loss / stream.num_data)  # a device tensor on the fast engine: not read
                state.step_in_epoch += 1
                if (monitors or not quiet) and state.step_in_epoch % log_every == 0:
                    check_faults(epoch)
                    now = time.perf_counter()
                    values = step_values(run, trainer, x, None if labels is None else labels[idx], loss,
                                         stream.num_data, cfg.lr, log_every * cfg.batch_size / (now - logged))
                    logged = now
                    bar.set_postfix(elbo=f"{values['elbo']:.2f}", D=f"{values['distortion']:.2f}",
                                    R=f"{values['rate']:.2f}", refresh=False)
                    for monitor in monitors:
                        monitor.log_step(trainer.steps, values)
                stop = stop_requested()
                if out is not None and (stop or (checkpoint_every and trainer.steps % checkpoint_every == 0)):
                    checkpoint(epoch)
                if stop:
                    raise TrainingInterrupted(f"stopped at epoch {epoch}, step {state.step_in_epoch}")
        check_faults(epoch)
        seconds = time.perf_counter() - start
        try:
            report = run.evaluate(seed=cfg.seed)
        except distributed.WorkerLost as lost:
            fail(lost, epoch)
        values = _floats(state.epoch_values)
        train_value = sum(values) / len(values)
        state.metrics.append({"epoch": epoch, "steps": trainer.steps, "train_objective": train_value,
                              "test_elbo": report.elbo, "test_distortion": report.distortion,
                              "test_rate": report.rate, "seconds": seconds})
        state.epoch, state.perm, state.step_in_epoch, state.epoch_values = epoch, None, 0, []
        if not quiet:
            print(epoch_line(state.metrics[-1]), file=sys.stderr)
        for monitor in monitors:
            monitor.end_epoch(run, state.metrics[-1])
        if out is not None:
            atomic_write_text(out / METRICS, "".join(json.dumps(m, sort_keys=True) + "\n" for m in state.metrics))
            save_weights(run, out / WEIGHTS)
            checkpoint(epoch)
    return state.metrics


def read_metrics(folder: Path) -> list[dict]:
    """The rows of ``folder/metrics.jsonl``, one per finished epoch ([] before the first)."""
    path = Path(folder) / METRICS
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def save_weights(run: Run, path: Path) -> None:
    save_state(path, {"model": run.model.state_dict(), "guide": run.guide.state_dict()})


def place(data: ImageData, device: torch.device, placement: str = "auto") -> ImageData:
    """Everything on ``device``, except training images that are to be streamed from the host."""
    on_device = placement == "device" or device.type != "cuda" or (
        placement == "auto" and data.train_x.nbytes < 0.5 * torch.cuda.mem_get_info(device)[0])
    if on_device:
        return data.to(device)
    return ImageData(data.name, data.train_x, *(t.to(device) for t in (data.train_y, data.test_x, data.test_y)))


def _check_labels(data: ImageData, num_classes: int) -> None:
    for split in ("train", "test"):
        y = getattr(data, f"{split}_y")
        if y.numel() and not (0 <= int(y.min()) and int(y.max()) < num_classes):
            raise UserError(f"the {split} labels lie in [{int(y.min())}, {int(y.max())}], outside 0..{num_classes - 1}; "
                            f"the conditional VAE needs labels 0..K-1 with K = model.num_classes")


@contextmanager
def stop_on_signals():
    """SIGINT and SIGTERM ask training to stop after the current step (a flag, not an exception)."""
    requested = []
    handler = lambda signum, frame: requested.append(signum)  # noqa: E731
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: bool(requested)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _finish(run: Run, out: Path, quiet: bool, resume: Optional[TrainingState], checkpoint_every: int,
            tensorboard: Optional[bool], plots: bool, monitors: Sequence[Monitor]) -> list[dict]:
    main = distributed.current().is_main
    monitors = default_monitors(out, tensorboard) + list(monitors) if main else []
    try:
        with stop_on_signals() as stop_requested:
            try:
                metrics = train(run, out, quiet, resume, checkpoint_every, stop_requested, monitors)
            except TrainingInterrupted as stopped:
                world = distributed.current().world_size
                raise TrainingInterrupted(f"{stopped}; checkpoint written; resume with: vae train --resume {out}"
                                          + (f" --nproc {world}" if world > 1 else "")) from None
    finally:
        for monitor in monitors:
            monitor.close()
    if main:
        if run.can_sample:
            save_prior_samples(run.model, out / SAMPLES, seed=run.config.train.seed, label=run.sample_label)
        save_reconstructions(run.model, run.guide, run.data.test_x, out / RECONSTRUCTIONS, y=run.labels())
        if plots:
            write_plots(run, out, metrics)
    distributed.finish()
    return metrics


def train_run(config: RunConfig, out: Path, force: bool = False, quiet: bool = False, checkpoint_every: int = 0,
              tensorboard: Optional[bool] = None, plots: bool = True, monitors: Sequence[Monitor] = ()) -> list[dict]:
    """``vae train``: validate everything, then train into the run folder ``out``; ``train.log`` always,
    TensorBoard events in ``out/tensorboard`` (``None``: when installed), the plots of ``inference.plots``,
    and the caller's own ``monitors``."""
    out = Path(out)
    config.validate()
    ctx = distributed.initialize(resolve_device(config.train.device))  # a torchrun job: join it
    check_output_folder(out, force)  # before the data load: fail fast, touch nothing
    distributed.barrier()  # every rank has looked before rank 0 writes
    run = setup(config)
    run.path = out
    if ctx.is_main:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot create output folder {out}: {err.strerror}; choose another --out") from None
        for stale in (EVALUATION, CHECKPOINT, LOG, SAMPLES_EX_POST, REPORT, *PLOTS):  # --force: nothing of the old run survives
            (out / stale).unlink(missing_ok=True)
        shutil.rmtree(out / TENSORBOARD, ignore_errors=True)
        write_json(out / CONFIG, config.to_dict())
        write_config_file(out / CONFIG_FILE, config.to_dict())
        write_json(out / VERSIONS, {**library_versions(), "seed": config.train.seed, "device": str(run.device),
                                    "processes": ctx.world_size})
    return _finish(run, out, quiet, None, checkpoint_every, tensorboard, plots, monitors)


def resume_run(out: Path, quiet: bool = False, checkpoint_every: int = 0, tensorboard: Optional[bool] = None,
               plots: bool = True, monitors: Sequence[Monitor] = ()) -> list[dict]:
    """``vae train --resume RUN``: continue a run from its ``checkpoint.pt`` exactly where it stopped."""
    out = Path(out)
    if not (out / CHECKPOINT).is_file():
        raise UserError(f"{out} has no {CHECKPOINT} to resume from; was it written by 'vae train'?")
    config = RunConfig.load(out / CONFIG)
    distributed.initialize(resolve_device(config.train.device))
    run = setup(config)
    modules, state = load_checkpoint(out / CHECKPOINT, map_location=run.device)
    load_module_state(run.model, modules["model"], "model")
    load_module_state(run.guide, modules["guide"], "guide")
    run.path = out
    return _finish(run, out, quiet, state, checkpoint_every, tensorboard, plots, monitors)


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
