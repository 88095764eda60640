"""Shims for public names that moved: for one minor version the old name still works and warns, naming where
the name lives now (``CHANGELOG.md``)."""
from __future__ import annotations

import importlib
import warnings
from typing import Callable


def moved_names(module: str, moved: dict[str, str], since: str = "0.4.0") -> Callable[[str], object]:
    """A module ``__getattr__`` for ``module``: each name of ``moved`` (name -> the module it lives in now) is
    looked up there, with a ``DeprecationWarning``; any other name is an ``AttributeError``."""
    def __getattr__(name: str):
        if name not in moved:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(f"{module}.{name} moved in {since}: import it from {moved[name]}", DeprecationWarning,
                      stacklevel=2)
        return getattr(importlib.import_module(moved[name]), name)

    return __getattr__
