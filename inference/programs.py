"""How the library calls a user's Pyro program (model or guide), as Pyro's own ``SVI`` would.

A program is a ``PyroModule``, an ``nn.Module`` or a plain Python callable. The library calls every
program with the batch ``x`` and the keywords of its data convention (``num_data``, ``subsample`` for
the ``"data"`` plate, ``y`` for a conditional program); ``accepting(program)`` passes a program only
the keywords its signature takes, and never a keyword whose value is ``None`` (so ``guide(x)`` works,
and ``y`` reaches only programs that have it).
"""
from __future__ import annotations

import contextlib
import inspect
from typing import Callable, Iterator

from torch import nn


def _signature(program: Callable):
    target = program.forward if isinstance(program, nn.Module) else program
    try:
        return inspect.signature(target)
    except (TypeError, ValueError):  # a builtin or C callable: pass everything, as Pyro does
        return None


def accepted_keywords(program: Callable) -> frozenset[str] | None:
    """The keyword names ``program`` takes; None when it takes any (``**kwargs``) or cannot be inspected."""
    sig = _signature(program)
    if sig is None or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return frozenset(name for name, p in sig.parameters.items()
                     if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY))


class Accepting:
    """``program`` called with only the keywords it accepts (and none that is ``None``)."""

    def __init__(self, program: Callable):
        self.program = program
        self.names = accepted_keywords(program)

    def __call__(self, *args, **kwargs):
        return self.program(*args, **select(kwargs, self.names))

    def __getattr__(self, name: str):
        """Everything else is the program's own (an objective may use ``guide.code``, ``guide.latent_dim``)."""
        program = self.__dict__.get("program")
        if program is None:
            raise AttributeError(name)
        return getattr(program, name)


def select(kwargs: dict, names: frozenset[str] | None) -> dict:
    return {k: v for k, v in kwargs.items() if v is not None and (names is None or k in names)}


def accepting(program: Callable) -> Callable:
    """``program`` wrapped by ``Accepting`` (once: an ``Accepting`` is returned as it is)."""
    return program if isinstance(program, Accepting) else Accepting(program)


def modules(*programs) -> list[nn.Module]:
    """The programs that are ``nn.Module`` s (a plain function has no mode and no parameters of its own)."""
    return [p.program if isinstance(p, Accepting) else p for p in programs
            if isinstance(p.program if isinstance(p, Accepting) else p, nn.Module)]


@contextlib.contextmanager
def eval_mode(*programs) -> Iterator[None]:
    """The ``nn.Module`` programs in eval mode for the block, each restored to its own mode after."""
    chosen = [(m, m.training) for m in modules(*programs)]
    for m, _ in chosen:
        m.eval()
    try:
        yield
    finally:
        for m, training in chosen:
            m.train(training)
