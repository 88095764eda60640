"""``vae diagnose RUN``: can the guide be trusted? Everything into ``RUN/diagnostics/``.

    reference.nc     NUTS reference posterior (groups posterior, sample_stats with ``diverging``, observed_data)
    guide.nc         the guide's draws for the same points (same dims and coords)
    summary.json     R-hat / ESS, per-point moment errors and Gaussian KL, PSIS k-hat, gaps, collapse report, PPC
    pair.png         NUTS (KDE) against the guide (dots): worst point, its two dimensions of largest KL
    khat.png         PSIS k-hat per point;   kl_per_dim.png   rate carried by each latent dimension
    ppc.png          mean images (arrays: mean rows) of data, reconstructions and samples; calibration
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional, Sequence

import arviz as az
import numpy as np
import torch

from inference.evaluate.collapse import posterior_collapse
from inference.errors import UserError
from inference.memory import require_memory
from inference.report.images import prior_draws, pyplot, save_figure
from inference.runs.folder import write_json
from inference.diagnostics.guide_check import gaps, guide_draws, guide_idata, khat_shares, moment_comparison, psis_khat
from inference.diagnostics.reference import layer_layout, nuts_reference


def choose_points(num_test: int, count: int, indices: Optional[Sequence[int]], seed: int) -> list[int]:
    if indices:
        bad = [i for i in indices if not 0 <= i < num_test]
        if bad:
            raise UserError(f"test index {bad[0]} is out of range 0..{num_test - 1}")
        return list(indices)
    if not 0 < count <= num_test:
        raise UserError(f"--points must be in 1..{num_test}, got {count}")
    return sorted(np.random.default_rng(seed).choice(num_test, count, replace=False).tolist())


def _save_netcdf(idata: az.InferenceData, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    idata.to_netcdf(str(tmp))
    os.replace(tmp, path)


def _figure(path: Path, draw) -> None:
    save_figure(draw(pyplot()), path, dpi=90)


def diagnosis_bytes(points: int, latent: int, pixels: int, chains: int, draws: int, guide_samples: int) -> int:
    """What ``diagnose`` holds at once, at least: the NUTS draws (float32 as sampled, then float32 and float64
    copies for ArviZ), one batched decoder pass over every chain and point with its gradient, the guide's draws
    (two sets and a float64 centred copy) and their log weights."""
    return (16 * chains * draws * points * latent + 12 * chains * points * pixels
            + 16 * guide_samples * points * latent + 16 * guide_samples * points)


def diagnose(run, out: Path, indices: Sequence[int], chains: int = 4, draws: int = 500, warmup: int = 500,
             guide_samples: int = 1000, iw_samples: int = 5000, seed: int = 0) -> dict:
    start = time.perf_counter()
    layout = layer_layout(run.model)  # a hierarchy: every layer, sampled jointly, reported one by one
    units = max(part.stop for part in layout.values())
    require_memory(diagnosis_bytes(len(indices), units, run.data.event_shape.numel(), chains, draws,
                                   guide_samples),
                   f"diagnosing {len(indices)} points ({chains} chains x {draws} NUTS draws, {guide_samples} guide "
                   f"draws)", "ask for fewer --draws, --chains, --guide-samples or --points")
    out.mkdir(parents=True, exist_ok=True)
    x = run.data.test_x[torch.as_tensor(indices)]
    model, guide = run.model.eval(), run.guide.eval()
    torch.manual_seed(seed)
    z_guide, _ = guide_draws(guide, x, guide_samples)
    reference = nuts_reference(model, x, indices, z_guide.mean(0), chains, draws, warmup, seed)
    ref_draws = np.concatenate([reference.idata.posterior[name].values for name in layout], -1)
    ref_draws = ref_draws.reshape(-1, len(indices), z_guide.shape[-1])  # (chains x draws, P, Z)
    moments = moment_comparison(ref_draws, z_guide.cpu().numpy())
    khat = psis_khat(model, guide, x, guide_samples)
    gap = gaps(model, guide, x, iw_samples=iw_samples, seed=seed)
    collapse = posterior_collapse(model, guide, run.data.test_x, seed=seed, y=run.labels())
    _save_netcdf(reference.idata, out / "reference.nc")
    _save_netcdf(guide_idata(z_guide, indices, layout), out / "guide.nc")
    ppc = posterior_predictive(run, out / "ppc.png", seed)
    worst = int(np.argmax(moments["gaussian_kl"]))
    dims = np.argsort(moments["kl_per_dim"][worst])[::-1][:2].tolist()
    _figure(out / "pair.png", lambda plt: _pair(plt, ref_draws[:, worst, dims], z_guide[:, worst, dims].cpu().numpy(),
                                                indices[worst], [unit_name(layout, d) for d in dims]))
    _figure(out / "khat.png", lambda plt: _khat(plt, khat, indices))
    _figure(out / "kl_per_dim.png", lambda plt: _kl_bars(plt, collapse.kl_per_dim))
    rate_share = None if collapse.kl_per_dim is None else \
        (np.asarray(collapse.kl_per_dim) / max(sum(collapse.kl_per_dim), 1e-12)).tolist()
    summary = {
        "points": list(map(int, indices)), "reference": reference.summary(),
        "reference_note": "converged" if reference.converged else
        f"NOT a reference: R-hat {reference.max_rhat:.3f} > 1.01; run more --draws or --warmup",
        "per_point": {k: np.asarray(v).tolist() for k, v in {**moments, **gap, "khat": khat}.items()},
        "khat": khat_shares(khat),
        "mean": {k: float(np.mean(v)) for k, v in {**moments, **gap}.items() if np.ndim(v) == 1},
        "collapse": {**collapse.to_dict(), "rate_share": rate_share}, "ppc": ppc,
        "by_layer": None if len(layout) == 1 else by_layer(ref_draws, z_guide.cpu().numpy(), layout),
        "seconds": time.perf_counter() - start,
    }
    write_json(out / "summary.json", summary)
    return summary


def unit_name(layout: dict, index: int) -> str:
    """``z[7]`` for one layer, ``z2[3]`` for unit 3 of a hierarchy's second layer."""
    for name, part in layout.items():
        if part.start <= index < part.stop:
            return f"{name}[{index - part.start}]"
    raise IndexError(index)


def by_layer(reference: np.ndarray, guide: np.ndarray, layout: dict) -> dict:
    """The guide against NUTS one layer at a time (the means over points of each layer's own moment figures):
    which layer's posterior the guide misses."""
    out = {}
    for name, part in layout.items():
        moments = moment_comparison(reference[..., part], guide[..., part])
        out[name] = {"units": part.stop - part.start, "mean_error_in_sd": float(np.mean(moments["mean_error_in_sd"])),
                     "gaussian_kl": float(np.mean(moments["gaussian_kl"])),
                     "sd_ratio_min": float(np.min(moments["sd_ratio_min"])),
                     "sd_ratio_max": float(np.max(moments["sd_ratio_max"]))}
    return out


def _pair(plt, ref, guide, point, dims):
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    az.plot_kde(ref[:, 0], ref[:, 1], ax=ax, contour_kwargs={"colors": "k"}, contourf_kwargs={"alpha": 0.3})
    ax.scatter(guide[:300, 0], guide[:300, 1], s=4, color="C1", alpha=0.5, label="guide q(z|x)")
    ax.set_xlabel(dims[0])
    ax.set_ylabel(dims[1])
    ax.set_title(f"test point {point}: NUTS (KDE) vs guide", fontsize=9)
    ax.legend(fontsize=7)
    return fig


def _khat(plt, khat, indices):
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.scatter(range(len(khat)), khat, s=12)
    for level, style in ((0.5, ":"), (0.7, "--")):
        ax.axhline(level, color="r", ls=style, lw=0.8)
    ax.set_xticks(range(len(khat)), [str(i) for i in indices], rotation=90, fontsize=6)
    ax.set_xlabel("test point")
    ax.set_ylabel("PSIS k-hat")
    return fig


def _kl_bars(plt, kl):
    fig, ax = plt.subplots(figsize=(6, 3))
    if kl is not None:
        ax.bar(range(len(kl)), kl)
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("KL(q || p) per point (nats)")
    return fig


@torch.no_grad()
def posterior_predictive(run, path: Path, seed: int, count: int = 500) -> dict:
    """Mean images (arrays: mean rows) of data, reconstructions E[x | z ~ q] and prior samples E[x | z ~ p];
    calibration: binned predicted means against the observed mean value in each bin."""
    torch.manual_seed(seed)
    x = run.data.test_x[:count]
    model, guide = run.model, run.guide
    recon = model.decode_mean(guide.posterior(x).sample())
    samples = model.decode_mean(prior_draws(model, x.shape[0], seed))  # a hierarchy: descended to z_1
    image = run.data.is_image and run.data.shift is None
    if image:
        recon, samples = recon.clamp(0, 1), samples.clamp(0, 1)
    predicted, observed = recon.flatten().cpu().numpy(), x.flatten().cpu().numpy()
    bins = np.linspace(0, 1, 11) if image else np.quantile(predicted, np.linspace(0, 1, 11))
    which = np.clip(np.digitize(predicted, bins) - 1, 0, 9)
    calibration = [[float(predicted[which == b].mean()), float(observed[which == b].mean()), int((which == b).sum())]
                   for b in range(10) if (which == b).any()]
    means = [t.mean(0).squeeze().cpu().numpy() for t in (x, recon, samples)]

    def draw(plt):
        fig, axes = plt.subplots(1, 4 if image else 2, figsize=(12 if image else 9, 3))
        titles = ("data", "reconstructions", "prior samples")
        if image:
            for ax, mean, title in zip(axes, means, titles):
                ax.imshow(mean if mean.ndim == 2 else np.moveaxis(mean, 0, -1), cmap="gray", vmin=0, vmax=1)
                ax.set_title(f"mean image: {title}", fontsize=8)
                ax.axis("off")
        else:
            for mean, title in zip(means, titles):
                axes[0].plot(mean.reshape(-1), label=title, lw=1)
            axes[0].set(xlabel="feature", ylabel="mean over test rows")
            axes[0].legend(fontsize=7)
        pred, obs, _ = zip(*calibration)
        lo, hi = min(pred + obs), max(pred + obs)
        axes[-1].plot([lo, hi], [lo, hi], "k:", lw=0.8)
        axes[-1].plot(pred, obs, "o-")
        axes[-1].set_xlabel("predicted mean")
        axes[-1].set_ylabel("observed mean")
        return fig

    _figure(path, draw)
    return {"mean_image_abs_error_reconstructions": float(np.abs(means[1] - means[0]).mean()),
            "mean_image_abs_error_samples": float(np.abs(means[2] - means[0]).mean()),
            "calibration": calibration}
