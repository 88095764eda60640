"""Benchmark: importance-sampled log p(x) (pyro_vae.inference.importance_log_likelihood) against a
hand-written tensor version of the same estimator, same model, data and k, in one run.

    python bench/iw_loglik.py --iw-samples 1000 --test-images 1000           # the 2-core CPU target
    python bench/iw_loglik.py --iw-samples 5000 --test-images 10000 --device cuda

Uses a trained run folder (--run) or a freshly initialized 784-400-20 VAE (the
time does not depend on the weights). Prints seconds, images per second, the
ratio of the two, and both estimates (they must agree within Monte Carlo error);
writes JSON to bench/results/.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from pyro_vae.inference import RunConfig, importance_log_likelihood, load_run, setup
from pyro_vae.inference.runs.files import write_json

FASHION = "/usr/share/datasets/fashion-mnist"


@torch.no_grad()
def handwritten_log_likelihood(model, guide, x, k, batch_size=100, max_points_per_pass=50_000):
    """The reference: Bernoulli decoder, N(0, I) prior, diagonal-Gaussian guide, written out by hand."""
    out = []
    for xb in x.split(batch_size):
        loc, scale = guide.posterior_params(xb)
        chunk = max(1, max_points_per_pass // xb.shape[0])
        parts = []
        for start in range(0, k, chunk):
            c = min(chunk, k - start)
            eps = torch.randn((c,) + loc.shape, device=x.device)
            z = loc + scale * eps
            logits = model.decoder(z)
            log_px = -F.binary_cross_entropy_with_logits(logits, xb.expand_as(logits), reduction="none").flatten(2).sum(-1)
            log_pz = -0.5 * (z ** 2).sum(-1)
            log_qz = -0.5 * (eps ** 2).sum(-1) - scale.log().sum(-1)
            parts.append(log_px + log_pz - log_qz)  # the 2 pi terms cancel
        out.append(torch.logsumexp(torch.cat(parts).double(), 0) - math.log(k))
    return torch.cat(out)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="a run folder; default: a fresh 784-400-20 VAE")
    parser.add_argument("--data-dir", default=FASHION)
    parser.add_argument("--iw-samples", type=int, default=1000)
    parser.add_argument("--test-images", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()

    if args.run:
        run = load_run(Path(args.run), device=args.device)
    else:
        data = {"dataset": "fashion-mnist", "data_dir": args.data_dir} if Path(args.data_dir).is_dir() else {}
        run = setup(RunConfig.from_dict({"data": data, "train": {"device": args.device}}))
    x = run.data.test_x[: args.test_images]
    device = x.device

    importance_log_likelihood(run.model, run.guide, x[:10], 10)  # warm-up: first-call allocations
    handwritten_log_likelihood(run.model, run.guide, x[:10], 10)
    timings, estimates = {}, {}
    for name, fn in (("toolkit", lambda: importance_log_likelihood(run.model, run.guide, x, args.iw_samples,
                                                                    batch_size=args.batch_size)),
                     ("handwritten", lambda: handwritten_log_likelihood(run.model, run.guide, x, args.iw_samples,
                                                                        args.batch_size))):
        _sync(device)
        start = time.perf_counter()
        result = fn()
        _sync(device)
        timings[name] = time.perf_counter() - start
        estimates[name] = result.log_likelihood if name == "toolkit" else result.mean().item()
    n = x.shape[0]
    record = {
        "machine": platform.node(), "processor": platform.processor() or platform.machine(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "dataset": run.data.name, "test_images": n, "iw_samples": args.iw_samples,
        "seconds": timings, "images_per_second": {k: n / v for k, v in timings.items()},
        "toolkit_over_handwritten_time": timings["toolkit"] / timings["handwritten"],
        "log_likelihood": estimates,
    }
    print(json.dumps(record, indent=2))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"iw_loglik-{device.type}-k{args.iw_samples}-n{n}.json", record)


if __name__ == "__main__":
    main()
