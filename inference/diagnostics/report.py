"""``vae diagnose RUN``: can the guide be trusted? Everything into ``RUN/diagnostics/``.

    reference.nc     NUTS reference posterior: posterior, sample_stats (energy, step size, tree depth, leapfrog
                     steps, acceptance, divergences), log_likelihood (per image), posterior_predictive
                     (25 draws per chain), observed_data
    guide.nc         the guide's draws for the same points (same dims and coords; its log_likelihood and
                     100 posterior_predictive draws)
    summary.json     R-hat / ESS, per-point moment errors and Gaussian KL, PSIS k-hat, gaps, collapse report, PPC
    pair.png         az.plot_pair: NUTS (KDE) against the guide (dots), worst point, its two units of largest KL
    khat.png         az.plot_khat: PSIS k-hat per point;   energy.png   az.plot_energy of the reference
    ppc_arviz.png    az.plot_ppc of the reference and of the guide
    kl_per_dim.png   rate carried by each latent dimension
    ppc.png          mean images (arrays: mean rows) of data, reconstructions and samples; calibration
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
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
from inference.diagnostics.guide_check import (gaps, guide_draws, guide_idata, khat_of, khat_shares, log_weights,
                                               moment_comparison)
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
    (two sets and a float64 centred copy) and their log weights, the per-image log-likelihoods of both and
    the posterior predictive images (25 per chain, 100 of the guide's)."""
    return (16 * chains * draws * points * latent + 12 * chains * points * pixels
            + 16 * guide_samples * points * latent + 16 * guide_samples * points
            + 8 * (chains * draws + guide_samples) * points + 4 * (25 * chains + 100) * points * pixels)


@dataclass
class Diagnosis:
    """What ``examine`` finds for a run's test points: the NUTS reference and the guide's draws as
    InferenceData with the same dims and coords (posterior, log_likelihood, posterior_predictive,
    observed_data; the reference also sample_stats), and the summary ``vae diagnose`` stores."""
    reference: az.InferenceData
    guide: az.InferenceData
    summary: dict


def examine(run, indices: Sequence[int], chains: int = 4, draws: int = 500, warmup: int = 500,
            guide_samples: int = 1000, iw_samples: int = 5000, seed: int = 0) -> Diagnosis:
    """The guide against NUTS on the test points ``indices``: one set of ``guide_samples`` guide draws serves
    the moments, PSIS k-hat and the amortized ELBO of the gaps. ``az.loo(d.reference)``,
    ``az.compare({"nuts": d.reference, "guide": d.guide})`` and ``az.plot_pair`` take the result as it is."""
    start = time.perf_counter()
    layout = layer_layout(run.model)  # a hierarchy: every layer, sampled jointly, reported one by one
    units = max(part.stop for part in layout.values())
    require_memory(diagnosis_bytes(len(indices), units, run.data.event_shape.numel(), chains, draws,
                                   guide_samples),
                   f"diagnosing {len(indices)} points ({chains} chains x {draws} NUTS draws, {guide_samples} guide "
                   f"draws)", "ask for fewer --draws, --chains, --guide-samples or --points")
    x = run.data.test_x[torch.as_tensor(indices)]
    model, guide = run.model.eval(), run.guide.eval()
    torch.manual_seed(seed)
    z_guide, log_q = guide_draws(guide, x, guide_samples)
    reference = nuts_reference(model, x, indices, z_guide.mean(0), chains, draws, warmup, seed)
    ref_draws = np.concatenate([reference.idata.posterior[name].values for name in layout], -1)
    ref_draws = ref_draws.reshape(-1, len(indices), z_guide.shape[-1])  # (chains x draws, P, Z)
    moments = moment_comparison(ref_draws, z_guide.cpu().numpy())
    log_w = log_weights(model, guide, x, draws=(z_guide, log_q))
    khat = khat_of(log_w)  # the same draws' weights: no second decoder pass
    gap = gaps(model, guide, x, iw_samples=iw_samples, seed=seed, log_w=log_w)
    collapse = posterior_collapse(model, guide, run.data.test_x, seed=seed, y=run.labels())
    rate_share = None if collapse.kl_per_dim is None else \
        (np.asarray(collapse.kl_per_dim) / max(sum(collapse.kl_per_dim), 1e-12)).tolist()
    summary = {
        "points": list(map(int, indices)), "reference": reference.summary(),
        "reference_note": "converged" if reference.converged else
        f"NOT a reference: R-hat {reference.max_rhat:.3f} > 1.01; run more --draws or --warmup",
        "per_point": {k: np.asarray(v).tolist() for k, v in {**moments, **gap, "khat": khat}.items()},
        "khat": khat_shares(khat),
        "mean": {k: float(np.mean(v)) for k, v in {**moments, **gap}.items() if np.ndim(v) == 1},
        "collapse": {**collapse.to_dict(), "rate_share": rate_share},
        "by_layer": None if len(layout) == 1 else by_layer(ref_draws, z_guide.cpu().numpy(), layout),
        "seconds": time.perf_counter() - start,
    }
    return Diagnosis(reference.idata, guide_idata(z_guide, indices, layout, model, x), summary)


def diagnose(run, out: Path, indices: Sequence[int], chains: int = 4, draws: int = 500, warmup: int = 500,
             guide_samples: int = 1000, iw_samples: int = 5000, seed: int = 0) -> dict:
    """``examine``, then everything into ``out``: the two InferenceData, the figures and ``summary.json``."""
    found = examine(run, indices, chains, draws, warmup, guide_samples, iw_samples, seed)
    out.mkdir(parents=True, exist_ok=True)
    summary, layout = found.summary, layer_layout(run.model)
    _save_netcdf(found.reference, out / "reference.nc")
    _save_netcdf(found.guide, out / "guide.nc")
    summary["ppc"] = posterior_predictive(run, out / "ppc.png", seed)
    ref_draws = np.concatenate([found.reference.posterior[name].values for name in layout], -1)
    z_guide = np.concatenate([found.guide.posterior[name].values for name in layout], -1)[0]
    ref_draws = ref_draws.reshape(-1, *z_guide.shape[1:])
    worst = int(np.argmax(summary["per_point"]["gaussian_kl"]))
    dims = np.argsort(summary["per_point"]["kl_per_dim"][worst])[::-1][:2].tolist()
    _figure(out / "pair.png", lambda plt: _pair(plt, ref_draws[:, worst, dims], z_guide[:, worst, dims],
                                                indices[worst], [unit_name(layout, d) for d in dims]))
    _figure(out / "khat.png", lambda plt: _khat(plt, np.asarray(summary["per_point"]["khat"]), indices))
    _figure(out / "energy.png", lambda plt: az.plot_energy(found.reference, figsize=(5, 3.5)).figure)
    _figure(out / "ppc_arviz.png", lambda plt: _ppc(plt, found))
    _figure(out / "kl_per_dim.png", lambda plt: _kl_bars(plt, summary["collapse"]["kl_per_dim"]))
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


def _pair(plt, ref, guide, point, names):
    """``az.plot_pair``: the NUTS draws' KDE with the guide's draws overlaid, for two units of one point."""
    as_idata = lambda draws: az.from_dict(posterior={names[0]: draws[None, :, 0], names[1]: draws[None, :, 1]})  # noqa: E731
    ax = az.plot_pair(as_idata(ref), kind="kde", figsize=(4.5, 4.5), textsize=9,
                      kde_kwargs={"contour_kwargs": {"colors": "k"}, "contourf_kwargs": {"alpha": 0.3}})
    az.plot_pair(as_idata(guide[:300]), kind="scatter", ax=ax, scatter_kwargs={"color": "C1", "alpha": 0.5},
                 marginals=False)
    ax.set_title(f"test point {point}: NUTS (KDE) vs guide (dots)", fontsize=9)
    return ax.figure


def _khat(plt, khat, indices):
    """``az.plot_khat`` with the 0.5 / 0.7 lines, one point per test point (labelled by its index)."""
    ax = az.plot_khat(khat, show_hlines=True, figsize=(6, 3), textsize=8)
    ax.set_xticks(range(len(khat)), [str(i) for i in indices], rotation=90, fontsize=6)
    ax.set_xlabel("test point")
    return ax.figure


def _ppc(plt, found):
    """``az.plot_ppc``: the observed pixel values against the NUTS and the guide's predictive draws."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    for ax, (name, idata) in zip(axes, (("NUTS", found.reference), ("guide", found.guide))):
        az.plot_ppc(idata, num_pp_samples=25, ax=ax, legend=False)
        ax.set_title(f"posterior predictive: {name}", fontsize=9)
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
