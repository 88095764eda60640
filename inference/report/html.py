"""``vae report RUN``: one self-contained HTML page of a run, readable offline.

The config, the library versions, the per-epoch metrics, ``evaluation.json`` when ``vae evaluate`` has
written one, and every PNG of the run folder (image grids and plots) inlined as ``data:`` URIs: the page
references no other file and no network address. Missing plots are drawn first (``inference.report.plots``).
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from inference.runs.files import atomic_write_text
from inference.errors import UserError
from inference.report.plots import CURVES, INTERPOLATIONS, LATENT, MANIFOLD, NEIGHBOURS, PLOTS, write_plots
from inference.runs import lock
from inference.runs.folder import RECONSTRUCTIONS, REPORT, SAMPLES, SAMPLES_EX_POST, load_run, read_metrics
CAPTIONS = {
    CURVES: "Training curves: train objective and test ELBO; test distortion and rate (nats per image).",
    SAMPLES: "Samples: E[x | z] for z ~ p(z).",
    SAMPLES_EX_POST: "Samples: E[x | z] for z from a Gaussian mixture fitted to the training codes (vae sample --ex-post K).",
    RECONSTRUCTIONS: "Test images (odd rows) above their reconstructions E[x | z], z ~ q(z | x).",
    LATENT: "Test codes coloured by label (2-D codes directly, else the first two principal components).",
    MANIFOLD: "The learned manifold: E[x | z] over a grid of z = Φ⁻¹(u) (Kingma & Welling 2014, Fig. 4).",
    INTERPOLATIONS: "Interpolations in latent space between pairs of test images (the end images framed).",
    NEIGHBOURS: "Prior samples (first column) and their nearest training images in pixel space.",
}
STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td.k{text-align:left}figure{display:inline-block;margin:0.5em 1em 1em 0;vertical-align:top}
figcaption{font-size:0.9em;max-width:600px}img{max-width:600px;image-rendering:pixelated;border:1px solid #ddd}
.sections{display:flex;flex-wrap:wrap;gap:1.5em}"""


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


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


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 and value else f"{value:,.3f}"
    if isinstance(value, dict):
        return _pairs(value)
    return html.escape("" if value is None else str(value))


def _figure(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    caption = CAPTIONS.get(path.name, path.name)
    return (f"<figure><img alt='{html.escape(path.name)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def render(folder: Path) -> str:
    """The HTML text of the report of the run in ``folder``."""
    config = _read_json(folder / "config.json")
    if config is None:
        raise UserError(f"{folder} has no readable config.json; is it a run folder written by 'vae train'?")
    metrics = read_metrics(folder)
    versions = _read_json(folder / "versions.json") or {}
    evaluation = _read_json(folder / "evaluation.json")
    order = [SAMPLES, SAMPLES_EX_POST, RECONSTRUCTIONS, *PLOTS]
    pngs = sorted(folder.glob("*.png"), key=lambda p: (order.index(p.name) if p.name in order else len(order), p.name))
    last = metrics[-1] if metrics else None
    summary = (f"{last['epoch']} epochs, {last['steps']} steps: test ELBO {last['test_elbo']:.2f} nats "
               f"(distortion {last['test_distortion']:.2f}, rate {last['test_rate']:.2f})" if last else "not trained yet")
    name = html.escape(folder.resolve().name)
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>VAE run {name}</title>",
             f"<style>{STYLE}</style></head><body><h1>VAE run <code>{name}</code></h1>",
             f"<p id='summary'>{html.escape(summary)}</p>",
             "<h2>Metrics per epoch</h2>", _table(metrics)]
    if evaluation:
        parts += ["<h2>Evaluation (<code>vae evaluate</code>)</h2>", _pairs(evaluation)]
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
        write_plots(load_run(folder), folder, read_metrics(folder))
    out = Path(out) if out else folder / REPORT
    with lock.snapshot(folder):  # config and metrics of one epoch, though the run is still training
        text = render(folder)
    atomic_write_text(out, text)
    return out
