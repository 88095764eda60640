"""``vae report RUN``: one self-contained HTML page of a run, readable offline.

The config, the library versions, the per-epoch metrics, ``evaluation.json`` when ``vae evaluate`` has
written one, the diagnostics when ``vae diagnose`` has run (the training and test points side by side, the
NUTS reference's convergence, ArviZ's plots), and every PNG of the run folder (image grids and plots)
inlined as ``data:`` URIs: the page references no other file and no network address, and its
Content-Security-Policy forbids scripts and any load but its own inline images. Missing plots are drawn first
(``pyro_vae.inference.report.plots``). Every file is checked before it is shown (``layout.read_json``: a
regular file of the run folder, of its schema; ``config.json`` as ``RunConfig.from_dict`` reads it): a damaged
one ends in one line naming it, and no page is written. Every string shown is escaped.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path

from pyro_vae.inference.config.sections import RunConfig
from pyro_vae.inference.runs.files import atomic_write_text
from pyro_vae.inference.runs.paths import read_regular
from pyro_vae.inference.errors import UserError
from pyro_vae.inference.report.plots import CURVES, INTERPOLATIONS, LATENT, MANIFOLD, NEIGHBOURS, PLOTS, write_plots
from pyro_vae.inference.runs import lock
from pyro_vae.inference.runs.layout import (CONFIG, DIAGNOSTICS, EVALUATION, METRICS, RECONSTRUCTIONS, REPORT, SAMPLES,
                                            SAMPLES_EX_POST, VERSIONS, WEIGHTS, check_entries, read_json, read_metrics,
                                            weights_sha256)
from pyro_vae.inference.runs.run import load_run
CAPTIONS = {
    CURVES: "Training curves: train objective and test ELBO; test distortion and rate (nats per image).",
    SAMPLES: "Samples: E[x | z] for z ~ p(z).",
    SAMPLES_EX_POST: "Samples: E[x | z] for z from a Gaussian mixture fitted to the training codes (vae sample --ex-post K).",
    RECONSTRUCTIONS: "Test images (odd rows) above their reconstructions E[x | z], z ~ q(z | x).",
    LATENT: "Test codes coloured by label (2-D codes directly, else the first two principal components).",
    MANIFOLD: "The learned manifold: E[x | z] over a grid of z = Φ⁻¹(u) (Kingma & Welling 2014, Fig. 4).",
    INTERPOLATIONS: "Interpolations in latent space between pairs of test images (the end images framed).",
    NEIGHBOURS: "Prior samples (first column) and their nearest training images in pixel space.",
    "diagnostics/splits.png": "PSIS k-hat of each examined point (az.plot_khat) per split, and the mean amortization "
                              "and approximation gaps (Cremer et al. 2018) with their standard errors.",
    "diagnostics/energy.png": "az.plot_energy of the NUTS reference: marginal energy against energy transitions "
                              "(BFMI); similar widths mean the sampler explores the posterior well.",
    "diagnostics/kl_per_dim.png": "Rate carried by each latent dimension (KL(q || p) per test point).",
    "diagnostics/ppc.png": "Mean images of the test data, of reconstructions and of prior samples; calibration.",
    "pair.png": "az.plot_pair of the worst point (largest Gaussian KL): NUTS draws (KDE) against the guide's (dots).",
    "ppc_arviz.png": "az.plot_ppc of each image's mean value: the observed points against the posterior predictive "
                     "of NUTS and of the guide.",
}
DIAGNOSTIC_FIGURES = ("splits.png", "energy.png", "pair.png", "ppc_arviz.png", "kl_per_dim.png", "ppc.png")
STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td.k{text-align:left}figure{display:inline-block;margin:0.5em 1em 1em 0;vertical-align:top}
figcaption{font-size:0.9em;max-width:600px}img{max-width:600px;image-rendering:pixelated;border:1px solid #ddd}
.sections{display:flex;flex-wrap:wrap;gap:1.5em}"""
# no script, no frame, no request: the page shows its own inline style and data: images, nothing else
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
MAX_PNG_BYTES = 64 << 20  # an image grid of the toolkit's is well under 1 MB


def _table(rows: list[dict]) -> str:
    if not rows:
        return "<p>none</p>"
    keys = list(dict.fromkeys(k for row in rows for k in row))
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{_cell(row.get(k))}</td>" for k in keys) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _pairs(mapping: dict) -> str:
    rows = "".join(f"<tr><td class='k'>{html.escape(str(k))}</td><td class='k'>{_cell(v)}</td></tr>"
                   for k, v in mapping.items())
    return f"<table>{rows}</table>"


def _evaluation(folder: Path, evaluation: dict) -> str:
    """``evaluation.json``'s figures, or, when they scored other weights than ``weights.pt`` holds now (training went
    on after ``vae evaluate``), a line saying so instead of numbers that no longer describe the run."""
    scored = evaluation.get("weights_sha256")
    if scored is not None and scored != weights_sha256(folder):
        return (f"<p id='stale-evaluation'>{EVALUATION} scored earlier weights than {WEIGHTS} holds now (training "
                f"went on after it was written); run <code>vae evaluate RUN</code> again for its figures</p>")
    return _pairs({key: value for key, value in evaluation.items() if key != "weights_sha256"})


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 and value else f"{value:,.3f}"
    if isinstance(value, dict):
        return _pairs(value)
    return html.escape("" if value is None else str(value))


def _figure(path: Path, caption: str | None = None) -> str:
    data = base64.b64encode(read_regular(path, MAX_PNG_BYTES) or b"").decode("ascii")
    caption = caption or CAPTIONS.get(path.name, path.name)
    return (f"<figure><img alt='{html.escape(path.name)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _diagnostics(folder: Path) -> list[str]:
    """The section of ``vae diagnose``'s results: the splits side by side, each split's NUTS reference, and
    ArviZ's figures (none when ``diagnostics/summary.json`` is missing or from an older layout)."""
    summary = read_json(folder, f"{DIAGNOSTICS}/summary.json")
    if summary is None or "splits" not in summary:  # none, or of 0.2.0's layout (no splits): not shown
        return []
    from pyro_vae.inference.diagnostics.report import COMPARED

    splits = {split: summary["splits"][split] for split in ("train", "test") if split in summary["splits"]}
    comparison = summary.get("comparison", {})
    rows = [{"": COMPARED[name], **{split: comparison[name].get(split) for split in splits}}
            for name in COMPARED if name in comparison]
    reference = [{"split": split, "points": len(s["points"]), "NUTS reference": s["reference_note"],
                  "max R-hat": s["reference"]["max_rhat"], "min bulk ESS": s["reference"]["min_ess_bulk"],
                  "divergences": s["reference"]["divergences"], "k-hat > 0.7": s["khat"]["share_above_0.7"],
                  "k-hat 0.5-0.7": s["khat"]["share_0.5_to_0.7"], "max k-hat": s["khat"]["max"]}
                 for split, s in splits.items()]
    parts = ["<h2 id='diagnostics'>Diagnostics (<code>vae diagnose</code>)</h2>",
             "<p>The guide against a NUTS reference posterior on training and test points: PSIS k-hat of the guide "
             "as a proposal, the amortization gap ELBO(q*) &minus; ELBO(q) and the approximation gap log p(x) &minus; "
             "ELBO(q*), means over the points (nats per point).</p>",
             f"<div id='diagnostics-comparison'>{_table(rows)}</div>", _table(reference)]
    for name in DIAGNOSTIC_FIGURES:
        top = f"{DIAGNOSTICS}/{name}" in CAPTIONS  # the run's figures; the others are each split's
        for split in ("",) if top else splits:
            path = folder / DIAGNOSTICS / split / name
            if path.is_file():
                caption = CAPTIONS[f"{DIAGNOSTICS}/{name}" if top else name]
                parts.append(_figure(path, caption if top else f"{split} points: {caption}"))
    return parts


def render(folder: Path) -> str:
    """The HTML text of the report of the run in ``folder``."""
    check_entries(folder)
    config = read_json(folder, CONFIG)
    if config is None:
        raise UserError(f"{folder} has no {CONFIG}; is it a run folder written by 'vae train'?")
    RunConfig.load(folder / CONFIG)  # the page shows a config every loader takes, or none
    metrics = read_metrics(folder)
    if not metrics and (folder / WEIGHTS).is_file():  # the two are written as one snapshot, at each epoch's end
        raise UserError(f"{folder / METRICS} records no epoch, but {WEIGHTS} holds a trained model: it is damaged; "
                        f"restore it, or train the run again")
    versions = read_json(folder, VERSIONS) or {}
    evaluation = read_json(folder, EVALUATION)
    order = [SAMPLES, SAMPLES_EX_POST, RECONSTRUCTIONS, *PLOTS]
    pngs = sorted(folder.glob("*.png"), key=lambda p: (order.index(p.name) if p.name in order else len(order), p.name))
    last = metrics[-1] if metrics else None
    summary = (f"{last['epoch']} epochs, {last['steps']} steps: test ELBO {last['test_elbo']:.2f} nats "
               f"(distortion {last['test_distortion']:.2f}, rate {last['test_rate']:.2f})" if last else "not trained yet")
    name = html.escape(folder.resolve().name.encode("utf-8", "replace").decode("utf-8"))
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
             f"<meta http-equiv='Content-Security-Policy' content=\"{POLICY}\"><title>VAE run {name}</title>",
             f"<style>{STYLE}</style></head><body><h1>VAE run <code>{name}</code></h1>",
             f"<p id='summary'>{html.escape(summary)}</p>",
             "<h2>Metrics per epoch</h2>", _table(metrics)]
    if evaluation:
        parts += ["<h2>Evaluation (<code>vae evaluate</code>)</h2>", _evaluation(folder, evaluation)]
    parts += _diagnostics(folder)
    parts += ["<h2>Images and plots</h2>", *(_figure(p) for p in pngs),
              "<h2>Config</h2><div class='sections'>",
              *(f"<div><h3>{html.escape(section)}</h3>{_pairs(values)}</div>" for section, values in config.items()),
              "</div><h2>Versions</h2>", _pairs(versions), "</body></html>"]
    return "\n".join(parts)


def write_report(folder: Path, out: Path | None = None, draw_plots: bool = True) -> Path:
    """Write the report of the run in ``folder`` (to ``folder/report.html`` by default), drawing the plots
    that are missing first."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"run folder {folder} does not exist")
    if draw_plots and (folder / "weights.pt").exists() and not (folder / CURVES).exists():
        run = load_run(folder)
        with run.adding_results(), run.params():
            write_plots(run, folder, read_metrics(folder))
    out = Path(out) if out else folder / REPORT
    with lock.snapshot(folder):  # config and metrics of one epoch, though the run is still training
        text = render(folder)
        atomic_write_text(out, text)  # before a retrain can clear the folder: never the old run's page in the new
    return out
