"""Amortized posteriors q(z | x): encoder networks and the guides built on them."""
from .diagonal_normal import DiagonalNormalGuide
from .registry import GUIDES

__all__ = ["GUIDES", "DiagonalNormalGuide"]
