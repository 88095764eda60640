"""A program's own param store, carried by its model and guide.

Pyro keeps ``pyro.param`` values in one global store; ``ParamStoreDict.scope(state)`` swaps in another
(``state`` = ``{"params": {...}, "constraints": {...}}``). A run of this toolkit trains in a private
store, so that two runs in one process never share a ``pyro.param("sigma")`` and the user's global
store is left alone. ``ParamState`` is that store, made current by ``with state.active():``
(re-entrant: an inner block sees the live store, not the state saved when the outer one began, which
Pyro's ``scope`` alone would give).

``bind(module, state)`` makes a model or guide carry its store: every call of the module runs with the
store current (a forward pre-hook enters it, a forward hook that runs even on an exception leaves it).
So ``evaluate_elbo(run.model, run.guide, x)``, ``SVI(run.model, run.guide, ...)`` or any evaluator
reads the trained ``pyro.param`` values of a loaded run, and never creates or overwrites an entry of
the user's global store, without the caller knowing about the run's store.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import pyro
from torch import nn

BINDING = "_vae_param_state"  # the attribute of a bound module that holds its ParamState


def new_param_state() -> dict:
    """An empty private param store (the state ``pyro.get_param_store().scope`` takes)."""
    return {"params": {}, "constraints": {}}


class ParamState:
    """A private param store (``state``: Pyro's ``ParamStoreDict.scope`` state) and how deep it is entered."""

    def __init__(self, state: Optional[dict] = None):
        self.state = state if state is not None else new_param_state()
        self.depth = 0  # blocks open: Pyro's scope writes back only at the outermost one's exit
        self._hook_blocks: list = []  # blocks entered by bound modules' pre-hooks, left by their hooks

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """This store is Pyro's current one inside the block."""
        if self.depth:
            self.depth += 1
            try:
                yield
            finally:
                self.depth -= 1
            return
        self.depth += 1
        try:
            with pyro.get_param_store().scope(self.state):
                yield
        finally:
            self.depth -= 1

    @contextlib.contextmanager
    def standing_in(self, state: dict) -> Iterator[None]:
        """``state`` (a captured graph's inputs under the parameters' names) is the current store inside the
        block, and the bound modules do not swap this store back in."""
        self.depth += 1
        try:
            with pyro.get_param_store().scope(state):
                yield
        finally:
            self.depth -= 1

    # -- forward hooks of bound modules ----------------------------------------------------------------
    def _enter(self, module, args) -> None:
        block = self.active()
        block.__enter__()
        self._hook_blocks.append(block)

    def _leave(self, module, args, output) -> None:
        if self._hook_blocks:
            self._hook_blocks.pop().__exit__(None, None, None)


def bind(module: nn.Module, state: ParamState) -> nn.Module:
    """``module`` runs with ``state`` current at every call, and so does each of its submodules that may read the
    param store when called on its own (``run.model.likelihood(...)``): all but torch's own layers."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"only an nn.Module carries a param store, not {type(module).__name__}")
    bound = bound_state(module)
    if bound is not None and bound is not state:
        raise ValueError(f"this {type(module).__name__} already carries another run's param store")
    for part in module.modules():
        if bound_state(part) is None and (part is module or not type(part).__module__.startswith("torch.")):
            object.__setattr__(part, BINDING, state)
            part.register_forward_pre_hook(state._enter)
            part.register_forward_hook(state._leave, always_call=True)
    return module


def bound_state(program) -> Optional[ParamState]:
    """The ``ParamState`` a program carries (through an ``Accepting`` wrapper too), or None."""
    program = getattr(program, "__dict__", {}).get("program", program)
    return getattr(program, "__dict__", {}).get(BINDING)


def common_state(*programs) -> Optional[ParamState]:
    """The one store the programs carry (None when none does); programs that carry two are refused."""
    states = {id(s): s for s in (bound_state(p) for p in programs) if s is not None}
    if len(states) > 1:
        raise ValueError("the model and the guide carry the param stores of two different runs; train or score a "
                         "run's model with that run's own guide")
    return next(iter(states.values()), None)
