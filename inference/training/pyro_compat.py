"""The one place that reaches inside Pyro, with the release range it was checked against.

Pyro's ``Trace_ELBO.differentiable_loss`` and ``TraceMeanField_ELBO.differentiable_loss`` end in
``warn_if_nan(surrogate)`` and ``loss + (surrogate - torch_item(surrogate))``: a host read and a
Python branch on a tensor, which stop a graph capture. ``losses_as_tensors()`` rebinds the two names in
those modules for the duration of a capture: ``torch_item`` returns the detached tensor (the same value,
so ``loss + (surrogate - surrogate.detach())``), and the NaN warning is left to the training step's own
finiteness guard. ``tests/inference/training/test_pyro_compat.py`` fails loudly on a Pyro release that renames them or
stops calling them there; outside ``TESTED`` the capture is not attempted and the trainer falls back to
Pyro's interpreter with a note.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import pyro
import pyro.infer.trace_elbo
import pyro.infer.trace_mean_field_elbo
import torch

TESTED = ("1.9.",)  # pyro-ppl releases this shim was checked against (pyproject pins the same range)
PATCHED_MODULES = (pyro.infer.trace_elbo, pyro.infer.trace_mean_field_elbo)
PATCHED_NAMES = ("torch_item", "warn_if_nan")


def supported() -> bool:
    return pyro.__version__.startswith(TESTED)


def unsupported_reason() -> str:
    return f"pyro-ppl {pyro.__version__} is outside the releases the capture was checked with ({', '.join(TESTED)}x)"


def _detached(value):
    return value.detach() if torch.is_tensor(value) else value


def _no_warning(*args, **kwargs) -> None:
    return None


@contextlib.contextmanager
def losses_as_tensors() -> Iterator[None]:
    """Pyro's Trace_ELBO and TraceMeanField_ELBO keep their loss a tensor inside the block."""
    saved = [(m, {name: getattr(m, name) for name in PATCHED_NAMES}) for m in PATCHED_MODULES]
    try:
        for module, _ in saved:
            module.torch_item, module.warn_if_nan = _detached, _no_warning
        yield
    finally:
        for module, names in saved:
            for name, value in names.items():
                setattr(module, name, value)
