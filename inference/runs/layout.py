"""The names of a run folder's files, all of them, in one place (the folder's format; nothing else names a file)::

    config.json          RunConfig (rebuilds model and guide without the command line)
    config.yaml          the same, as a file for ``vae train --config`` (inference/config/files.py)
    versions.json        Python, torch, Pyro, NumPy versions, seed, device
    data.json            the data as trained on: name, shape, sizes, class names (label i is classes[i]), columns
    weights.pt           {"model": state_dict, "guide": state_dict, "params": the pyro.param values, if any}
    run.lock             the writer's lock: its pid and command while it writes (inference/runs/lock.py)
    snapshot.lock        held while a snapshot (config; metrics, weights, checkpoint) is replaced
    checkpoint.pt        everything ``vae train --resume`` needs (inference/runs/writer.py, training/state.py)
    metrics.jsonl        one line per epoch: train objective, test ELBO, distortion D, rate R, seconds
    evaluation.json      ``vae evaluate RUN``'s figures
    samples.png          E[x | z], z ~ p(z): an image grid, or for arrays a heat map beside test rows (and samples.csv)
    samples_ex_post.png  E[x | z], z from a mixture fitted to the codes (``vae sample --ex-post K``)
    reconstructions.png  test images above their reconstructions (arrays: heat maps, and reconstructions.csv)
    train.log            notices, logged steps and epochs (inference/training/monitors.py)
    tensorboard/         TensorBoard events, when installed (off: --no-tensorboard)
    diagnostics/         ``vae diagnose RUN``'s ArviZ data, tables and figures
    curves.png, latent_space.png, manifold.png, interpolations.png, neighbours.png  the plots (manifold.png
                         for 2-D codes; inference/report/plots.py)
    report.html          ``vae report RUN`` (inference/report/html.py)

Readers (``load_run``, ``vae evaluate``, the report) import this module and ``runs/run.py``, never training code.
"""
from __future__ import annotations

import json
from pathlib import Path

CONFIG, CONFIG_FILE, VERSIONS, DATA = "config.json", "config.yaml", "versions.json", "data.json"
WEIGHTS, CHECKPOINT, METRICS = "weights.pt", "checkpoint.pt", "metrics.jsonl"
RUN_LOCK, SNAPSHOT_LOCK = "run.lock", "snapshot.lock"
LOG, TENSORBOARD = "train.log", "tensorboard"
SAMPLES, RECONSTRUCTIONS, EVALUATION = "samples.png", "reconstructions.png", "evaluation.json"
SAMPLES_EX_POST, REPORT = "samples_ex_post.png", "report.html"  # written after training, by vae sample / report
DIAGNOSTICS = "diagnostics"  # a folder, written by vae diagnose
CURVES, LATENT, MANIFOLD, INTERPOLATIONS, NEIGHBOURS = (
    "curves.png", "latent_space.png", "manifold.png", "interpolations.png", "neighbours.png")
PLOTS = (CURVES, LATENT, MANIFOLD, INTERPOLATIONS, NEIGHBOURS)

RUN_MARKERS = (CONFIG, WEIGHTS, METRICS, CHECKPOINT)  # a folder that holds one of them holds a run
LOCK_FILES = (RUN_LOCK, SNAPSHOT_LOCK)
FOLDERS = (TENSORBOARD, DIAGNOSTICS)


def csv_path(path: Path | str) -> Path:
    """``samples.png`` -> ``samples.csv``: the numbers behind an array run's heat map."""
    return Path(path).with_suffix(".csv")


def results() -> tuple[str, ...]:
    """Every file a run's training or a later command writes, besides the config, versions and lock files:
    what starting a run over (``--force``) removes."""
    pictures = (SAMPLES, SAMPLES_EX_POST, RECONSTRUCTIONS)
    return (WEIGHTS, METRICS, EVALUATION, CHECKPOINT, LOG, REPORT, DATA, *pictures, *PLOTS,
            *(csv_path(p).name for p in pictures))


def read_metrics(folder: Path) -> list[dict]:
    """The rows of ``folder/metrics.jsonl``, one per finished epoch ([] before the first)."""
    path = Path(folder) / METRICS
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
