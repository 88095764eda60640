"""``vae diagnose RUN``: can the guide be trusted, on the points it was trained on and on held-out ones?

One NUTS run (``reference.py``) samples the posteriors of the chosen training and test points together;
one set of guide draws per point (``guide_samples``, 5000 by default) serves the moments, PSIS k-hat, the
amortized ELBO, the importance-sampled log p(x) of the gaps (k-hat judges that very estimate) and the start
of each point's optimized Gaussian.
Everything goes into ``RUN/diagnostics/``::

    summary.json     per split: R-hat / ESS, per-point moment errors and Gaussian KL, PSIS k-hat, gaps; the
                     splits side by side ("comparison"); the collapse report and the PPC of the test set
    splits.png       per split: az.plot_khat of its points; the mean amortization and approximation gaps
    energy.png       az.plot_energy of the NUTS run (one sampler for both splits)
    kl_per_dim.png   rate carried by each latent dimension;  ppc.png  mean images and calibration
    <split>/         train/ and test/, each with
        reference.nc     posterior, sample_stats (energy, step size, tree depth, leapfrog steps, acceptance,
                         divergences), log_likelihood (per point), posterior_predictive (25 draws per chain),
                         observed_data
        guide.nc         the guide's independent draws, cut into 4 chains where they divide by 4 (same dims
                         and coords; their log_likelihood, 100 predictive draws in all)
        summary.json     that split's part of the summary
        pair.png         az.plot_pair: NUTS (KDE) against the guide (dots), worst point, its two units of largest KL
        khat.png         az.plot_khat;   ppc_arviz.png   az.plot_ppc of each image's mean value, reference and guide

The whole folder is written as a new one beside it (``.diagnostics.PID.XXXX.new``) and swapped in when complete
(``runs.files.new_folder``), so an interrupted diagnosis leaves the earlier one or the new one, never a mixture, and a
split not diagnosed this time leaves nothing behind from an earlier diagnosis.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import arviz as az
import numpy as np
import torch

from pyro_vae.inference.diagnostics import figures
from pyro_vae.inference.diagnostics.guide_check import gaps, guide_draws, guide_idata, khat_of, khat_shares, log_weights, \
    moment_comparison
from pyro_vae.inference.diagnostics.points import split_points
from pyro_vae.inference.diagnostics.reference import Reference, layer_layout, nuts_reference
from pyro_vae.inference.evaluate.collapse import posterior_collapse
from pyro_vae.inference.memory import require_memory
from pyro_vae.inference.runs.files import new_folder, write_json
from pyro_vae.inference.param_state import in_run_store

COMPARED = {  # the figures compared across splits (means over each split's points), and their labels
    "khat_median": "PSIS k-hat, median", "khat_above_0.7": "share of points with k-hat > 0.7",
    "amortization_gap": "amortization gap (nats)", "approximation_gap": "approximation gap (nats)",
    "elbo_amortized": "ELBO of the guide (nats)", "log_px": "log p(x), importance sampled",
    "mean_error_in_sd": "guide's mean error (posterior sd)", "gaussian_kl": "Gaussian KL, guide to NUTS"}


POINT_GROUPS = ["posterior", "log_likelihood", "posterior_predictive", "observed_data"]  # with a point dim


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
    """What ``examine`` finds for a run's points of one split: the NUTS reference and the guide's draws as
    InferenceData with the same dims and coords (posterior, log_likelihood, posterior_predictive,
    observed_data; the reference also sample_stats), and the summary ``vae diagnose`` stores."""
    reference: az.InferenceData
    guide: az.InferenceData
    summary: dict


GUIDE_SAMPLES = 5000  # the guide's draws per point: k = 5000 importance samples for log p(x), as the evaluator's


def examine(run, indices: Sequence[int], chains: int = 4, draws: int = 500, warmup: int = 500,
            guide_samples: int = GUIDE_SAMPLES, seed: int = 0, split: str = "test") -> Diagnosis:
    """The guide against NUTS on the points ``indices`` of ``split``: one set of ``guide_samples`` guide draws
    serves the moments, PSIS k-hat and the amortized ELBO of the gaps. ``az.loo(d.reference)``,
    ``az.compare({"nuts": d.reference, "guide": d.guide})`` and ``az.plot_pair`` take the result as it is."""
    return examine_splits(run, {split: indices}, chains, draws, warmup, guide_samples, seed)[split]


@in_run_store
def examine_splits(run, points: dict, chains: int = 4, draws: int = 500, warmup: int = 500,
                   guide_samples: int = GUIDE_SAMPLES, seed: int = 0) -> dict:
    """``{split: Diagnosis}`` for ``points = {split: indices}``, all points in one NUTS run and one pass of
    each estimator, then cut per split. The posteriors factorize over points, so sampling them together
    changes the draws' targets in nothing; the sampler's adaptation (step size, mass matrix, trajectory
    length) and its divergence flags are shared, as among the points of one split already, so each split's
    ``sample_stats`` and divergence count are those of the one run. The collapse report (of the test set)
    is in each summary."""
    start = time.perf_counter()
    layout = layer_layout(run.model)  # a hierarchy: every layer, sampled jointly, reported one by one
    units = max(part.stop for part in layout.values())
    total = sum(len(indices) for indices in points.values())
    require_memory(diagnosis_bytes(total, units, run.data.event_shape.numel(), chains, draws, guide_samples),
                   f"diagnosing {total} points ({chains} chains x {draws} NUTS draws, {guide_samples} guide draws)",
                   "ask for fewer --draws, --chains, --guide-samples or --points")
    x = torch.cat([split_points(run, split, indices) for split, indices in points.items()])
    model, guide = run.model.eval(), run.guide.eval()
    torch.manual_seed(seed)
    z_guide, log_q = guide_draws(guide, x, guide_samples)
    everything = list(range(total))
    reference = nuts_reference(model, x, everything, z_guide.mean(0), chains, draws, warmup, seed)
    guide_data = guide_idata(z_guide, everything, layout, model, x)
    ref_draws = np.concatenate([reference.idata.posterior[name].values for name in layout], -1)
    ref_draws = ref_draws.reshape(-1, total, z_guide.shape[-1])  # (chains x draws, P, Z)
    moments = moment_comparison(ref_draws, z_guide.cpu().numpy())
    log_w = log_weights(model, guide, x, draws=(z_guide, log_q))
    per_point = {**moments, **gaps(model, guide, x, seed=seed, log_w=log_w, draws=z_guide),
                 "khat": khat_of(log_w)}  # the same draws' weights: no second decoder pass
    collapse = posterior_collapse(model, guide, run.data.test_x, seed=seed, y=run.labels())
    rate_share = None if collapse.kl_per_dim is None else \
        (np.asarray(collapse.kl_per_dim) / max(sum(collapse.kl_per_dim), 1e-12)).tolist()
    seconds, found, offset = time.perf_counter() - start, {}, 0
    for split, indices in points.items():
        part = slice(offset, offset + len(indices))
        offset += len(indices)
        cut = lambda idata: idata.isel(point=part, groups=POINT_GROUPS).assign_coords(  # noqa: E731
            point=np.asarray(indices), groups=POINT_GROUPS)  # sample_stats: the one NUTS run's, as it is
        ref = Reference.of(cut(reference.idata), reference.divergences)
        mine = {k: np.asarray(v)[part] for k, v in per_point.items()}
        summary = {
            "split": split, "points": list(map(int, indices)), "reference": ref.summary(),
            "reference_note": "converged" if ref.converged else
            f"NOT a reference: R-hat {ref.max_rhat:.3f} > 1.01; run more --draws or --warmup",
            "per_point": {k: v.tolist() for k, v in mine.items()},
            "khat": khat_shares(mine["khat"]),
            "mean": {k: float(np.mean(v)) for k, v in mine.items() if np.ndim(v) == 1 and k != "khat"},
            "collapse": {**collapse.to_dict(), "rate_share": rate_share},
            "by_layer": None if len(layout) == 1 else by_layer(ref_draws[:, part], z_guide[:, part].cpu().numpy(),
                                                               layout),
            "seconds": seconds,
        }
        found[split] = Diagnosis(ref.idata, cut(guide_data), summary)
    return found


def comparison(found: dict) -> dict:
    """The splits side by side: ``{figure: {split: value}}``, the means over each split's points."""
    def figures_of(s):
        return {"khat_median": s["khat"]["median"], "khat_above_0.7": s["khat"]["share_above_0.7"],
                **{k: s["mean"][k] for k in COMPARED if k in s["mean"]}}
    rows = {split: figures_of(d.summary) for split, d in found.items()}
    return {name: {split: row[name] for split, row in rows.items()} for name in COMPARED}


def diagnose(run, out: Path, points: dict, chains: int = 4, draws: int = 500, warmup: int = 500,
             guide_samples: int = GUIDE_SAMPLES, seed: int = 0, screening: dict | None = None,
             writing=None) -> dict:
    """``examine_splits``, then everything into ``out`` (see the module docstring) inside the context
    ``writing()`` if given (the CLI's: refused if the run folder was trained anew meanwhile); returns the summary."""
    found = examine_splits(run, points, chains, draws, warmup, guide_samples, seed)
    with writing() if writing else contextlib.nullcontext():
        return _write_diagnosis(run, out, found, seed, screening)


def _write_diagnosis(run, out: Path, found: dict, seed: int, screening: dict | None) -> dict:
    with new_folder(out) as fresh:
        return _write_into(run, fresh, found, seed, screening)


def _write_into(run, out: Path, found: dict, seed: int, screening: dict | None) -> dict:
    layout = layer_layout(run.model)
    for split, d in found.items():
        folder = out / split
        folder.mkdir()
        d.reference.to_netcdf(str(folder / "reference.nc"))
        d.guide.to_netcdf(str(folder / "guide.nc"))
        write_json(folder / "summary.json", d.summary)
        ref_draws = np.concatenate([d.reference.posterior[name].values for name in layout], -1)
        z_guide = np.concatenate([d.guide.posterior[name].values for name in layout], -1)
        z_guide = z_guide.reshape(-1, *z_guide.shape[2:])  # (chains x draws, P, Z)
        ref_draws = ref_draws.reshape(-1, *z_guide.shape[1:])
        s = d.summary
        worst = int(np.argmax(s["per_point"]["gaussian_kl"]))
        dims = np.argsort(s["per_point"]["kl_per_dim"][worst])[::-1][:2].tolist()
        names = [unit_name(layout, k) for k in dims]
        figures.figure(folder / "pair.png", lambda plt: figures.pair(plt, ref_draws[:, worst, dims], z_guide[:, worst, dims],
                                                                     f"{split} point {s['points'][worst]}", names))
        figures.figure(folder / "khat.png", lambda plt: figures.khat(plt, np.asarray(s["per_point"]["khat"]),
                                                                     s["points"], split))
        figures.figure(folder / "ppc_arviz.png", lambda plt: figures.ppc(plt, d))
    first = next(iter(found.values()))
    summaries = {split: {k: v for k, v in d.summary.items() if k != "collapse"} for split, d in found.items()}
    summary = {"splits": summaries, "comparison": comparison(found), "collapse": first.summary["collapse"],
               "screening": screening, "seconds": first.summary["seconds"]}
    summary["ppc"] = figures.posterior_predictive(run, out / "ppc.png", seed)
    figures.figure(out / "splits.png", lambda plt: figures.splits(plt, summaries))
    figures.figure(out / "energy.png", lambda plt: az.plot_energy(first.reference, figsize=(5, 3.5)).figure)
    figures.figure(out / "kl_per_dim.png", lambda plt: figures.kl_bars(plt, summary["collapse"]["kl_per_dim"]))
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
