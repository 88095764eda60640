"""Label conditioning for the conditional VAE (seed 002): p(x | z, y) and q(z | x, y).

Both wrappers leave the wrapped network unchanged: the decoder sees [z, onehot(y)],
the encoder's features are joined with onehot(y) before a final linear layer.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def one_hot(y: torch.Tensor, num_classes: int, like: torch.Tensor) -> torch.Tensor:
    """onehot(y) broadcast to ``like``'s leading (particle, batch) dimensions."""
    # a comparison, not F.one_hot: no host read of max(y), so the program stays capturable
    code = (y.long().unsqueeze(-1) == torch.arange(num_classes, device=y.device)).to(like.dtype)
    return code.expand(like.shape[:-1] + (num_classes,))


class LabelConditionedDecoder(nn.Module):
    """decoder([z, onehot(y)]); ``decoder`` was built for latent_dim + num_classes inputs."""

    def __init__(self, decoder: nn.Module, num_classes: int):
        super().__init__()
        self.decoder, self.num_classes = decoder, num_classes

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The wrapped decoder's output for codes z (..., Z) and labels y: decoder([z, onehot(y)])."""
        return self.decoder(torch.cat([z, one_hot(y, self.num_classes, z)], -1))


class LabelConditionedEncoder(nn.Module):
    """Linear([act(features(x)), onehot(y)]) -> out_dim."""

    def __init__(self, features: nn.Module, feature_dim: int, out_dim: int, num_classes: int):
        super().__init__()
        self.features, self.num_classes = features, num_classes
        self.head = nn.Linear(feature_dim + num_classes, out_dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The encoder's output (..., out_dim) for data x and labels y: head([relu(features(x)), onehot(y)])."""
        h = F.relu(self.features(x))
        return self.head(torch.cat([h, one_hot(y, self.num_classes, h)], -1))
