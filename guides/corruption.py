"""Input corruption for the denoising autoencoder / denoising VAE (Vincent et al. 2008; Im et al. 2017).

The guide's encoder sees a corrupted x~ while the model's likelihood scores the clean x, so the
objective rewards reconstructing x from x~. ``mask``: each pixel set to 0 with probability ``level``;
``gaussian``: x + N(0, level^2). Only in training mode; evaluation encodes the clean input.
"""
from __future__ import annotations

import torch
from torch import nn

CORRUPTIONS = ("none", "mask", "gaussian")


def corrupt(x: torch.Tensor, kind: str, level: float) -> torch.Tensor:
    if kind == "mask":
        return x * (torch.rand_like(x) >= level).to(x.dtype)
    if kind == "gaussian":
        return x + level * torch.randn_like(x)
    return x


class CorruptedInput(nn.Module):
    """encoder(corrupt(x)) in training, encoder(x) in evaluation."""

    def __init__(self, encoder: nn.Module, kind: str, level: float):
        super().__init__()
        self.encoder, self.kind, self.level = encoder, kind, level

    def forward(self, x: torch.Tensor, *args) -> torch.Tensor:
        """The wrapped encoder's output for ``x`` corrupted (training mode) or clean (evaluation); further
        arguments (labels) are passed on unchanged."""
        return self.encoder(corrupt(x, self.kind, self.level) if self.training else x, *args)
