"""Which data points ``vae diagnose`` examines, from the training or the test split.

An amortized guide is fitted to its training points; judged on those alone it looks better than it is.
Cremer et al. (2018, "Inference suboptimality in VAEs") show the amortization gap growing on held-out
points as the encoder overfits, so ``vae diagnose`` examines both splits, the same number of points each:
chosen by index, at random, or as the worst by PSIS k-hat after a fast screening pass (the guide's own
draws only, no NUTS) over many points.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from pyro_vae.inference.diagnostics.guide_check import khat_of, log_weights
from pyro_vae.inference.errors import UserError

SPLITS = ("train", "test")
POINTS, SCREEN = 20, 1000  # vae diagnose's defaults: random points per split; points screened by --worst
TRAIN_BINARIZE_SEED = 1_000_003  # + the index: the diagnosed binarization of each training image
SCREEN_DRAWS = 200  # guide draws per screened point: enough for k-hat to rank points, a fifth of a full pass


def split_points(run, split: str, indices: Sequence[int]) -> torch.Tensor:
    """The points ``indices`` of ``split`` as the model scores them. A dynamically binarized run's training
    images are grey levels (each batch is drawn afresh); each is binarized here by a draw of its own, seeded
    by its index, so a training point is the same binary image whichever other points are chosen with it."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose train or test")
    indices = [int(i) for i in indices]
    x = getattr(run.data, f"{split}_x")[torch.as_tensor(indices, dtype=torch.long)]
    if split == "train" and run.config.data.binarize == "dynamic":
        u = torch.stack([torch.rand(x.shape[1:], generator=torch.Generator().manual_seed(TRAIN_BINARIZE_SEED + i))
                         for i in indices])
        x = (u.to(x.device) < x).to(x.dtype)  # Bernoulli(x), one fixed draw per training image
    return x


def split_size(run, split: str) -> int:
    return getattr(run.data, f"{split}_x").shape[0]


def choose_points(num_points: int, count: int, indices: Optional[Sequence[int]], seed: int,
                  split: str = "test") -> list[int]:
    """``indices`` checked against the split's size, or ``count`` distinct points at random."""
    if indices:
        bad = [i for i in indices if not 0 <= i < num_points]
        if bad:
            raise UserError(f"{split} index {bad[0]} is out of range 0..{num_points - 1}")
        repeated = sorted({i for i in indices if list(indices).count(i) > 1})
        if repeated:
            raise UserError(f"--indices names {split} point {repeated[0]} twice; give each point once")
        return list(indices)
    if not 0 < count <= num_points:
        raise UserError(f"--points must be in 1..{num_points} (the {split} set's size), got {count}")
    return sorted(np.random.default_rng(seed).choice(num_points, count, replace=False).tolist())


@torch.no_grad()
def screen_khat(run, split: str, indices: Sequence[int], draws: int = SCREEN_DRAWS, seed: int = 0,
                batch_size: int = 500) -> np.ndarray:
    """PSIS k-hat of the guide as a proposal for each point (``draws`` guide draws each, no reference)."""
    torch.manual_seed(seed)
    model, guide = run.model.eval(), run.guide.eval()
    found = []
    for start in range(0, len(indices), batch_size):
        x = split_points(run, split, indices[start:start + batch_size])
        found.append(khat_of(log_weights(model, guide, x, draws)))
    return np.concatenate(found)


def worst_points(run, split: str, count: int, screen: int, seed: int = 0) -> tuple[list[int], dict]:
    """The ``count`` points of largest k-hat among ``screen`` random points of ``split`` (all of them when the
    split is smaller), and what the screening found: the k-hat shares over every screened point."""
    size = split_size(run, split)
    if not 0 < count <= min(screen, size):
        raise UserError(f"--worst must be in 1..{min(screen, size)} (the points screened), got {count}")
    screened = choose_points(size, min(screen, size), None, seed, split)
    khat = screen_khat(run, split, screened, seed=seed)
    order = np.argsort(-khat, kind="stable")[:count]
    return sorted(int(screened[i]) for i in order), {
        "screened": len(screened), "draws": SCREEN_DRAWS, "median_khat": float(np.median(khat)),
        "share_above_0.7": float((khat > 0.7).mean()), "chosen_min_khat": float(khat[order].min())}
