"""A run's samples and reconstructions in the form its data has: image grids for images; for arrays (a
(N, D) matrix of measurements or counts) a heat map beside the data's and a CSV of the rows. Both are in
the data's own units (``--standardize`` undone)."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Optional

import torch

from pyro_vae.inference.evaluate.elbo import evaluation_mode
from pyro_vae.inference.report.images import decoded, pyplot, save_figure, save_grid, save_picture, prior_draws, \
    reconstruction_grid, _square
from pyro_vae.inference.errors import UserError
from pyro_vae.inference.memory import require_memory
from pyro_vae.inference.runs.files import atomic_write_text
from pyro_vae.inference.runs.layout import csv_path
from pyro_vae.inference.param_state import in_run_store

ROWS_SHOWN = 32
MAX_PICTURES = 4096  # images in one grid (a 64 x 64 grid); more are drawn as several grids, by --seed


def check_picture_count(n: int, run=None) -> None:
    """Refuse a grid of more than ``MAX_PICTURES`` images, and (given the run) one whose decoded means cannot
    fit in memory: the images, their 8-bit grid and a copy, 12 bytes a number."""
    if n > MAX_PICTURES:
        raise UserError(f"a grid holds at most {MAX_PICTURES} images, not {n}; draw several grids of at most "
                        f"{MAX_PICTURES} (with different --seed values)")
    if run is not None:
        require_memory(12 * n * run.data.event_shape.numel(), f"{n} decoded samples")



def write_rows(path: Path, rows: torch.Tensor, first: Optional[tuple[str, list]] = None, names=()) -> None:
    """Rows (n, ...) flattened to a CSV with a header of the data's column ``names`` (else x0, x1, ...);
    ``first``: a leading (name, values) column."""
    flat = rows.detach().flatten(1).cpu().tolist()
    width = len(flat[0]) if flat else 0
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(([first[0]] if first else []) + (list(names) if len(names) == width else
                                                      [f"x{j}" for j in range(width)]))
    for i, row in enumerate(flat):
        writer.writerow(([first[1][i]] if first else []) + [f"{v:.6g}" for v in row])
    atomic_write_text(Path(path), out.getvalue())


def save_heat_maps(panels: list[tuple[str, torch.Tensor]], path: Path) -> None:
    """Side-by-side heat maps of (n, D) rows on one colour scale (the first panel's 1st to 99th percentile:
    counts are heavy-tailed), one row per point."""
    import numpy as np

    plt = pyplot()
    mats = [t.detach().flatten(1).float().cpu().numpy() for _, t in panels]
    lo, hi = (float(v) for v in np.percentile(mats[0], [1, 99]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), squeeze=False)
    for ax, (title, _), mat in zip(axes[0], panels, mats):
        shown = ax.imshow(mat, aspect="auto", interpolation="nearest", cmap="viridis", vmin=lo, vmax=hi)
        ax.set(title=title, xlabel="feature", ylabel="row")
    fig.colorbar(shown, ax=axes[0][-1])
    save_figure(fig, path)


def _test_rows(run, n: int) -> torch.Tensor:
    x = run.data.test_x
    return torch.linspace(0, x.shape[0] - 1, min(n, x.shape[0]), device=x.device).long()


@torch.no_grad()
def save_decoded_codes(run, z: torch.Tensor, path: Path, label: Optional[int] = None,
                       what: str = "samples E[x | z]") -> None:
    """E[x | z] for the rows of ``z``: a grid of images, or (arrays) a heat map beside test rows and a CSV."""
    means = run.data.original(decoded(run.model, z, label))
    if run.data.is_image:
        save_grid(means, path, nrow=_square(z.shape[0]))
        return
    data = run.data.original(run.data.test_x[_test_rows(run, z.shape[0])])
    save_heat_maps([("test data", data), (what, means)], path)
    write_rows(csv_path(path), means, names=run.data.feature_names)


@in_run_store
def save_samples(run, path: Path, n: int = 64, seed: int = 0, label: Optional[int] = None) -> None:
    """E[x | z], z ~ p(z): ``n`` samples from the run's prior, on a private stream seeded by ``seed``."""
    save_decoded_codes(run, prior_draws(run.model, n, seed), path, label)


@torch.no_grad()
@in_run_store
def save_run_reconstructions(run, path: Path, n: int = ROWS_SHOWN) -> None:
    """Test points above (images) or beside (arrays) their reconstructions E[x | z], z ~ q(z | x)."""
    x, y = run.data.test_x, run.labels()
    if run.data.is_image and run.data.shift is None:
        save_picture(reconstruction_grid(run.model, run.guide, x, n, y=y), path)
        return
    pick = _test_rows(run, n)
    with evaluation_mode(0, x.device, run.model, run.guide):
        recon = run.model.decode_mean(run.guide(x[pick], None if y is None else y[pick]),
                                      None if y is None else y[pick])
    data, recon = run.data.original(x[pick]), run.data.original(recon)
    if run.data.is_image:
        rows = torch.stack([data, recon], 1).reshape(-1, *data.shape[1:])
        save_grid(rows, path, nrow=8)
        return
    save_heat_maps([("test data", data), ("reconstructions E[x | z]", recon)], path)
    write_rows(csv_path(path), recon, ("test_row", pick.tolist()), names=run.data.feature_names)
