"""What updates the parameters: any ``pyro.optim`` optimizer or scheduler, or a ``torch.optim`` class.

``make_updater(optim, lr)``:

- ``None``: one ``torch.optim.Adam`` over all parameters with Pyro's defaults (lr ``lr``, betas
  (0.9, 0.999), eps 1e-8), fused where torch has a fused kernel for the device, and capturable on CUDA
  (its step count on the device, so that a CUDA graph can record it). Adam is elementwise, so one
  optimizer over all parameters takes the same update as ``pyro.optim.Adam``'s one per parameter.
- a ``pyro.optim.PyroOptim`` (``pyro.optim.Adam({...})``, ``ClippedAdam``, ...) or ``PyroLRScheduler``
  (``pyro.optim.ExponentialLR({...})``): used as Pyro's ``SVI`` uses it, ``optim(params)`` after the
  gradients; the scheduler is stepped by the caller (``scheduler.step()``), as with ``SVI``.
- a ``torch.optim.Optimizer`` subclass (built with ``lr=lr``) or any function of the parameter list
  that returns a torch optimizer (``functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9)``).

Parameters that a program creates after the first step are added to the optimizer when first seen.
A fused optimizer skips a step whose loss or gradient is not finite on the device (its ``found_inf``
input, no host read); any other optimizer is guarded by a host read before it runs.
"""
from __future__ import annotations

from typing import Callable, Optional, Protocol

import torch
from pyro.optim import PyroOptim

STATE_FORMAT = 2  # optimizer state in checkpoints: {"format", "kind", "names", "state"}


class OptimizerStateError(ValueError):
    """A saved optimizer state that does not fit this trainer's optimizer or parameters."""


def _fusable(params) -> bool:
    return bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


class Updater(Protocol):
    """What the one SVI step needs of an optimizer: take new parameters (``add``), update them unless ``bad``
    (``step``), and save and restore its state (keyed ``by_name`` in the param store, or by position);
    ``device_guard``: it checks ``bad`` on the device itself (a fused kernel)."""

    kind: str
    by_name: bool
    device_guard: bool

    def add(self, params) -> None: ...

    def step(self, params, bad: torch.Tensor) -> None: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class TorchUpdater:
    """One torch optimizer over all parameters."""

    kind = "torch"
    by_name = False  # keyed by position in its parameter groups

    def __init__(self, make: Callable[[list], torch.optim.Optimizer], params: list):
        self.optim = make(list(params))
        self.known = {id(p) for group in self.optim.param_groups for p in group["params"]}
        self.device_guard = bool(self.optim.defaults.get("fused"))
        self.made_capturable = bool(self.optim.defaults.get("capturable"))
        if self.made_capturable:  # its eager steps (a CUDA graph's warm-up, --no-cuda-graph) are meant
            self.optim._warned_capturable_if_run_uncaptured = True  # and as fast with the fused kernel

    @property
    def capturable(self) -> bool:
        """A CUDA graph can record its step (fused, and every parameter group capturable)."""
        return self.device_guard and all(g.get("capturable") for g in self.optim.param_groups)

    def add(self, params) -> None:
        new = [p for p in params if id(p) not in self.known]
        if new:
            self.optim.add_param_group({"params": new})
            self.known.update(id(p) for p in new)

    def step(self, params, bad: torch.Tensor) -> None:
        if self.device_guard:
            self.optim.found_inf = bad.float()  # the fused kernel leaves parameters and moments alone when set
        self.optim.step()

    def state_dict(self) -> dict:
        return self.optim.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.optim.load_state_dict(state)  # takes the saved groups' flags, capturable too (a CPU run's: False)
        for group in self.optim.param_groups:
            group["capturable"] = self.made_capturable


class PyroUpdater:
    """A ``pyro.optim`` optimizer or scheduler, called on the step's parameters as ``SVI`` calls it."""

    kind = "pyro"
    device_guard = False
    by_name = True  # keyed by each parameter's name in the param store

    def __init__(self, optim: PyroOptim):
        self.optim = optim

    def add(self, params) -> None:
        """``PyroOptim`` makes an optimizer for each parameter the first time it sees it, by its name in the
        param store (the caller has the program's store current)."""
        import pyro

        store = pyro.get_param_store()
        unnamed = [p for p in params if store.param_name(p) is None]
        if unnamed:
            raise ValueError(f"a pyro.optim optimizer keeps its state by parameter name, and {len(unnamed)} parameter(s) "
                             f"of an nn.Module program are not in Pyro's param store (register the module with "
                             f"pyro.module, or pass a torch.optim class)")

    def step(self, params, bad: torch.Tensor) -> None:
        self.optim(params)

    def state_dict(self) -> dict:
        return self.optim.get_state()

    def load_state_dict(self, state: dict) -> None:
        self.optim.set_state(state)


def clip_args(optim) -> Optional[dict]:
    """A ``pyro.optim`` optimizer's own clipping, or None: its ``clip_args``, or ``ClippedAdam``'s ``clip_norm``
    (Pyro's default 10.0 when not given: ``ClippedAdam`` always clips)."""
    own = getattr(optim, "pt_clip_args", None) or None
    if own is None and isinstance(optim, PyroOptim) and getattr(optim, "pt_optim_constructor", None) is not None:
        from pyro.optim.clipped_adam import ClippedAdam

        args = optim.pt_optim_args if isinstance(optim.pt_optim_args, dict) else {}
        if args.get("optimizer") is ClippedAdam:  # a scheduler over ClippedAdam
            args = args.get("optim_args") if isinstance(args.get("optim_args"), dict) else {}
        elif optim.pt_optim_constructor is not ClippedAdam:
            return None
        own = {"clip_norm": args.get("clip_norm", 10.0)}
    return own


def make_updater(optim, params: list, lr: float = 1e-3):
    """The updater for ``optim`` (see the module docstring) over ``params``."""
    if optim is None:
        fused = _fusable(params)
        on_cuda = fused and all(p.device.type == "cuda" for p in params)
        return TorchUpdater(lambda ps: torch.optim.Adam(ps, lr=lr, fused=fused or None, capturable=on_cuda), params)
    if isinstance(optim, PyroOptim):
        return PyroUpdater(optim)
    if isinstance(optim, torch.optim.Optimizer):
        raise ValueError("pass the optimizer's class or a function of the parameter list (e.g. "
                         "functools.partial(torch.optim.SGD, lr=0.1)), not an optimizer built on parameters: "
                         "the trainer finds the parameters the program reads")
    if isinstance(optim, type) and issubclass(optim, torch.optim.Optimizer):
        return TorchUpdater(lambda ps: optim(ps, lr=lr), params)
    if callable(optim):
        return TorchUpdater(optim, params)
    raise ValueError(f"optim must be a pyro.optim optimizer, a torch.optim class or a function of the parameters, "
                     f"got {type(optim).__name__}")


def updater_state(updater, names: list[str]) -> dict:
    return {"format": STATE_FORMAT, "kind": updater.kind, "names": list(names), "state": updater.state_dict()}


def load_updater_state(updater, saved: dict, names: list[str]) -> None:
    """Restore ``saved`` (from ``updater_state``) into ``updater``; the parameters must be the same, by name."""
    if not isinstance(saved, dict) or saved.get("format") != STATE_FORMAT:
        raise OptimizerStateError("the checkpoint's optimizer state was written by an earlier version of the "
                                  "toolkit; its weights load (vae evaluate, vae sample) but training cannot "
                                  "resume from it: retrain the run")
    if saved["kind"] != updater.kind:
        raise OptimizerStateError(f"the checkpoint's optimizer is a {saved['kind']} optimizer, this trainer's a "
                                  f"{updater.kind} one")
    if list(saved["names"]) != list(names):
        raise OptimizerStateError("the checkpoint's optimizer was over other parameters than this program reads")
    updater.load_state_dict(saved["state"])
