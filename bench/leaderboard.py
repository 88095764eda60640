"""The log-likelihood leaderboard: every recipe (``inference/config/recipes/``) trained alike, scored alike.

Each recipe trains for ``--epochs`` (30) on Fashion-MNIST (Debian's ``dataset-fashion-mnist``; dynamically
binarized, the test set binarized once with a fixed seed) into its own run folder under ``--out``, then is
scored by one estimator: importance-sampled test log p(x) with k = ``--iw-samples`` (5000) on the first
``--test-images`` (10000: all) test images, with its Monte Carlo standard error; beside it the test ELBO
and KL on the same images, active units (per layer for a hierarchy), training seconds and seconds per
epoch, and the parameter count. Each component is held against its matching baseline at equal epochs
(``COMPARISONS``: the direction its paper reports). Finished runs and scores are reused and a run stopped
mid-way resumes from its checkpoint, so the script picks up where it stopped; rows already in the results
file with the same settings and machine are kept, so the table grows recipe by recipe. Writes
``--out/leaderboard.json`` and ``bench/results/leaderboard.json`` (``leaderboard-screening.json`` for fewer
epochs, images or draws) and prints the Markdown table with the machine named.

    python bench/leaderboard.py                                               # the table (hours on 2 cores)
    python bench/leaderboard.py --epochs 2 --test-images 500 --iw-samples 500   # a screening run
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from pyro_vae.inference import RunConfig, importance_log_likelihood, load_run
from pyro_vae.inference.config.files import merge
from pyro_vae.inference.config.recipes import read_recipe, recipe_names, recipe_summary
from pyro_vae.inference.evaluate.collapse import posterior_collapse
from pyro_vae.inference.evaluate.elbo import evaluate_elbo
from pyro_vae.inference.runs.files import write_json
from pyro_vae.inference.runs.folder import resume_run, train_run
from pyro_vae.inference.runs.layout import CHECKPOINT, CONFIG, WEIGHTS, read_metrics

RESULTS = Path(__file__).parent / "results"
FULL = {"epochs": 30, "test_images": 10_000, "iw_samples": 5000}
# (component, recipe, its baseline): the paper's direction is recipe above baseline
COMPARISONS = [("VampPrior vs N(0, I)", "tomczak-welling-2018-vampprior", "tomczak-welling-2018-normal"),
               ("IWAE vs VAE, one layer", "burda-2015-iwae", "burda-2015-vae"),
               ("IWAE vs VAE, two layers", "burda-2015-iwae-2layer", "burda-2015-vae-2layer"),
               ("two layers vs one (VAE)", "burda-2015-vae-2layer", "burda-2015-vae"),
               ("two layers vs one (IWAE)", "burda-2015-iwae-2layer", "burda-2015-iwae"),
               ("IAF vs diagonal guide", "kingma-2016-iaf", "vae-default")]


def recipe_config(name: str, args) -> RunConfig:
    data = {"dataset": args.dataset, "data_dir": str(Path(args.data_dir).resolve()) if args.data_dir else None}
    return RunConfig.from_dict(merge(read_recipe(name), {"data": data,
                                                         "train": {"epochs": args.epochs, "seed": args.seed}}))


def trained(name: str, args, log) -> Path:
    """The recipe's run folder, trained to ``--epochs`` (reused, resumed or trained afresh)."""
    folder, config = Path(args.out) / name, recipe_config(name, args)
    done = (folder / CONFIG).is_file() and json.loads((folder / CONFIG).read_text()) == config.to_dict()
    if done and len(read_metrics(folder)) >= args.epochs and (folder / WEIGHTS).is_file():
        log(f"{name}: trained; reusing {folder}")
    elif done and (folder / CHECKPOINT).is_file():
        log(f"{name}: resuming {folder}")
        resume_run(folder, quiet=True, plots=False, tensorboard=False)
    else:
        log(f"{name}: training {args.epochs} epochs into {folder}")
        train_run(config, folder, force=True, quiet=True, plots=False, tensorboard=False)
    return folder


def score(folder: Path, args) -> dict:
    """The estimator's figures for one trained run (cached in the run folder)."""
    path = folder / f"leaderboard-k{args.iw_samples}-n{args.test_images}-seed{args.seed}.json"
    if path.is_file():
        return json.loads(path.read_text())
    run = load_run(folder)
    x = run.data.test_x[: args.test_images]
    start = time.perf_counter()
    with run.params():
        ll = importance_log_likelihood(run.model, run.guide, x, args.iw_samples, seed=args.seed)
        elbo = evaluate_elbo(run.model, run.guide, x, seed=args.seed)
        collapse = posterior_collapse(run.model, run.guide, x, seed=args.seed)
    metrics = read_metrics(folder)
    figures = {"log_likelihood": ll.log_likelihood, "standard_error": ll.standard_error, "test_elbo": elbo.elbo,
               "kl": elbo.rate, "active_units": collapse.active_units, "latent_units": len(collapse.activity),
               "active_by_layer": {k: list(v) for k, v in collapse.active_by_layer().items()}
               if len(collapse.layers) > 1 else None,
               "train_seconds": sum(m["seconds"] for m in metrics),
               "seconds_per_epoch": sum(m["seconds"] for m in metrics) / len(metrics),
               "parameters": sum(p.numel() for m in (run.model, run.guide) for p in m.parameters()),
               "score_seconds": time.perf_counter() - start}
    write_json(path, figures)
    return figures


def earlier_rows(results: Path, settings: dict, names: list) -> dict:
    """The rows of an earlier results file measured with the same settings on the same machine, less those
    rerun now: the table grows recipe by recipe (a run folder may be gone; its scored row stays)."""
    if not results.is_file():
        return {}
    earlier = json.loads(results.read_text())
    if earlier.get("settings") != settings or earlier.get("machine") != machine():
        return {}
    return {name: row for name, row in earlier["rows"].items() if name not in names}


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} (CPU)"


def table(rows: dict, comparisons: list) -> str:
    lines = ["| recipe | test log p(x) (nats) | test ELBO | KL | active units | parameters | train s | s / epoch |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in sorted(rows.items(), key=lambda item: -item[1]["log_likelihood"]):
        units = f"{r['active_units']} of {r['latent_units']}" + (
            " (" + ", ".join(f"{k}: {a}/{n}" for k, (a, n) in r["active_by_layer"].items()) + ")"
            if r["active_by_layer"] else "")
        lines.append(f"| `{name}` | {r['log_likelihood']:.2f} ± {r['standard_error']:.3f} | {r['test_elbo']:.2f} | "
                     f"{r['kl']:.2f} | {units} | {r['parameters']:,} | {r['train_seconds']:.0f} | "
                     f"{r['seconds_per_epoch']:.1f} |")
    lines += ["", "| component | recipe − baseline (nats) | the paper's direction |", "| --- | --- | --- |"]
    lines += [f"| {c['component']} (`{c['recipe']}` − `{c['baseline']}`) | {c['difference']:+.2f} ± "
              f"{c['standard_error']:.3f} | {'holds' if c['holds'] else 'does not hold'} |" for c in comparisons]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default=",".join(recipe_names()), help="comma-separated recipe names")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--epochs", type=int, default=FULL["epochs"])
    parser.add_argument("--test-images", type=int, default=FULL["test_images"])
    parser.add_argument("--iw-samples", type=int, default=FULL["iw_samples"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/leaderboard")
    parser.add_argument("--results", default=None, help="JSON to write (default: bench/results/leaderboard*.json)")
    args = parser.parse_args()
    log = lambda line: print(line, flush=True)  # noqa: E731
    names = [n for n in args.recipes.split(",") if n]
    rows = {}
    for name in names:
        rows[name] = {"summary": recipe_summary(name), **score(trained(name, args, log), args)}
        log(f"{name}: log p(x) {rows[name]['log_likelihood']:.2f} ± {rows[name]['standard_error']:.2f}")
    settings = {k: getattr(args, k) for k in ("dataset", "epochs", "test_images", "iw_samples", "seed")}
    full = args.dataset == "fashion-mnist" and all(getattr(args, k) >= v for k, v in FULL.items())
    results = Path(args.results) if args.results else RESULTS / f"leaderboard{'' if full else '-screening'}.json"
    kept = earlier_rows(results, settings, names)
    if kept:
        log(f"kept from {results} (same settings and machine): {', '.join(kept)}")
    rows = {**kept, **rows}
    comparisons = [{"component": c, "recipe": a, "baseline": b,
                    "difference": rows[a]["log_likelihood"] - rows[b]["log_likelihood"],
                    "standard_error": (rows[a]["standard_error"] ** 2 + rows[b]["standard_error"] ** 2) ** 0.5,
                    "holds": rows[a]["log_likelihood"] > rows[b]["log_likelihood"]}
                   for c, a, b in COMPARISONS if a in rows and b in rows]
    out = {"machine": machine(), "settings": settings, "full_estimator": full, "rows": rows,
           "comparisons": comparisons}
    write_json(Path(args.out) / "leaderboard.json", out)
    write_json(results, out)
    print(f"\n{args.dataset}, {args.epochs} epochs, k = {args.iw_samples} on {args.test_images} test images; "
          f"{machine()}\n")
    print(table(rows, comparisons))


if __name__ == "__main__":
    main()
