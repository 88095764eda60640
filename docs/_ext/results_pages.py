"""The results pages (Markdown tables), made from ``bench/results/*.json`` when the site is built: the figures
on these pages are the benchmark scripts' own output, never copied by hand. Each table names the file it read
and the command that wrote it; a result file that is missing leaves its section saying so."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


def read(name: str) -> Optional[dict | list]:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def source(name: str, command: str) -> str:
    return f"From `bench/results/{name}`, written by `{command}`."


def section(title: str, name: str, command: str, render: Callable[[dict], str], intro: str = "") -> str:
    data = read(name)
    try:
        body = render(data) if data is not None else f"*`bench/results/{name}` is not in this checkout: run `{command}`.*"
    except (KeyError, TypeError, ValueError) as err:  # a result file of another shape: fail the build, by name
        raise ValueError(f"bench/results/{name} lacks what its table shows ({type(err).__name__}: {err}); "
                         f"rerun {command}") from err
    return "\n\n".join(p for p in (f"## {title}", intro, source(name, command), body) if p) + "\n"


def engine_name(engine: str) -> str:
    return {"toolkit-trace": "toolkit `trace`", "toolkit-inductor": "toolkit `inductor`", "toolkit-off": "toolkit `off`",
            "toolkit-trace-eager": "toolkit `trace`, eager (`--no-cuda-graph`)", "plain-pytorch": "plain PyTorch",
            "pyro-default": "Pyro `SVI` + `Trace_ELBO`"}.get(engine, f"`{engine}`")


def seconds(value: float) -> str:
    """Three significant figures, trailing zeros kept (2.00, 0.211, 24.2)."""
    return f"{value:.2f}" if 1 <= value < 10 else f"{value:#.3g}".rstrip(".")


def steps_table(data: dict) -> str:
    machine = data.get("machine", {})
    where = machine.get("gpu") or f"{machine.get('threads', '?')} CPU threads"
    rows = [[s["batch"], engine_name(s["engine"]), seconds(s['ms_per_step']), f"{s['samples_per_s']:,.0f}",
             f"{s['speedup_vs_plain']:.2f}×", f"{s['speedup_vs_pyro']:.2f}×"] for s in data["steps"]]
    out = [f"{where}, torch {machine.get('torch', '?')}, Pyro {machine.get('pyro', '?')}; the 784-400-20 Bernoulli "
           f"VAE on {data.get('dataset', '?')}, median step time:",
           table(["batch", "engine", "ms / step", "samples / s", "vs plain PyTorch", "vs Pyro's SVI"], rows)]
    prepared = [s for s in data["steps"] if s.get("prepare_s") is not None]
    if prepared:  # what capturing (and inductor's compiling) took before the first step
        out += ["Seconds before the first step (capturing the graph; `inductor` also compiles it): " + ", ".join(
            f"{engine_name(s['engine'])} at batch {s['batch']}: {s['prepare_s']:.2f} s" for s in prepared) + "."]
    if data.get("epochs"):
        epochs = [[f"{e['num_data']:,}", e["latent"], e["hidden"], engine_name(e["engine"]), seconds(e['seconds_per_epoch']),
                   f"{e['device_max_allocated_mb']:,.0f}" if "device_max_allocated_mb" in e else f"{e['host_max_rss_mb']:,.0f}"]
                  for e in data["epochs"]]
        memory = "device MB (peak)" if "device_max_allocated_mb" in data["epochs"][0] else "host MB (peak RSS)"
        out += ["Seconds per full epoch (batch 128):",
                table(["images", "latent", "hidden", "engine", "s / epoch", memory], epochs)]
    return "\n\n".join(out)


def iw_table(data: dict) -> str:
    rows = [[who, f"{data['seconds'][who]:.2f}", f"{data['images_per_second'][who]:,.0f}",
             f"{data['log_likelihood'][who]:.3f}"] for who in ("toolkit", "handwritten")]
    return (f"k = {data['iw_samples']:,} importance samples on {data['test_images']:,} {data['dataset']} test images, "
            f"{data['device']}; the toolkit (Pyro traces) takes {data['toolkit_over_handwritten_time']:.2f}× the time "
            f"of a hand-written tensor estimator in the same run:\n\n"
            + table(["estimator", "seconds", "images / s", "mean log p(x)"], rows))


def distributed_table(data: dict) -> str:
    rows = [[r["configuration"], f"{r['images_per_s']:,.0f}", f"{r['speedup']:.2f}×", f"{r['efficiency']:.2f}"]
            for r in data["rows"]]
    return (f"{data['cores']} cores, {data['device']}, batch {data['batch_size']}, {data['epochs']} epochs:\n\n"
            + table(["configuration", "images / s", "speed-up", "efficiency"], rows))


def startup_table(data: dict) -> str:
    rows = [[r["checkout"], f"`{r['command']}`", f"{r['seconds']:.2f}", f"{r['vs_import']:.2f}×"] for r in data["rows"]]
    return (f"Median of {data['repeats']} starts; `other` is an older checkout measured in the same run:\n\n"
            + table(["checkout", "command", "seconds", "vs `import torch, pyro`"], rows))


def data_scale_table(data: dict) -> str:
    def how(r: dict) -> str:
        if not r["streamed"]:
            return "in memory"
        return {None: "memory map", "once": "decoded once, memory map", 0: "decoded in-process"}.get(
            r["workers"], f"decoded by {r['workers']} workers")

    rows = [[r["kind"], f"{r['scale']}×", f"{r['rows']:,}", f"{r['data_bytes'] / 1e6:,.0f}", how(r),
             f"{r['limit_mb']} MB" if r["limit_mb"] else "none", f"{r['peak_rss_mb']:,.0f}",
             f"{r['images_per_s']:,.0f}" if r["rc"] == 0 else f"killed (rc {r['rc']})"] for r in data["cases"]]
    summary = data["summary"]
    ratios = [[key.replace("_", " "), f"{value:.2f}"] for key, value in summary.items()
              if isinstance(value, float)]
    limit = data.get("limit") or {}
    return "\n\n".join([
        table(["data", "size", "training rows", "MB as float32", "read", "memory limit", "peak RSS MB", "images/s"],
              rows),
        f"Memory limit: {limit.get('how', data.get('limit_reason', 'none'))}." if limit or data.get("limit_reason")
        else "",
        "Ratios measured in the same run (targets: streamed/in-memory images per second ≥ "
        f"{summary['targets']['throughput_ratio_at_least']}, peak RSS at the largest size / at 1× ≤ "
        f"{summary['targets']['rss_ratio_at_most']}):",
        table(["ratio", "value"], ratios)])


def speed_page() -> str:
    return "\n".join([
        "# Speed", "",
        "Generated from `bench/results/` when the site is built. CPU figures are from the 2-core development "
        "machine, where runs vary by about ±15%: compare the ratios within one table (measured in the same run), "
        "not absolute times across tables. GPU figures are absolute. How the engines work: "
        "[training core and engines](../design/training-core.md).", "",
        section("One SVI step on the CPU", "train_step_cpu.json",
                "python bench/train_step.py --dataset fashion-mnist --data-dir /usr/share/datasets/fashion-mnist "
                "--modes off trace inductor --epoch --scaling", steps_table),
        section("The default engine on the CPU", "train_step_cpu_engines.json",
                "python bench/train_step.py --dataset fashion-mnist --data-dir /usr/share/datasets/fashion-mnist "
                "--modes off trace inductor --repeats 5 --json bench/results/train_step_cpu_engines.json", steps_table,
                "`--compile auto` takes `inductor` for runs of at least `AUTO_INDUCTOR_STEPS` (2,000) steps and "
                "`trace` for shorter ones: the compile time over what `inductor` saves a step, measured in this run "
                "(a later compile of the same graph is read from inductor's cache and costs a fraction of it)."),
        section("One SVI step on a GPU (one CUDA graph)", "gpu_h200/train_step_cuda.json",
                "python bench/train_step.py --device cuda --dataset fashion-mnist --data-dir DIR --batch-sizes 128 1024 "
                "--modes trace trace-eager inductor --epoch-modes trace inductor --epoch --scaling --profile",
                steps_table),
        section("Importance-sampled log p(x) on the CPU", "iw_loglik-cpu-k1000-n1000.json",
                "python bench/iw_loglik.py --iw-samples 1000 --test-images 1000", iw_table),
        section("Importance-sampled log p(x) on a GPU", "gpu_h200/iw_loglik-cuda-k5000-n10000.json",
                "python bench/iw_loglik.py --iw-samples 5000 --test-images 10000 --device cuda", iw_table),
        section("Data-parallel training on two CPU cores", "distributed_cpu_b128.json",
                "python bench/distributed.py --batch-size 128", distributed_table,
                "Two processes on two cores compete for the same cores: data-parallel training pays off across "
                "GPUs or nodes, not here."),
        section("Start-up of the command line", "startup.json", "python bench/startup.py --also OLD_CHECKOUT",
                startup_table),
        section("Reading data larger than memory", "data_scale_cpu.json", "python bench/data_scale.py",
                data_scale_table,
                "One epoch of the default model (`--compile trace`) on memory-mapped arrays and on image folders "
                "of 1×, 4× and 16× a base size, the largest also inside a memory cgroup smaller than the data "
                "(the in-memory control there is killed: the limit bites). Peak RSS is the training process's "
                "own (`ru_maxrss`); images per second are the epoch's training rows over its seconds. "
                "[Data of any size](../guide/data-at-scale.md) says how each is read."),
    ])


def _leaderboard_rows(data: dict) -> str:
    def active(row):
        text = f"{row['active_units']} of {row['latent_units']}"
        if row.get("active_by_layer"):
            text += " (" + ", ".join(f"{k}: {a}/{n}" for k, (a, n) in row["active_by_layer"].items()) + ")"
        return text

    ranked = sorted(data["rows"].items(), key=lambda item: -item[1]["log_likelihood"])
    rows = [[f"`{name}`", f"{r['log_likelihood']:.2f} ± {r['standard_error']:.3f}", f"{r['test_elbo']:.2f}",
             f"{r['kl']:.2f}", active(r), f"{r['parameters']:,}", f"{r['train_seconds']:.0f}",
             f"{r['seconds_per_epoch']:.1f}"] for name, r in ranked]
    comparisons = [[f"{c['component']} (`{c['recipe']}` − `{c['baseline']}`)",
                    f"{c['difference']:+.2f} ± {c['standard_error']:.3f}", "holds" if c["holds"] else "does not hold"]
                   for c in data.get("comparisons", [])]
    settings = data["settings"]
    intro = (f"{settings['epochs']} epochs on {settings['dataset']}, test log p(x) with "
             f"k = {settings['iw_samples']:,} on {settings['test_images']:,} test images (± Monte Carlo "
             f"standard error), seed {settings['seed']}; {data.get('machine', '')}:")
    return "\n\n".join([intro, table(["recipe", "test log p(x) (nats)", "test ELBO", "KL", "active units", "parameters",
                                      "train s", "s / epoch"], rows),
                        table(["component", "recipe − baseline (nats)", "the paper's direction"], comparisons)])


def _warmup_rows(data: dict) -> str:
    rows = [[name, f"{r['log_likelihood']:.2f} ± {r['standard_error']:.3f}", f"{r['test_elbo']:.2f}",
             f"{r['active_units']}" + (" (" + ", ".join(f"{k}: {a}/{n}" for k, (a, n) in r["active_by_layer"].items()) + ")"
                                       if r.get("active_by_layer") else ""), f"`{r['train']}`"]
            for name, r in data["rows"].items()]
    return data["what"] + ":\n\n" + table(["model", "test log p(x)", "test ELBO", "active units", "command"], rows)


def _family_rows(data: list) -> str:
    def num(v, fmt):
        return "—" if v is None else format(v, fmt)
    rows = [[f"`{r['family']}`", num(r["test_elbo"], ".2f"), num(r["reconstruction_error"], ".2f"),
             num(r["code_sparsity"], ".3f"), num(r["jacobian_norm"], ".1f"), num(r["mmd2_to_prior"], ".3f")] for r in data]
    return table(["family", "test ELBO", "reconstruction error", "code sparsity", "‖∂code/∂x‖", "MMD² to N(0, I)"], rows)


def _counts_rows(data: dict) -> str:
    rows = [[f"`{name}`", f"{m['log_likelihood']:.2f} ± {m['standard_error']:.3f}", f"{m['gap_to_exact']:.2f}"]
            for name, m in sorted(data["models"].items(), key=lambda item: item[1]["gap_to_exact"])]
    return (f"{data['train']:,} + {data['test']:,} rows of {data['features']} counts from a known rank-2 negative-binomial "
            f"model (θ = {data['theta']}), {data['epochs']} epochs; exact test log p(x) by quadrature "
            f"**{data['exact']:.2f}** nats per row; importance-sampled with k = {data['iw_samples']:,}:\n\n"
            + table(["likelihood", "test log p(x)", "gap to exact"], rows))


def _colour_rows(data: dict) -> str:
    return (f"`{data['command']}` ({data['train_images']} + {data['test_images']} patches, {data['train_seconds']:.0f} s):"
            "\n\n" + table(["code", "bits / dim"], [
                [f"VAE, test −log p(x) with k = {data['iw_samples']}", f"{data['vae_bits_per_dim']:.2f}"],
                ["VAE, test −ELBO", f"{data['neg_elbo_bits_per_dim']:.2f}"],
                ["the same patches as lossless PNG files", f"{data['png_bits_per_dim']:.2f}"],
                ["a uniform 8-bit code", f"{data['uniform_bits_per_dim']:.2f}"]]))


def _loading_rows(data: dict) -> str:
    rows = [[k.replace("_", " "), f"{v:.2f}", f"{data['speedup_vs_1_process'][k]:.2f}×"] for k, v in data["seconds"].items()]
    return f"Reading a folder of {data['images']:,} 32×32 PNGs on {data['cores']} cores:\n\n" + table(
        ["how", "seconds", "vs one process"], rows)


def models_page() -> str:
    return "\n".join([
        "# Models and papers", "",
        "Generated from `bench/results/` when the site is built. Recipes (`vae train --recipe NAME`) are papers' "
        "models as config files; `bench/leaderboard.py` trains each for the same epochs and scores each with the "
        "same estimator.", "",
        section("The log-likelihood leaderboard", "leaderboard.json",
                "python bench/leaderboard.py --recipes toolkit-best,tomczak-welling-2018-vampprior,"
                "tomczak-welling-2018-normal,kingma-2016-iaf,vae-default,burda-2015-vae,burda-2015-vae-2layer",
                _leaderboard_rows),
        section("Screening: one epoch of every recipe", "leaderboard-screening.json",
                "python bench/leaderboard.py --epochs 1 --test-images 1000 --iw-samples 500 --out runs/leaderboard-screening",
                _leaderboard_rows),
        section("Two stochastic layers and KL warm-up (Burda et al. 2015; Sønderby et al. 2016)", "two_layers_warmup.json",
                "the commands in the table", _warmup_rows),
        section("The autoencoder family", "ae_family.json", "python bench/ae_family.py", _family_rows),
        section("Counts with a known exact likelihood", "own_data_counts.json", "python bench/own_data.py counts",
                _counts_rows),
        section("A colour image folder", "own_data_colour.json", "python bench/own_data.py colour", _colour_rows),
        section("Reading an image folder", "own_data_loading.json", "python bench/own_data.py loading", _loading_rows),
    ])


def pages() -> dict[str, str]:
    return {"speed.md": speed_page(), "models.md": models_page()}
