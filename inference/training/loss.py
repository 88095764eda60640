"""The loss module every engine trains: Pyro's own ``elbo(model, guide)`` (``ELBO.__call__`` ->
``ELBOModule``) and the parameters the program reads.

``ELBOModule.parameters()`` holds only the ``nn.Parameter`` s of a model and guide that are
``nn.Module`` s; a ``pyro.param`` in a likelihood, a network registered by ``pyro.module`` inside a
function guide, or an autoguide's lazily created parameters are not among them. Pyro's ``SVI`` instead
trains what the program reads: the ``param`` sites recorded by ``poutine.trace(param_only=True)``
during the loss, ``site["value"].unconstrained()``. ``ProgramLoss.read_params`` records exactly that,
and adds the parameters of an ``nn.Module`` model or guide that no site names (what ``ELBOModule`` would
hand an optimizer), so every engine trains the same set: ``SVI``'s, plus a network that a plain
``nn.Module`` program uses without registering it (which ``SVI`` would silently leave untrained).

**Where parameters live.** With ``param_state=None`` the program reads Pyro's global param store, as
in a user's own SVI script; the store is never cleared, but an entry that has the name of one of the
program's own module parameters and holds another tensor (left there by an earlier model built from
the same classes) is dropped, so that the program trains its own tensors and not a stale one. With
``param_state`` a dict (``{"params": {}, "constraints": {}}``, Pyro's ``ParamStoreDict.scope`` state)
the program runs in that private store: two runs in one process each train their own parameters, and
the user's global store is left as it was. A model or guide that carries a store (a run's, bound by
``pyro_vae.inference.param_state.bind``) trains in that store when ``param_state`` is not given.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Iterator, Optional

import pyro
import torch
from pyro import poutine
from pyro.infer.elbo import ELBOModule

from pyro_vae.inference.objectives.base import weight_at
from pyro_vae.inference.param_state import ParamState, common_state, new_param_state, standing_in
from pyro_vae.inference.programs import accepting, builds_parameters_eagerly, static_problem

__all__ = ["ProgramLoss", "new_param_state", "unconstrained"]


class ProgramLoss(ELBOModule):
    """``objective.differentiable_loss(model, guide, *args, **kwargs)`` as an ``nn.Module``, each program
    called with only the keywords it accepts; ``params`` (after ``read_params``) are the tensors SVI
    would optimize, ``param_names`` their names in the param store."""

    def __init__(self, model, guide, objective, param_state: Optional[dict | ParamState] = None):
        super().__init__(model, guide, objective)
        self.calls = (accepting(model), accepting(guide))
        carried = common_state(model, guide)
        if isinstance(param_state, dict):
            param_state = ParamState(param_state)
        if carried is not None and param_state is not None and param_state is not carried:
            raise ValueError("the model and guide carry their run's param store; do not pass another param_state")
        self.param_state: Optional[ParamState] = param_state or carried
        self.params: list[torch.Tensor] = []
        self.param_names: list[str] = []
        self.schedule_weight = weight_at(objective, 0)  # a ScheduledObjective's weight now (the trainer sets it)

    @property
    def objective(self):
        """The objective whose loss the module computes (a ``pyro.infer.ELBO``)."""
        return self.elbo

    @property
    def static_problem(self):
        """Why a captured engine may not replay this program (one phrase), or None (``pyro_vae.inference.programs``)."""
        return static_problem(self.calls[0], self.calls[1], self.elbo)

    @functools.cached_property
    def builds_parameters_eagerly(self) -> bool:
        """Its parameters exist before the first call (the toolkit's components), so reading them on a private
        random stream draws nothing SVI's first step would draw."""
        return builds_parameters_eagerly(*self.calls)

    @property
    def creates_params_at_first_step(self) -> bool:
        """Its parameters are not read yet and only its first call creates them (an autoguide, a user's program);
        that call is the first step's, on Pyro's interpreter, as under ``SVI``."""
        return not self.params and not self.builds_parameters_eagerly

    @property
    def single_loss(self) -> bool:
        """False for an objective that only has ``loss_and_grads`` (``ReweightedWakeSleep``)."""
        return hasattr(self.elbo, "differentiable_loss")

    def forward(self, *args, **kwargs) -> torch.Tensor:
        """The objective's differentiable loss of the model and guide on one batch (at the schedule weight when it has one)."""
        model, guide = self.calls
        if self.schedule_weight is not None:
            return self.elbo.loss_at(self.schedule_weight, model, guide, *args, **kwargs)
        return self.elbo.differentiable_loss(model, guide, *args, **kwargs)

    def loss_and_grads(self, *args, **kwargs):
        """The objective's own ``loss_and_grads`` (for objectives without one differentiable loss)."""
        model, guide = self.calls
        return self.elbo.loss_and_grads(model, guide, *args, **kwargs)

    @contextlib.contextmanager
    def store(self) -> Iterator[None]:
        """The param store the program reads: the private ``param_state``, or the global store."""
        if self.param_state is None:
            yield
        else:
            with self.param_state.active():
                yield

    def standing_in(self, state: dict):
        """``state`` as the program's store for the block (a captured graph's parameter inputs)."""
        if self.param_state is None:
            return standing_in(state)
        return self.param_state.standing_in(state)

    def module_tensors(self) -> dict[int, torch.Tensor]:
        """Every parameter and buffer of the nn.Module programs, by ``id``."""
        return {id(t): t for t in list(self.parameters()) + list(self.buffers())}

    @contextlib.contextmanager
    def recording(self) -> Iterator[list]:
        """Record the parameters read inside the block into ``found`` (and, new ones appended, into ``params``
        and ``param_names``): the param sites, as ``SVI.step`` finds them with ``poutine.trace(param_only=True)``,
        then any parameter of an ``nn.Module`` model or guide that no site names (``ELBOModule.parameters()``:
        a network the program uses without registering it, which ``SVI`` alone would silently leave)."""
        found: list = []
        with poutine.trace(param_only=True) as capture:
            yield found
        seen = set()
        store = pyro.get_param_store()  # a tensor under two names (an autoguide's prototype): the store's one,
        named = [(store.param_name(unconstrained(site["value"])) or name, unconstrained(site["value"]))  # as
                 for name, site in capture.trace.nodes.items()]  # pyro.optim names it
        named += [(name, p) for name, p in self.named_parameters() if p.requires_grad]
        known = {id(p) for p in self.params}
        for name, tensor in named:
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            found.append(tensor)
            if id(tensor) not in known:
                known.add(id(tensor))
                self.params.append(tensor)
                self.param_names.append(name)

    def read_params(self, *args, **kwargs) -> list[torch.Tensor]:
        """Run the loss once (on a private random stream, no backward pass) to create and record the parameters
        the program reads; lazily built programs (autoguides) are initialized by it, so their initialization
        draws come from that private stream, not from the training's (where ``SVI``'s first step takes them)."""
        self.drop_stale_entries(*args, **kwargs)
        with torch.random.fork_rng(devices=_cuda_devices(args)), self.store(), self.recording() as found:
            if self.single_loss:
                self(*args, **kwargs)
            else:  # loss_and_grads would write gradients: run the guide and model as its traces do
                model, guide = self.calls
                trace = poutine.trace(guide).get_trace(*args, **kwargs)
                poutine.replay(model, trace=trace)(*args, **kwargs)
        return found

    def drop_stale_entries(self, *args, **kwargs) -> None:
        """In the global store: drop entries named like the program's own module parameters that hold other
        tensors (a fresh, empty store shows which names the program's modules own)."""
        if self.param_state is not None or not len(pyro.get_param_store()):
            return
        own = self.module_tensors()
        with torch.random.fork_rng(devices=_cuda_devices(args)), torch.no_grad(), \
                pyro.get_param_store().scope(), poutine.trace(param_only=True) as capture:
            model, guide = self.calls
            trace = poutine.trace(guide).get_trace(*args, **kwargs)
            poutine.replay(model, trace=trace)(*args, **kwargs)
        store = pyro.get_param_store()
        for name, site in capture.trace.nodes.items():
            mine = unconstrained(site["value"])
            if id(mine) in own and name in store and unconstrained(store[name]) is not mine:
                del store[name]


def unconstrained(value: torch.Tensor) -> torch.Tensor:
    """The leaf tensor behind a param site's value (``value.unconstrained()``, as ``SVI.step`` reads it; a
    module parameter outside any store scope is its own leaf)."""
    ref = getattr(value, "unconstrained", None)
    return ref() if ref is not None else value


def _cuda_devices(args) -> list:
    return [a.device for a in args if torch.is_tensor(a) and a.device.type == "cuda"][:1]

