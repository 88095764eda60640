"""Benchmark: data-parallel SVI throughput with 1 and 2 processes (``vae train --nproc``), one run.

    python bench/distributed.py --epochs 4 --batch-size 128        # the 2-core CPU (gloo); also 1024
    python bench/distributed.py --epochs 3 --device cuda --nproc 1 2 4 8  # a GPU machine (NCCL, one GPU each)

Every configuration is a real ``vae train`` into a fresh run folder; throughput is training images per
second over the epochs after the first (``metrics.jsonl``'s per-epoch training seconds, evaluation
excluded). For each engine (the captured engine (``--compile trace``), and Pyro's interpreter ``--compile off``) the
reference, measured in the same run, is one process on that engine with one process's share of the
cores (one thread when two processes share the 2-core CPU); one process with every core is shown too.
Scaling efficiency = throughput(N) / (N x reference). Writes JSON to bench/results/.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from pyro_vae.inference import RunConfig
from pyro_vae.inference.data.loaders import load_dataset
from pyro_vae.inference.runs.files import write_json
from pyro_vae.inference.runs.layout import read_metrics


def throughput(out: Path, extra: list[str], threads: int, epochs: int, device: str) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-m", "pyro_vae.inference.cli", "train", "--out", str(out), "--force", "--quiet",
                           "--epochs", str(epochs), "--device", device, *extra], env=env, capture_output=True,
                          text=True)
    if done.returncode:
        sys.exit(f"vae train {' '.join(extra)} failed: {done.stderr.strip().splitlines()[-1]}")
    metrics = read_metrics(out)
    steady = metrics[1:] or metrics
    images = load_dataset(RunConfig.load(out / "config.json").data).train_x.shape[0]
    return images * len(steady) / sum(m["seconds"] for m in steady)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--nproc", type=int, nargs="+", default=[2])
    parser.add_argument("--batch-size", type=int, default=128, help="the global minibatch")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    share = max(1, cores // max(args.nproc))
    batch = ["--batch-size", str(args.batch_size)]
    engines = {"captured": batch, "interpreted": [*batch, "--compile", "off"]}
    result = {"device": args.device, "batch_size": args.batch_size, "cores": cores, "platform": platform.platform(),
              "epochs": args.epochs,
              "rows": []}
    print(f"{'configuration':44s} {'images/s':>10s} {'vs 1 process':>13s} {'efficiency':>11s}")
    with tempfile.TemporaryDirectory() as tmp:
        for engine, flags in engines.items():
            reference = throughput(Path(tmp, engine), flags, share, args.epochs, args.device)
            rows = {f"1 process, {engine} engine, {share} thread(s)": (1, reference)}
            if share < cores:
                rows[f"1 process, {engine} engine, {cores} threads"] = (
                    1, throughput(Path(tmp, engine), flags, cores, args.epochs, args.device))
            for n in args.nproc:
                rows[f"{n} processes, data-parallel, {engine} engine"] = (
                    n, throughput(Path(tmp, engine), [*flags, "--nproc", str(n)], share, args.epochs, args.device))
            for name, (n, value) in rows.items():
                efficiency = value / (n * reference)
                print(f"{name:44s} {value:10.0f} {value / reference:12.2f}x {efficiency:10.0%}", flush=True)
                result["rows"].append({"configuration": name, "engine": engine, "processes": n,
                                       "images_per_s": value, "speedup": value / reference,
                                       "efficiency": efficiency})
    write_json(Path(args.json or f"bench/results/distributed_{args.device}_b{args.batch_size}.json"), result)


if __name__ == "__main__":
    main()
