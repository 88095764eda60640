"""Burda et al. 2015, Table 1 style, on Fashion-MNIST: VAE vs IWAE k=5 vs IWAE k=50.

784-200-200-50 tanh MLPs, Bernoulli likelihood, dynamic binarization, Adam;
test -log p(x) estimated with k = 5000 importance samples (pyro_vae.inference.evaluate.marginal_likelihood).
Each model trains into its own run folder under --out; finished runs and
finished evaluations are reused, so the script resumes where it stopped.

    python bench/reproduce_iwae.py --epochs 20 --test-images 2000
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pyro_vae.inference import RunConfig, importance_log_likelihood, load_run, train_run
from pyro_vae.inference.runs.files import write_json

OBJECTIVES = {"VAE (k=1)": {"name": "elbo"}, "IWAE k=5": {"name": "iwae", "num_particles": 5},
              "IWAE k=50": {"name": "iwae", "num_particles": 50}}


def config(objective: dict, data_dir: str, epochs: int, seed: int) -> RunConfig:
    net = {"hidden_dim": 200, "num_hidden_layers": 2, "activation": "tanh"}
    return RunConfig.from_dict({
        "data": {"dataset": "fashion-mnist", "data_dir": data_dir, "binarize": "dynamic"},
        "model": {"latent_dim": 50, **net}, "guide": net, "objective": objective,
        "train": {"epochs": epochs, "batch_size": 128, "lr": 1e-3, "seed": seed}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--test-images", type=int, default=2000, help="first N test images (10000: all)")
    parser.add_argument("--iw-samples", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/iwae-fashion")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = {}
    for label, objective in OBJECTIVES.items():
        folder = out / label.split(" (")[0].replace(" ", "").replace("=", "").lower()
        if not (folder / "weights.pt").exists() or len((folder / "metrics.jsonl").read_text().splitlines()) < args.epochs:
            train_run(config(objective, args.data_dir, args.epochs, args.seed), folder, force=True, quiet=True)
        result_file = folder / f"loglik-k{args.iw_samples}-n{args.test_images}.json"
        if not result_file.exists():
            run = load_run(folder)
            start = time.perf_counter()
            ll = importance_log_likelihood(run.model, run.guide, run.data.test_x[: args.test_images],
                                           args.iw_samples, seed=args.seed)
            write_json(result_file, {**ll.to_dict(), "seconds": time.perf_counter() - start,
                                     "test_elbo": run.evaluate(seed=args.seed).elbo})
        table[label] = json.loads(result_file.read_text())
        r = table[label]
        print(f"{label:<10}  -log p(x) = {-r['log_likelihood']:.2f} +- {r['standard_error']:.2f} nats  "
              f"(-ELBO {-r['test_elbo']:.2f})", flush=True)
    write_json(out / "table.json", {"epochs": args.epochs, "test_images": args.test_images,
                                    "iw_samples": args.iw_samples, "results": table})


if __name__ == "__main__":
    main()
