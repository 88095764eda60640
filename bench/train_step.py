"""Benchmark: one SVI training step of the toolkit against a plain-PyTorch VAE and Pyro's default SVI, in one run.

    python bench/train_step.py                                   # 2-core CPU: batch 128 and 1024
    python bench/train_step.py --device cuda --epoch --scaling   # GPU: also a full epoch and the scaling tables

Same 784-400-20 Bernoulli VAE (ReLU MLPs, diagonal-Gaussian guide), same on-device data and
dynamic binarization for all three:

- ``toolkit-<mode>``: ``pyro_vae.inference.training.trainer.make_trainer`` (the engine ``vae train --compile`` picks), the
  model and guide carrying a private param store as a run's do; on CUDA each step replayed as a CUDA graph,
  ``<mode>-eager`` without (``--no-cuda-graph``);
- ``plain-pytorch``: the VAE written out by hand here (BCE with logits + closed-form KL, ``torch.optim.Adam``,
  the loss read with ``.item()`` each step as in PyTorch's own VAE example);
- ``pyro-default``: ``SVI(model, guide, pyro.optim.Adam, Trace_ELBO())`` on the toolkit's model and guide.

Each is timed over ``--steps`` steps after ``--warmup`` (graph capture and compilation excluded), the
median of ``--repeats`` rounds. Prints ms per step, samples per second and the ratios; writes JSON.
"""
from __future__ import annotations

import argparse
import gc
import platform
import resource
import statistics
import time
from pathlib import Path

import pyro
import pyro.optim
import torch
import torch.nn.functional as F
from pyro.infer import SVI, Trace_ELBO
from torch import nn

from pyro_vae.inference import RunConfig
from pyro_vae.inference.runs.build import build_model_and_guide
from pyro_vae.inference.data.datasets import MinibatchStream, prepare
from pyro_vae.inference.data.loaders import load_dataset
from pyro_vae.inference.param_state import ParamState, bind
from pyro_vae.inference.training.trainer import make_trainer
from pyro_vae.inference.objectives import build_objective
from pyro_vae.inference.runs.files import write_json

FASHION = "/usr/share/datasets/fashion-mnist"


class PlainVAE(nn.Module):
    """The reference: the same networks, the negative ELBO written by hand (one sample, closed-form KL)."""

    def __init__(self, pixels=784, hidden=400, latent=20):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(pixels, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent))
        self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, pixels))
        self.latent = latent

    def forward(self, x, num_data):
        x = x.flatten(1)
        loc, raw = self.enc(x).split(self.latent, -1)
        scale = F.softplus(raw) + 1e-5
        z = loc + scale * torch.randn_like(loc)
        rec = F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="sum")
        kl = 0.5 * (scale ** 2 + loc ** 2 - 1).sum() - scale.log().sum()
        return (rec + kl) * (num_data / x.shape[0])


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _config(args, latent=20, hidden=400, batch=128) -> RunConfig:
    return RunConfig.from_dict({"data": {"dataset": args.dataset, "data_dir": args.data_dir},
                                "model": {"latent_dim": latent, "hidden_dim": hidden},
                                "guide": {"hidden_dim": hidden}, "train": {"batch_size": batch}})


PREPARE_S: dict = {}  # (device, batch, engine) -> seconds make_trainer took: capturing, and inductor's compiling


def steppers(args, data_x, device, batch, latent=20, hidden=400, modes=None):
    """name -> step(idx, x) for each engine, all on the same model sizes."""
    cfg = _config(args, latent, hidden, batch)
    out = {}

    def toolkit(mode):
        pyro.set_rng_seed(0)
        model, guide = (m.to(device) for m in build_model_and_guide(cfg.model, cfg.guide, data_x.shape[1:]))
        idx = torch.arange(batch, device=device)
        engine, _, eager = mode.partition("-")
        store = ParamState()  # the programs carry a private store, as a run's do (vae train)
        model, guide = bind(model, store), bind(guide, store)
        started = time.perf_counter()
        trainer, notice = make_trainer(model, guide, build_objective(cfg.objective), compile=engine,
                                       examples=[((data_x[:batch],), {"num_data": data_x.shape[0], "subsample": idx})],
                                       cuda_graph=eager != "eager")
        PREPARE_S[(str(device), batch, f"toolkit-{mode}")] = time.perf_counter() - started  # capture (and compile)
        if notice:
            print(notice)
        return lambda i, x: trainer.step(x, num_data=data_x.shape[0], subsample=i)

    for mode in modes or args.modes:
        out[f"toolkit-{mode}"] = toolkit(mode)

    torch.manual_seed(0)
    plain = PlainVAE(data_x[0].numel(), hidden, latent).to(device)
    opt = torch.optim.Adam(plain.parameters(), lr=1e-3)

    def plain_step(i, x):
        opt.zero_grad()
        loss = plain(x, data_x.shape[0])
        loss.backward()
        opt.step()
        return loss.item()

    out["plain-pytorch"] = plain_step

    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    model, guide = (m.to(device) for m in build_model_and_guide(cfg.model, cfg.guide, data_x.shape[1:]))
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
    out["pyro-default"] = lambda i, x: svi.step(x, num_data=data_x.shape[0], subsample=i)
    return out


def time_steps(step, stream, steps, warmup, device) -> float:
    """Seconds per step, over ``steps`` steps after ``warmup``, batches drawn as training draws them."""
    batches = _endless(stream)
    for _ in range(warmup):
        step(*next(batches))
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(*next(batches))
    _sync(device)
    return (time.perf_counter() - start) / steps


def _endless(stream):
    while True:
        for idx, x in stream:
            if len(idx) == stream.batch_size:
                yield idx, x


def time_epoch(step, stream, device) -> float:
    _sync(device)
    start = time.perf_counter()
    for idx, x in stream:
        step(idx, x)
    _sync(device)
    return time.perf_counter() - start


def peak_memory(device) -> dict:
    out = {"host_max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        out["device_max_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2 ** 20
    return out


def step_table(args, data_x, device) -> list[dict]:
    rows = []
    for batch in args.batch_sizes:
        stream = MinibatchStream(data_x, batch, dynamic=True)
        engines = steppers(args, data_x, device, batch)
        times = {name: [] for name in engines}
        for _ in range(args.repeats):  # rounds interleave the engines, so drifts hit all alike
            for name, step in engines.items():
                times[name].append(time_steps(step, stream, args.steps, args.warmup, device))
        ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
        for name, value in ms.items():
            rows.append({"device": str(device), "batch": batch, "engine": name, "ms_per_step": value,
                         "samples_per_s": batch / value * 1e3,
                         "speedup_vs_plain": ms["plain-pytorch"] / value,
                         "speedup_vs_pyro": ms["pyro-default"] / value,
                         "prepare_s": PREPARE_S.get((str(device), batch, name))})
            print(f"{str(device):5s} B={batch:5d} {name:18s} {value:8.3f} ms/step {batch / value * 1e3:10.0f} samples/s"
                  f"  x{ms['plain-pytorch'] / value:5.2f} vs plain  x{ms['pyro-default'] / value:5.2f} vs Pyro",
                  flush=True)
    return rows


def epoch_table(args, data_x, device, sizes, latents, hiddens) -> list[dict]:
    """Seconds per epoch (batch 128) of the toolkit's engine against dataset size, latent size, hidden width."""
    rows = []
    for n, latent, hidden in [(n, 20, 400) for n in sizes] + [(data_x.shape[0], z, 400) for z in latents] + \
            [(data_x.shape[0], 20, h) for h in hiddens]:
        x = data_x[:n]
        stream = MinibatchStream(x, 128, dynamic=True)
        for name, step in steppers(args, x, device, 128, latent, hidden, args.epoch_modes or args.modes).items():
            if not name.startswith("toolkit"):
                continue
            if device.type == "cuda":  # the row's own peak above what is held before it (the images included)
                gc.collect()
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
                held = torch.cuda.memory_allocated(device)
            for idx, xb in stream:  # one epoch of warm-up: every batch shape captured and compiled
                step(idx, xb)
            seconds = time_epoch(step, stream, device)
            memory = peak_memory(device)
            if device.type == "cuda":
                memory["device_peak_above_held_mb"] = memory["device_max_allocated_mb"] - held / 2 ** 20
            rows.append({"device": str(device), "engine": name, "num_data": n, "latent": latent, "hidden": hidden,
                         "seconds_per_epoch": seconds, **memory})
            extra = f"  peak +{memory['device_peak_above_held_mb']:.0f} MB" if device.type == "cuda" else ""
            print(f"{str(device):5s} {name:18s} N={n:6d} Z={latent:4d} H={hidden:5d} {seconds:7.3f} s/epoch{extra}",
                  flush=True)
    return rows


def profile_table(args, data_x, device, steps: int = 50) -> list[dict]:
    """torch.profiler over ``steps`` steps of each engine at batch 128: the device's kernel time against the
    wall time (the rest is launch and host work)."""
    from torch.profiler import ProfilerActivity, profile

    stream = MinibatchStream(data_x, 128, dynamic=True)
    rows = []
    for name, step in steppers(args, data_x, device, 128, modes=args.epoch_modes or args.modes).items():
        time_steps(step, stream, 1, args.warmup, device)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=activities) as prof:
            wall = time_steps(step, stream, steps, 0, device)
        events = prof.key_averages()
        kernel_us = sum(e.self_device_time_total for e in events) / steps
        launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel",
                                                             "cudaLaunchKernelExC", "cudaGraphLaunch")) / steps
        rows.append({"device": str(device), "engine": name, "wall_ms_per_step": 1e3 * wall,
                     "kernel_ms_per_step": kernel_us / 1e3, "launch_calls_per_step": launches})
        print(f"profile {name:22s} wall {1e3 * wall:7.3f} ms/step, kernels {kernel_us / 1e3:7.3f} ms/step, "
              f"{launches:6.1f} launch calls/step", flush=True)
        print(events.table(sort_by="self_device_time_total" if device.type == "cuda" else "self_cpu_time_total",
                           row_limit=12), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    parser.add_argument("--dataset", default="mnist-embedded", help="mnist-embedded, or fashion-mnist with --data-dir")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--modes", nargs="+", default=["trace", "inductor"],
                        help="toolkit engines (--compile), each with -eager for --no-cuda-graph")
    parser.add_argument("--epoch-modes", nargs="+", default=None, help="toolkit engines of the epoch tables and the "
                        "profile (default: --modes)")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's summary of 50 toolkit "
                        "steps per mode (batch 128): device kernel time against host time")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epoch", action="store_true", help="also time full epochs (batch 128)")
    parser.add_argument("--scaling", action="store_true", help="epochs against data size, latent size, width")
    parser.add_argument("--json", default="bench/results/train_step.json")
    args = parser.parse_args()

    cfg = _config(args)
    data = prepare(load_dataset(cfg.data), "dynamic")
    results = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                           "threads": torch.get_num_threads(), "torch": torch.__version__, "pyro": pyro.__version__},
               "dataset": args.dataset, "train_images": data.train_x.shape[0], "steps": [], "epochs": []}
    for name in args.device:
        device = torch.device(name)
        if device.type == "cuda":
            results["machine"]["gpu"] = torch.cuda.get_device_name(device)
        x = data.train_x.to(device)
        results["steps"] += step_table(args, x, device)
        if args.profile:
            results["profiles"] = results.get("profiles", []) + profile_table(args, x, device)
        if args.epoch or args.scaling:
            n = x.shape[0]
            sizes = sorted({min(n, s) for s in (10_000, 20_000, 40_000, 60_000)}) if args.scaling else [n]
            results["epochs"] += epoch_table(args, x, device, sizes, [2, 200] if args.scaling else [],
                                             [100, 1600] if args.scaling else [])
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    write_json(Path(args.json), results)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
