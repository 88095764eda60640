"""``vae rd-compare``: soft against hard, the VAE and the rate-distortion autoencoder in one rate-distortion plane.

Seed 003: "soft EM is to hard EM as VAE is to rate-distortion". Both families share the data (grey
levels), the networks and the distortion (a Gaussian likelihood: L2); each is swept over beta in
D + beta R (``pyro_vae.inference.experiments.rd_sweep``). They are then measured alike on the test set:

- rate in bits per image: the VAE's KL(q(z|x) || p(z)) / ln 2 (what bits-back coding costs); the RD
  autoencoder's -log2 p~(round(g_a(x))) (what ``vae compress`` writes);
- distortion: the sum of squared errors of the decoded mean, at one z ~ q(z|x) for the VAE and at the
  rounded code for the autoencoder.

A third run, the autoencoder with a Laplace likelihood (L1) at the middle beta, gives the picture of
seed 003's "why blurry?": test images above their L2 and L1 reconstructions (``l2_vs_l1.png``).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch

from pyro_vae.inference.config.sections import RunConfig
from pyro_vae.inference.coding.entropy_coding import model_rate_bits
from pyro_vae.inference.data.sources import is_source
from pyro_vae.inference.report.images import pyplot, save_figure, save_grid
from pyro_vae.inference.experiments.rd_sweep import run_sweep
from pyro_vae.inference.runs.files import write_json
from pyro_vae.inference.runs.run import load_run
from pyro_vae.inference.param_state import in_run_store

COMPARED_FAMILIES = {  # the two families of the comparison (not the autoencoder presets of --family)
    "vae": {"model": {"prior": "normal"}, "guide": {"guide": "diagonal_normal"}},
    "rd_autoencoder": {"model": {"prior": "entropy_model"}, "guide": {"guide": "uniform_noise"}},
}


def family_config(base: RunConfig, family: str, likelihood: str = "gaussian") -> RunConfig:
    raw = base.to_dict()
    raw["data"]["binarize"] = "none"
    raw["model"].update(COMPARED_FAMILIES[family]["model"], likelihood=likelihood)
    raw["guide"].update(COMPARED_FAMILIES[family]["guide"])
    raw["objective"].update(name="beta", analytic_kl=False)  # rd_sweep sets each beta
    return RunConfig.from_dict(raw)


@torch.no_grad()
@in_run_store
def measure(run) -> dict:
    """Test rate (bits per image) and squared error per image, the same way for both families."""
    torch.manual_seed(run.config.train.seed)
    whole = run.data.test_x  # a set read from disk: a chunk at a time, the means weighted by the chunks' sizes
    parts = [whole] if not is_source(whole) else whole.split(run.config.train.eval_batch_size)
    rate_sum = sse_sum = 0.0
    for x in parts:
        if hasattr(run.guide, "quantized_code"):
            z = run.guide.quantized_code(x).float()
            rate_sum += float(model_rate_bits(run.model.prior, z).sum())
        else:
            q = run.guide.posterior(x)
            z = q.sample()
            rate_sum += float(torch.distributions.kl_divergence(q, run.model.prior(torch.Size([x.shape[0]]))).sum()) \
                / math.log(2)
        sse_sum += float(((run.model.decode_mean(z) - x) ** 2).flatten(1).sum(-1).sum())
    return {"rate_bits": rate_sum / len(whole), "squared_error": sse_sum / len(whole)}


def run_comparison(base: RunConfig, betas: Sequence[float], out: Path, force: bool = False, log=print) -> dict:
    out = Path(out)
    results = {"betas": list(betas), "families": {}}
    for family in COMPARED_FAMILIES:
        rows = run_sweep(family_config(base, family), betas, out / family, force=force, log=log)
        results["families"][family] = [{**row, **measure(load_run(Path(row["run"])))} for row in rows]
    middle = sorted(betas)[len(betas) // 2]
    l1 = run_sweep(family_config(base, "rd_autoencoder", "laplace"), [middle], out / "rd_autoencoder_l1",
                   force=force, log=log)[0]
    results["l1_at_middle_beta"] = {**l1, **measure(load_run(Path(l1["run"])))}
    write_json(out / "rd_compare.json", results)
    plot(results, out / "rd_compare.png")
    save_l2_vs_l1(out / "rd_autoencoder" / f"beta-{middle:g}", Path(l1["run"]), out / "l2_vs_l1.png")
    return results


def plot(results: dict, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    labels = {"vae": "VAE (soft: q(z|x) a density)", "rd_autoencoder": "RD autoencoder (hard: rounded code)"}
    for family, rows in results["families"].items():
        ax.plot([r["rate_bits"] for r in rows], [r["squared_error"] for r in rows], "o-", label=labels[family])
        for r in rows:
            ax.annotate(f"{r['beta']:g}", (r["rate_bits"], r["squared_error"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ax.set_xlabel("rate (bits per image)")
    ax.set_ylabel("squared error per image")
    ax.set_title("test set; labels: beta in D + beta R", fontsize=9)
    ax.legend(fontsize=7)
    save_figure(fig, path)


@in_run_store
def _decoded_codes(run, x: torch.Tensor) -> torch.Tensor:
    return run.model.decode_mean(run.guide.quantized_code(x).float()).clamp(0, 1)


@torch.no_grad()
def save_l2_vs_l1(l2_folder: Path, l1_folder: Path, path: Path, n: int = 8) -> None:
    l2, l1 = load_run(l2_folder), load_run(l1_folder)
    x = l2.data.test_x[torch.linspace(0, l2.data.test_x.shape[0] - 1, n).long()]  # across the classes
    rows = [x] + [_decoded_codes(run, x) for run in (l2, l1)]
    save_grid(torch.cat(rows), path, nrow=n)
