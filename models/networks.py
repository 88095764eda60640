"""Plain ``nn.Module`` networks shared by decoders and encoders.

They hold no Pyro statements: a ``PyroModule`` that owns one registers its
parameters (``pyro.module`` semantics), so they stay ordinary torch state.
"""
from __future__ import annotations

import math

import torch
from torch import nn


ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "softplus": nn.Softplus}


def mlp(in_dim: int, hidden_dim: int, num_hidden_layers: int, out_dim: int,
        activation: str = "relu") -> nn.Sequential:
    """in -> [Linear, activation] x num_hidden_layers -> Linear -> out.

    ``num_hidden_layers = 0`` is a single affine map (the linear decoder of PCA).
    """
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(num_hidden_layers):
        layers += [nn.Linear(width, hidden_dim), ACTIVATIONS[activation]()]
        width = hidden_dim
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class MLPDecoder(nn.Module):
    """z (..., Z) -> decoder output ``(..., *event_shape)``, or ``(..., P, *event_shape)`` for a
    likelihood with P > 1 parameters per pixel: 784-400-Z by default."""

    def __init__(self, latent_dim: int, event_shape: torch.Size, hidden_dim: int = 400,
                 num_hidden_layers: int = 1, activation: str = "relu", params_per_pixel: int = 1):
        super().__init__()
        self.out_shape = torch.Size(event_shape) if params_per_pixel == 1 else \
            torch.Size([params_per_pixel, *event_shape])
        self.net = mlp(latent_dim, hidden_dim, num_hidden_layers, math.prod(self.out_shape), activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """The likelihood's parameters ``(..., *event_shape)`` (or ``(..., P, *event_shape)``) for codes z (..., Z)."""
        out = self.net(z)
        return out.reshape(out.shape[:-1] + self.out_shape)


class MLPEncoder(nn.Module):
    """x ``(B, *event_shape)`` -> features (B, out_dim); flattens the pixels first."""

    def __init__(self, event_shape: torch.Size, out_dim: int, hidden_dim: int = 400,
                 num_hidden_layers: int = 1, activation: str = "relu"):
        super().__init__()
        self.event_shape = torch.Size(event_shape)
        self.event_dims = len(event_shape)
        self.net = mlp(math.prod(event_shape), hidden_dim, num_hidden_layers, out_dim, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features (..., out_dim) of data points x ``(..., *event_shape)``, flattened first."""
        check_input(x, self.event_shape)
        return self.net(x.flatten(-self.event_dims))


def describe(event_shape) -> str:
    """(3, 32, 32) -> '(3, 32, 32) (colour images)'."""
    kind = {1: " (grey images)", 3: " (colour images)"}.get(event_shape[0]) if len(event_shape) == 3 else None
    return f"{tuple(event_shape)}{kind or ''}"


def check_input(x: torch.Tensor, event_shape: torch.Size) -> None:
    """A data point of another shape than the network was built for is refused by name (not a matmul error)."""
    if x.shape[x.dim() - len(event_shape):] != event_shape:
        raise ValueError(f"this network was built for data of shape {describe(event_shape)}, got "
                         f"{describe(x.shape[1:])}; build it for this data (or convert the data: --channels-mode)")


class Log1pInput(nn.Module):
    """encoder(log(1 + x)): counts spanning orders of magnitude enter the encoder on a log scale, as scVI's
    encoder sees them (Lopez et al. 2018); the likelihood still scores the raw counts."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor, *args) -> torch.Tensor:
        return self.encoder(torch.log1p(x), *args)


def flow_hidden_width(latent_dim: int) -> int:
    """The hidden width of an autoregressive flow layer over a ``latent_dim`` code (the flow prior's MAF and
    the IAF guide's layers; ``inference/runs/sizes.py`` counts their parameters with it)."""
    return 4 * latent_dim + 8
