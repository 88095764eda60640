"""Convolutional encoder and decoder for C x H x W images with H, W divisible by 4
(28 x 28 x 1 digits, 32 x 32 x 3 colour images).

The decoder doubles the resolution twice, either by transposed convolution
(seed 000: the adjoint of a strided convolution) or by depth-to-space (seed 003,
slide 16: a stride-1 convolution to 4x the channels, then ``PixelShuffle(2)``).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .networks import ACTIVATIONS, check_input

UPSAMPLERS = ("transposed", "pixel_shuffle")


def _upsample(in_ch: int, out_ch: int, mode: str) -> nn.Module:
    if mode == "transposed":
        return nn.ConvTranspose2d(in_ch, out_ch, kernel_size=4, stride=2, padding=1)
    if mode == "pixel_shuffle":
        return nn.Sequential(nn.Conv2d(in_ch, 4 * out_ch, kernel_size=3, padding=1), nn.PixelShuffle(2))
    raise ValueError(f"unknown upsampling {mode!r}; choose one of: {', '.join(UPSAMPLERS)}")


def _check(event_shape: torch.Size) -> None:
    if len(event_shape) != 3 or event_shape[1] % 4 or event_shape[2] % 4:
        raise ValueError(f"convolutional networks need C x H x W images with H, W divisible by 4, got {tuple(event_shape)}")


class ConvEncoder(nn.Module):
    """x (..., C, H, W) -> two stride-2 convolutions -> linear -> (..., out_dim)."""

    def __init__(self, event_shape: torch.Size, out_dim: int, channels: int = 32, activation: str = "relu"):
        super().__init__()
        _check(event_shape)
        c, h, w = event_shape
        act = ACTIVATIONS[activation]
        self.event_shape = torch.Size(event_shape)
        self.net = nn.Sequential(
            nn.Conv2d(c, channels, 4, stride=2, padding=1), act(),
            nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1), act(),
            nn.Flatten(), nn.Linear(2 * channels * (h // 4) * (w // 4), out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features (..., out_dim) of images x (..., C, H, W); any leading dimensions."""
        check_input(x, self.event_shape)
        batch = x.shape[:-3]
        return self.net(x.reshape(-1, *self.event_shape)).reshape(*batch, -1)


class ConvDecoder(nn.Module):
    """z (..., Z) -> linear -> (2ch, H/4, W/4) -> two x2 upsamplings -> (..., [P,] C, H, W)."""

    def __init__(self, latent_dim: int, event_shape: torch.Size, channels: int = 32, activation: str = "relu",
                 params_per_pixel: int = 1, upsample: str = "transposed"):
        super().__init__()
        _check(event_shape)
        c, h, w = event_shape
        act = ACTIVATIONS[activation]
        self.seed_shape = (2 * channels, h // 4, w // 4)
        self.out_shape = torch.Size(event_shape) if params_per_pixel == 1 else \
            torch.Size([params_per_pixel, *event_shape])
        self.net = nn.Sequential(
            nn.Linear(latent_dim, math.prod(self.seed_shape)), act(), nn.Unflatten(1, self.seed_shape),
            _upsample(2 * channels, channels, upsample), act(),
            _upsample(channels, c * params_per_pixel, upsample))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """The likelihood's parameters (..., [P,] C, H, W) for codes z (..., Z)."""
        batch = z.shape[:-1]
        return self.net(z.reshape(-1, z.shape[-1])).reshape(*batch, *self.out_shape)
