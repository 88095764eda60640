"""The bottom-up guide of a hierarchical VAE (Burda et al. 2015, section 5):

    q(z_1, ..., z_L | x) = q(z_1 | x) prod_{l=1}^{L-1} q(z_{l+1} | z_l)

each factor a diagonal Gaussian whose parameters a network computes from the layer below (the first from
the pixels). Sites ``z1`` ... ``zL`` in the ``"data"`` plate, as ``models.hierarchical.HierarchicalVAEModel``
samples them.
"""
from __future__ import annotations

from typing import Optional, Sequence

import pyro
import torch
from pyro.nn import PyroModule
from torch import nn

from models.hierarchical import site
from models.vae import data_plate


class BottomUpGuide(PyroModule):
    """``layers[0]`` maps x to the distribution of z_1 (its input flattened), ``layers[l]`` z_l to z_{l+1}."""

    def __init__(self, layers: Sequence[nn.Module], event_shape: torch.Size):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.event_dims = len(event_shape)

    def forward(self, x: Optional[torch.Tensor] = None, num_data: Optional[int] = None,
                subsample: Optional[torch.Tensor] = None, batch_size: Optional[int] = None):
        if x is None:
            raise ValueError("the guide q(z | x) needs data x")
        with data_plate(x.shape[0], num_data, subsample, x.device):
            h = x.flatten(-self.event_dims)
            for layer, link in enumerate(self.layers, start=1):
                h = pyro.sample(site(layer), link(h))
            return h
