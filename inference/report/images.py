"""Image grids of a trained VAE (``torchvision.utils``), written atomically as PNG."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import torch
from torch import nn
from torchvision.utils import make_grid, save_image

from pyro_vae.inference.runs.files import atomic_write


def grid(images: torch.Tensor, nrow: int) -> torch.Tensor:
    """Images (N, C, H, W) as one (C, H', W') picture, ``nrow`` to a row, white borders. Values in [0, 1]
    (a decoder's means may overshoot here and there: clamped); images of another range, more than 1 % of
    their values far outside [0, 1] (an array of 0..255 grey levels), are shown from their smallest to their
    largest value instead."""
    images = images.detach().float().cpu()
    if ((images < -0.5) | (images > 1.5)).float().mean() > 0.01:
        lo, hi = float(images.min()), float(images.max())
        images = (images - lo) / (hi - lo) if hi > lo else torch.full_like(images, 0.5)
    return make_grid(images.clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)


def save_picture(picture: torch.Tensor, path: Path) -> None:
    atomic_write(Path(path), lambda fh: save_image(picture, fh, format="png"))


def save_grid(images: torch.Tensor, path: Path, nrow: int) -> None:
    save_picture(grid(images, nrow), path)


@torch.no_grad()
def decoded(model: nn.Module, z: torch.Tensor, label: Optional[int] = None) -> torch.Tensor:
    """E[x | z (, y = label)] for each row of ``z``: images (means, not noisy draws)."""
    device = next(model.parameters()).device
    z = z.to(device, torch.get_default_dtype())
    y = None if label is None else torch.full((z.shape[0],), label, dtype=torch.long, device=device)
    return model.decode_mean(z, y)


@torch.no_grad()
def prior_draws(model: nn.Module, n: int, seed: int = 0) -> torch.Tensor:
    """n codes z ~ p(z) from the model's prior, on a private stream seeded by ``seed`` (global RNG untouched)."""
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        z = model.prior(torch.Size([n])).sample()
        return model.descend(z) if hasattr(model, "descend") else z  # a hierarchy: z_1, what the decoder reads


def prior_samples(model: nn.Module, n: int, seed: int = 0, label: Optional[int] = None) -> torch.Tensor:
    """E[x | z (, y = label)] for z ~ p(z): n images."""
    return decoded(model, prior_draws(model, n, seed), label)


def _square(n: int) -> int:
    return max(1, int(round(n ** 0.5)))


@torch.no_grad()
def reconstruction_grid(model: nn.Module, guide: nn.Module, x: torch.Tensor, n: int = 32, per_row: int = 8,
                        y: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Rows alternate: ``per_row`` test images, then their reconstructions E[x | z], z ~ q(z | x).

    The n images are spread evenly over ``x`` (test sets are often sorted by class)."""
    pick = torch.linspace(0, x.shape[0] - 1, min(n, x.shape[0]), device=x.device).long()
    x, y = x[pick], None if y is None else y[pick]
    recon = model.decode_mean(guide(x, y), y)
    rows = []
    for start in range(0, x.shape[0], per_row):
        rows += [x[start:start + per_row], recon[start:start + per_row]]
    return grid(torch.cat(rows), per_row)


def pyplot():
    """matplotlib's pyplot, on the non-interactive Agg backend (no display needed) unless the process has chosen
    its own (a notebook's inline backend, ``MPLBACKEND``, a script that imported pyplot first): the library's
    figures are saved and closed, never shown, so it leaves a user's backend, and their figures, as it found them."""
    import os
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, dpi: int = 100) -> None:
    """Write a matplotlib figure as PNG atomically (beside the target, then renamed) and close it."""
    fig.tight_layout()
    atomic_write(Path(path), lambda f: fig.savefig(f, format="png", dpi=dpi))
    pyplot().close(fig)


def __getattr__(name: str):
    """0.3's picture writers for a bare model (removed in 0.4.0; shims for one minor version): a run's pictures
    are ``pyro_vae.inference.report.outputs.save_decoded_codes``, ``save_samples`` and ``save_run_reconstructions``."""
    replacement = {"save_decoded": "save_decoded_codes(run, z, path)", "save_prior_samples": "save_samples(run, path)",
                   "save_reconstructions": "save_run_reconstructions(run, path)"}.get(name)
    if replacement is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"pyro_vae.inference.report.images.{name} is deprecated: use "
                  f"pyro_vae.inference.report.outputs.{replacement}", DeprecationWarning, stacklevel=2)
    return {"save_decoded": lambda model, z, path, label=None: save_grid(decoded(model, z, label), path,
                                                                         nrow=_square(z.shape[0])),
            "save_prior_samples": lambda model, path, n=64, seed=0, label=None: save_grid(
                prior_samples(model, n, seed, label), path, nrow=_square(n)),
            "save_reconstructions": lambda model, guide, x, path, n=32, per_row=8, y=None: save_picture(
                reconstruction_grid(model, guide, x, n, per_row, y), path)}[name]
