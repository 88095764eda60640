"""A program's own param store, carried by its model and guide.

Pyro keeps ``pyro.param`` values in one global store; ``ParamStoreDict.scope(state)`` swaps in another
(``state`` = ``{"params": {...}, "constraints": {...}}``). A run of this toolkit trains in a private
store, so that two runs in one process never share a ``pyro.param("sigma")`` and the user's global
store is left alone. ``ParamState`` is that store, made current by ``with state.active():``: its
dicts are swapped into Pyro's store as they are, so the block works on the live store (re-entrant, nested
with other stores, nothing lost on an exception), where Pyro's ``scope`` copies the state in and writes
it back only at a normal exit.

``bind(module, state)`` makes a model or guide carry its store: every call of the module runs with the
store current (a forward pre-hook enters it, a forward hook that runs even on an exception leaves it).
So ``evaluate_elbo(run.model, run.guide, x)`` or any evaluator reads the trained ``pyro.param`` values
of a loaded run, and never creates or overwrites an entry of the user's global store, without the caller
knowing about the run's store. The modules' other methods (``decode_mean``, ``posterior``) read it inside
``with run.params():``, as every function that takes a run does (``in_run_store``), and so does a user's
own ``SVI`` loop whose ``pyro.optim`` optimizer names parameters through the store.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Iterator, Optional

import pyro
from torch import nn

BINDING = "_vae_param_state"  # the attribute of a bound module that holds its ParamState


def new_param_state() -> dict:
    """An empty private param store (the state ``pyro.get_param_store().scope`` takes)."""
    return {"params": {}, "constraints": {}}


class ParamState:
    """A private param store (``state``: Pyro's ``ParamStoreDict.scope`` state, whose two dicts are the live
    store while it is current)."""

    def __init__(self, state: Optional[dict] = None):
        self.state = state if state is not None else new_param_state()
        self._names: dict = {}  # tensor -> name (Pyro's _param_to_name), for the dict it was built from
        self._names_of: Optional[dict] = None
        self._standing_in = 0  # a captured graph's inputs stand in for this store: the hooks leave them alone
        self._hook_blocks: list = []  # blocks entered by bound modules' pre-hooks, left by their hooks

    def _dicts(self) -> tuple[dict, dict, dict]:
        params = self.state["params"]
        if self._names_of is not params:  # Pyro's scope(state) may have put a new dict under "params"
            self._names, self._names_of = {p: n for n, p in params.items()}, params
        return params, self.state["constraints"], self._names

    def is_current(self) -> bool:
        return pyro.get_param_store()._params is self.state["params"]

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """This store is Pyro's current one inside the block: its dicts are swapped in as they are (nothing is
        copied, so what the block creates or trains is in the store at once, an exception included), and the
        store that was current before is swapped back at the end. Re-entrant, and nested with other stores:
        a block of this store inside another store's block makes this one current again."""
        if self._standing_in or self.is_current():
            yield
            return
        with swapped_in(*self._dicts()):
            yield

    @contextlib.contextmanager
    def standing_in(self, state: dict) -> Iterator[None]:
        """``state`` (a captured graph's inputs under the parameters' names) is the current store inside the
        block, and the bound modules do not swap this store back in."""
        self._standing_in += 1
        try:
            with standing_in(state):
                yield
        finally:
            self._standing_in -= 1

    # -- forward hooks of bound modules ----------------------------------------------------------------
    def _enter(self, module, args) -> None:
        if self._standing_in or self.is_current():
            self._hook_blocks.append(None)  # already current: nothing to swap (the common case, cheaply)
            return
        block = swapped_in(*self._dicts())
        block.__enter__()
        self._hook_blocks.append(block)

    def _leave(self, module, args, output) -> None:
        block = self._hook_blocks.pop() if self._hook_blocks else None
        if block is not None:
            block.__exit__(None, None, None)


@contextlib.contextmanager
def swapped_in(params: dict, constraints: dict, names: dict) -> Iterator[None]:
    """Pyro's param store holds these dicts inside the block (its own are put back after, whatever happens)."""
    store = pyro.get_param_store()
    saved = store._params, store._constraints, store._param_to_name
    store._params, store._constraints, store._param_to_name = params, constraints, names
    try:
        yield
    finally:
        store._params, store._constraints, store._param_to_name = saved


def standing_in(state: dict):
    """``state`` (``{"params", "constraints"}``) as Pyro's current store for the block (a captured graph's inputs)."""
    return swapped_in(state["params"], state["constraints"], {p: n for n, p in state["params"].items()})


def in_run_store(fn):
    """Decorator: ``fn(run, ...)`` runs with the run's param store current, so that the methods of its model and
    guide other than their calls (``decode_mean``, ``posterior``, ``quantized_code``) read the trained values."""
    @functools.wraps(fn)
    def wrapper(run, *args, **kwargs):
        with run.params():
            return fn(run, *args, **kwargs)
    return wrapper


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
