"""The names of a run folder's files, all of them, in one place (the folder's format; nothing else names a file)::

    config.json          RunConfig (rebuilds model and guide without the command line)
    config.yaml          the same, as a file for ``vae train --config`` (inference/config/files.py)
    versions.json        Python, torch, Pyro, NumPy versions, seed, device
    data.json            the data as trained on: name, shape, sizes, class names (label i is classes[i]), columns
    weights.pt           {"model": state_dict, "guide": state_dict, "params": the pyro.param values, if any, "config":
                         the config it was trained under, "digest": SHA-256 of the rest (runs/digest.py)}
    run.lock             the writer's lock: its pid and command while it writes (inference/runs/lock.py)
    snapshot.lock        held while a snapshot (config; metrics, weights, checkpoint) is replaced
    checkpoint.pt        everything ``vae train --resume`` needs (inference/runs/writer.py, training/state.py), with
                         its batch size, config and digest (checked as weights.pt's)
    metrics.jsonl        one line per epoch: train objective, test ELBO, distortion D, rate R, seconds
    evaluation.json      ``vae evaluate RUN``'s figures, with the SHA-256 of the weights.pt they scored
    samples.png          E[x | z], z ~ p(z): an image grid, or for arrays a heat map beside test rows (and samples.csv)
    samples_ex_post.png  E[x | z], z from a mixture fitted to the codes (``vae sample --ex-post K``)
    reconstructions.png  test images above their reconstructions (arrays: heat maps, and reconstructions.csv)
    train.log            notices, logged steps and epochs (inference/training/monitors.py)
    tensorboard/         TensorBoard events, when installed (off: --no-tensorboard)
    diagnostics/         ``vae diagnose RUN``'s ArviZ data, tables and figures
    curves.png, latent_space.png, manifold.png, interpolations.png, neighbours.png  the plots (manifold.png
                         for 2-D codes; inference/report/plots.py)
    report.html          ``vae report RUN`` (inference/report/html.py)

Each JSON file has its schema here (``SCHEMAS``, ``METRICS_ROW``; the checks are ``runs/json_checks.py``):
``read_json`` and ``read_metrics`` read a file only if it is a regular file of the folder and of its schema,
else one line naming it and how to get a good one back. ``config.json``'s sections are checked by
``RunConfig.from_dict``.

Readers (``load_run``, ``vae evaluate``, the report) import this module and ``runs/run.py``, never training code.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional

from pyro_vae.inference.errors import UserError
from pyro_vae.inference.runs.paths import kind_of, not_replaced, open_regular, read_regular
from pyro_vae.inference.runs.json_checks import ANY, MAX_JSON_BYTES, Maybe, Obj, parse_json, problem

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
# what a run cannot write again without training again: no command's output may replace one of them
RECORD = (CONFIG, CONFIG_FILE, VERSIONS, DATA, WEIGHTS, CHECKPOINT, METRICS, LOG, *LOCK_FILES)
FOLDERS = (TENSORBOARD, DIAGNOSTICS)


def csv_path(path: Path | str) -> Path:
    """``samples.png`` -> ``samples.csv``: the numbers behind an array run's heat map."""
    return Path(path).with_suffix(".csv")


def check_entries(folder: Path) -> None:
    """Refuse, in one line, a run folder that holds a link, pipe, device or socket (anywhere but in
    ``tensorboard/``): its files are read, replaced and deleted in place, which would reach through it."""
    for root, dirs, names in os.walk(folder):
        if Path(root) == Path(folder) and TENSORBOARD in dirs:
            dirs.remove(TENSORBOARD)
        for name in [*dirs, *names]:
            kind = kind_of(Path(root) / name)
            if kind not in (None, "a folder"):
                raise UserError(f"{Path(root) / name} in run folder {folder} is {kind}; a run folder holds its own "
                                f"files only (nothing is read or written through it): replace it with the file, or "
                                f"remove it")


def record_problem(path: Path | str) -> Optional[str]:
    """Why writing ``path`` would damage a run (None: it would not): it names one of ``RECORD`` in a folder that
    holds a run (``vae evaluate RUN --json RUN/weights.pt`` replaced the weights by the figures)."""
    path = Path(path)
    if path.name in RECORD and any(os.path.lexists(path.parent / name) for name in RUN_MARKERS):
        return f"names the run's own {path.name} in {path.parent}, which writing would replace; write elsewhere"
    return None


def output_file_problem(path) -> Optional[str]:
    """Why an output file option's ``path`` cannot be written (an option's ``check``; ``paths.output_folder_problem``
    is a folder's), or None: a regular file or a new path in an existing folder, and not a run's record
    (``record_problem``)."""
    kind = kind_of(Path(path))
    if kind:
        return not_replaced(kind)
    parent = Path(path).parent
    if not parent.is_dir():
        return f"is in {parent}, which is not a folder; create it first"
    return record_problem(path)


def results() -> tuple[str, ...]:
    """Every file a run's training or a later command writes, besides the config, versions and lock files:
    what starting a run over (``--force``) removes."""
    pictures = (SAMPLES, SAMPLES_EX_POST, RECONSTRUCTIONS)
    return (WEIGHTS, METRICS, EVALUATION, CHECKPOINT, LOG, REPORT, DATA, *pictures, *PLOTS,
            *(csv_path(p).name for p in pictures))


SCALAR = Maybe((int, float, str, bool))  # a value shown as it is
NUMBER = Maybe(float)  # json writes a NaN figure as NaN and reads it back as float("nan")

METRICS_ROW = Obj({"epoch": int, "steps": int, "train_objective": float, "test_elbo": float, "test_distortion": float,
                   "test_rate": float, "seconds": float}, rest=SCALAR)
SCHEMAS = {
    CONFIG: Obj({section: Obj(rest=ANY) for section in ("data", "model", "guide", "objective", "train")}),
    VERSIONS: Obj({"python": str, "torch": str, "pyro": str}, rest=SCALAR),
    DATA: Obj({"name": str, "event_shape": [int], "train": int, "test": int}, rest=ANY),
    EVALUATION: Obj({"seed": int, "elbo": Obj({"elbo": float, "distortion": float, "rate": float}, rest=ANY),
                            "collapse": Obj(rest=ANY)}, {"log_likelihood": Obj(rest=ANY),
                                                        "standardized_log_det_scale": float,
                                                        "weights_sha256": str}),
    f"{DIAGNOSTICS}/summary.json": Obj(optional={  # (both absent: the layout of 0.2.0, which the report skips)
        "splits": Obj(optional={split: Obj({"points": [int], "reference_note": str,
                                             "reference": Obj({"max_rhat": NUMBER, "min_ess_bulk": NUMBER,
                                                               "divergences": int}, rest=ANY),
                                             "khat": Obj({"share_above_0.7": NUMBER, "share_0.5_to_0.7": NUMBER,
                                                          "max": NUMBER}, rest=ANY)}, rest=ANY)
                                    for split in ("train", "test")}),
        "comparison": Obj(rest=Obj(optional={"train": NUMBER, "test": NUMBER}))}, rest=ANY),
}
REMEDY = {
    CONFIG: "restore it, or train the run again", VERSIONS: "restore it, or train the run again",
    DATA: "restore it, or train the run again", METRICS: "restore it, or train the run again",
    EVALUATION: "delete it and run 'vae evaluate RUN' again",
    f"{DIAGNOSTICS}/summary.json": "delete the folder and run 'vae diagnose RUN' again",
}


def read_json(folder: Path, name: str, remedy: Optional[str] = None):
    """The run folder's JSON file ``name`` (``layout``'s name, or ``diagnostics/summary.json``), checked against
    its schema; a missing file is None."""
    path = Path(folder) / name
    raw = read_regular(path, MAX_JSON_BYTES)
    if raw is None:
        return None
    value = parse_json(raw, path)
    found = problem(value, SCHEMAS[name]) if name in SCHEMAS else None
    if found:
        raise UserError(f"{path} is damaged: {found}; {remedy or REMEDY[name]}")
    return value


def weights_sha256(folder: Path) -> Optional[str]:
    """SHA-256 of the folder's ``weights.pt`` as it is on disk (hex; None when there is none): what a result written
    from the weights (``evaluation.json``) records, so that a reader can tell it from one of earlier weights. None
    too when ``folder`` is not a folder or ``weights.pt`` not a regular file: the run's loader says what is wrong."""
    path = Path(folder) / WEIGHTS
    fd = open_regular(path) if Path(folder).is_dir() and kind_of(path) is None else None
    if fd is None:
        return None
    sha = hashlib.sha256()
    with os.fdopen(fd, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def read_metrics(folder: Path) -> list[dict]:
    """The rows of ``metrics.jsonl`` (one per finished epoch, in order), each of ``METRICS_ROW``; [] before the
    first epoch."""
    path = Path(folder) / METRICS
    raw = read_regular(path, MAX_JSON_BYTES)
    rows: list[dict] = []
    for number, line in enumerate([] if raw is None else raw.splitlines(), 1):
        if not line.strip():
            continue
        row = parse_json(line, path)
        found = problem(row, METRICS_ROW)
        if not found and row["epoch"] != len(rows) + 1:
            found = f"epoch {row['epoch']} where epoch {len(rows) + 1} belongs"
        if found:
            raise UserError(f"{path} is damaged: line {number} holds {found}; {REMEDY[METRICS]}")
        rows.append(row)
    return rows
