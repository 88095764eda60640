"""The figures of ``vae diagnose``, through ArviZ where it has them (``az.plot_pair``, ``az.plot_khat``,
``az.plot_energy``, ``az.plot_ppc``), and the run-level posterior predictive check (mean images, calibration)."""
from __future__ import annotations

from pathlib import Path

import arviz as az
import numpy as np
import torch

from pyro_vae.inference.report.images import prior_draws, pyplot, save_figure


def figure(path: Path, draw) -> None:
    """``draw(plt)`` returns a figure, saved as a PNG at ``path``."""
    save_figure(draw(pyplot()), path, dpi=90)


def pair(plt, ref, guide, point, names):
    """``az.plot_pair``: the NUTS draws' KDE with the guide's draws overlaid, for two units of one point."""
    as_idata = lambda draws: az.from_dict(posterior={names[0]: draws[None, :, 0], names[1]: draws[None, :, 1]})  # noqa: E731
    ax = az.plot_pair(as_idata(ref), kind="kde", figsize=(4.5, 4.5), textsize=9,
                      kde_kwargs={"contour_kwargs": {"colors": "k"}, "contourf_kwargs": {"alpha": 0.3}})
    az.plot_pair(as_idata(guide[:300]), kind="scatter", ax=ax, scatter_kwargs={"color": "C1", "alpha": 0.5},
                 marginals=False)
    ax.set_title(f"{point}: NUTS (KDE) vs guide (dots)", fontsize=9)
    return ax.figure


def khat(plt, values, indices, split="test", ax=None):
    """``az.plot_khat`` with its reference lines (0.7: above it, importance sampling from q is not to be trusted), one
    point per data point (labelled by its index)."""
    ax = az.plot_khat(values, show_hlines=True, figsize=(6, 3), textsize=8, ax=ax)
    ax.set_xticks(range(len(values)), [str(i) for i in indices], rotation=90, fontsize=6)
    ax.set_xlabel(f"{split} point")
    return ax.figure


def splits(plt, summaries: dict):
    """Per split, side by side: PSIS k-hat of each point (``az.plot_khat``), then the mean amortization and
    approximation gaps with their standard errors over the points."""
    fig, axes = plt.subplots(1, len(summaries) + 1, figsize=(5 * len(summaries) + 4, 3.2))
    for ax, (split, s) in zip(axes, summaries.items()):
        khat(plt, np.asarray(s["per_point"]["khat"]), s["points"], split, ax=ax)
        ax.set_title(f"{split}: PSIS k-hat", fontsize=9)
    names, width = ("amortization_gap", "approximation_gap"), 0.8 / len(summaries)
    for i, (split, s) in enumerate(summaries.items()):
        values = [np.asarray(s["per_point"][n]) for n in names]
        axes[-1].bar(np.arange(2) + i * width, [v.mean() for v in values], width, label=split,
                     yerr=[v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0 for v in values], capsize=3)
    axes[-1].set_xticks(np.arange(2) + width * (len(summaries) - 1) / 2, ["amortization", "approximation"])
    axes[-1].set_ylabel("gap (nats per point)")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def image_means(idata: az.InferenceData) -> az.InferenceData:
    """Each image's mean value (for binarized images: its share of lit pixels), observed and replicated: a
    statistic whose predictive distribution says something (a KDE of 0/1 pixel values is two spikes)."""
    name = "mean value of an image"
    return az.InferenceData(
        posterior_predictive=idata.posterior_predictive["x"].mean("pixel").to_dataset(name=name),
        observed_data=idata.observed_data["x"].mean("pixel").to_dataset(name=name))


def ppc(plt, found):
    """``az.plot_ppc`` of each image's mean value: the observed points against the NUTS and the guide's
    predictive draws."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    for ax, (name, idata) in zip(axes, (("NUTS", found.reference), ("guide", found.guide))):
        means = image_means(idata)
        drawn = means.posterior_predictive.sizes["chain"] * means.posterior_predictive.sizes["draw"]
        few = means.observed_data.sizes["point"] < 10  # a KDE of a handful of values is ill-defined: the ECDF
        az.plot_ppc(means, kind="cumulative" if few else "kde", num_pp_samples=min(25, drawn), ax=ax, legend=False)
        ax.set_title(f"posterior predictive: {name}", fontsize=9)
    return fig


def kl_bars(plt, kl):
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

    figure(path, draw)
    return {"mean_image_abs_error_reconstructions": float(np.abs(means[1] - means[0]).mean()),
            "mean_image_abs_error_samples": float(np.abs(means[2] - means[0]).mean()),
            "calibration": calibration}
