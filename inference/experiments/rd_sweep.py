"""``vae rd-sweep``: one beta-ELBO run per beta, and the rate-distortion plane they trace (Alemi et al. 2018).

Each run minimizes D + beta R (``BetaELBO``): distortion D = -E_q log p(x|z), rate R = KL(q(z|x) || p(z)),
both measured on the test set in nats per image. beta < 1 buys lower distortion with more rate, beta > 1
the reverse; at beta = 1 the sum R + D is the -ELBO, a line of slope -1 in the (R, D) plane that no
point of the sweep can cross below (every point's R + D is a -ELBO of its own model).

Resumable: ``OUT/beta-<b>/`` is an ordinary run folder; a finished one is read back, an interrupted one
resumed from its checkpoint, so re-running the same command trains only what is missing.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

from pyro_vae.inference.runs.files import atomic_write_text
from pyro_vae.inference.config.sections import RunConfig
from pyro_vae.inference.errors import UserError
from pyro_vae.inference.report.images import pyplot, save_figure
from pyro_vae.inference.runs import lock
from pyro_vae.inference.runs.files import write_json
from pyro_vae.inference.runs.folder import resume_run, train_run
from pyro_vae.inference.runs.layout import CHECKPOINT, CONFIG, WEIGHTS, read_json, read_metrics
from pyro_vae.inference.runs.run import load_run

TABLE_FIELDS = ("beta", "rate", "distortion", "neg_elbo", "rate_bits_per_dim", "distortion_bits_per_dim", "run")


def parse_betas(text: str) -> list[float]:
    try:
        betas = [float(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise UserError(f"--betas must be comma-separated numbers, got {text!r}") from None
    if not betas or any(not b > 0 for b in betas):
        raise UserError(f"--betas must be positive numbers, got {text!r}")
    return sorted(set(betas))


def beta_config(base: RunConfig, beta: float) -> RunConfig:
    raw = base.to_dict()
    raw["objective"] = {**raw["objective"], "name": "beta", "beta": beta}
    return RunConfig.from_dict(raw)


def _state(folder: Path, config: RunConfig) -> str:
    """``new``, ``done`` or ``partial``; a folder trained with another config is refused."""
    recorded = read_json(folder, CONFIG)  # checked: a regular file of its schema
    if recorded is None:
        return "new"
    if recorded != config.to_dict():
        raise UserError(f"{folder} holds a run with other settings; pass --force to retrain the sweep "
                        f"or choose another --out")
    if len(read_metrics(folder)) >= config.train.epochs and (folder / WEIGHTS).is_file():
        return "done"
    return "partial" if (folder / CHECKPOINT).is_file() else "new"


def run_sweep(base: RunConfig, betas: Sequence[float], out: Path, force: bool = False, quiet: bool = True,
              log=print) -> list[dict]:
    """Train (or reuse) one run per beta under ``out``; return the table of test rate and distortion. The sweep
    holds ``out``'s writer lock (``pyro_vae.inference.runs.lock``), each run its own."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"output path {out} exists and is not a folder; choose another --out")
    with lock.writing(out):
        rows = [_beta_row(base, beta, out, force, quiet, log) for beta in betas]
        write_table(rows, out)
    return rows


def _beta_row(base: RunConfig, beta: float, out: Path, force: bool, quiet: bool, log) -> dict:
    config = beta_config(base, beta)
    folder = out / f"beta-{beta:g}"
    state = "new" if force else _state(folder, config)
    if state == "new":
        log(f"beta {beta:g}: training into {folder}")
        train_run(config, folder, force=True, quiet=quiet)
    elif state == "partial":
        log(f"beta {beta:g}: resuming {folder}")
        resume_run(folder, quiet=quiet)
    else:
        log(f"beta {beta:g}: {folder} is finished; reusing it")
    run = load_run(folder)
    report = run.evaluate(seed=config.train.seed)
    dims = run.data.event_shape.numel()
    return {"beta": beta, "rate": report.rate, "distortion": report.distortion,
            "neg_elbo": report.rate + report.distortion,
            "rate_bits_per_dim": report.rate / (dims * 0.6931471805599453),
            "distortion_bits_per_dim": report.distortion / (dims * 0.6931471805599453),
            "run": str(folder)}


def write_table(rows: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "rd.json", rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=TABLE_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "rd.csv", buffer.getvalue())
    plot_rd(rows, out / "rd.png")


def plot_rd(rows: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    rates, distortions = [r["rate"] for r in rows], [r["distortion"] for r in rows]
    ax.plot(rates, distortions, "o-", label="test (R, D), one run per beta")
    for r in rows:
        ax.annotate(f"beta={r['beta']:g}", (r["rate"], r["distortion"]), fontsize=7, xytext=(4, 4),
                    textcoords="offset points")
    at_one = [r for r in rows if r["beta"] == 1.0]
    if at_one:
        elbo = at_one[0]["neg_elbo"]
        span = [0.0, max(max(rates), elbo)]
        ax.plot(span, [elbo - s for s in span], "k--", lw=0.8, label=f"R + D = {elbo:.1f} (-ELBO at beta = 1)")
    ax.set_xlabel("rate R (nats per image)")
    ax.set_ylabel("distortion D (nats per image)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    save_figure(fig, path)
