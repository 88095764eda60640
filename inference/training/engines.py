"""Engines: what evaluates the loss module and its gradients at each step. One small class each, one
registry entry; every engine trains the same parameters (``ProgramLoss.params``: what ``SVI`` trains).

============== ======================================================================================
name           engine
============== ======================================================================================
``off``        Pyro's interpreter: the loss module itself, its parameters recorded at every step
``trace``      the captured graph of the loss module, replayed (``inference/training/capture.py``)
``inductor``   the captured graph compiled by ``torch.compile``
``auto``       ``inductor`` for runs of at least ``AUTO_INDUCTOR_STEPS`` steps, else ``trace``
============== ======================================================================================

A captured engine needs a program of static structure (``pyro_vae.inference.programs.static_problem``): a program
not known to have it trains on the interpreter after one ``note:`` line. ``choose_engine`` tries the
engines ``auto`` or a name allows in order, and falls back to the interpreter with one ``note:`` line
naming what failed. Every engine draws from the same random stream as ``SVI`` (capturing and its check
run on a forked stream): a program whose parameters are created at its first call (an autoguide) takes
its first step on the interpreter, as ``SVI``'s first step, and is captured from its second. On the
interpreter a user's program is called exactly as often as ``SVI`` calls it (only the toolkit's own
programs, which keep no Python-side state, are run once beforehand, to read their parameters).
The data-parallel wrapper (``inference/training/parallel.py``) goes around whichever engine is chosen.

A new engine: a class with ``name``, ``fallback`` (the engine tried when it cannot take a program; None for
the interpreter), ``captures`` (it replays a captured program, so it takes programs of static structure only),
``deferred_checks``, ``prepare(*args, **kwargs)``, ``loss_and_grads(*args, **kwargs) ->
(loss, params)`` and ``reduce(params, loss)`` (the ``Engine`` protocol), registered in ``ENGINES``: its name
is then a value of ``--compile`` and ``train.compile``.
"""
from __future__ import annotations

from typing import Callable, Optional, Protocol

import torch

from pyro_vae.inference.engine_names import ENGINES
from pyro_vae.inference.training.capture import CaptureError, CapturedLoss
from pyro_vae.inference.training.loss import ProgramLoss

# inductor compiled the default model in 3.0 s on 2 CPU cores and saved 1.6 ms a step at batch 128 (7.87 -> 6.26 ms,
# plain PyTorch 7.00 ms; bench/results/train_step_cpu_engines.json): it pays from about 1,900 steps on
AUTO_INDUCTOR_STEPS = 2000


class Engine(Protocol):
    """What the one SVI step (``inference/training/step.py``) needs of an engine."""

    name: str
    fallback: Optional[str]
    captures: bool
    deferred_checks: bool

    def prepare(self, *args, **kwargs) -> None: ...

    def loss_and_grads(self, *args, **kwargs) -> tuple[torch.Tensor, list]: ...

    def reduce(self, params, loss): ...


def register(name: str):
    """``@register("name")``: an engine class (``Engine``) in ``ENGINES`` (over the lazy entry of a built-in one:
    ``pyro_vae.inference.engine_names``), and the ``fallback`` it gives way to.

    Parameters
    ----------
    name : str
        The engine's name, then a value of ``--compile`` and ``train.compile``.

    Returns
    -------
    callable
        The class decorator (``ENGINES.register``).
    """
    return ENGINES.register(name, replace=name in ("off", "trace", "inductor", "auto"))


@register("off")
class InterpretedEngine:
    """Pyro's interpreter: ``ProgramLoss`` called as is, the parameters it reads recorded each step as
    ``SVI.step`` records them (a program may create parameters as it goes)."""

    name = "off"
    fallback = None
    captures = False  # runs the program itself each step: any program, static or not
    deferred_checks = False

    def __init__(self, loss: ProgramLoss):
        self.loss = loss

    def prepare(self, *args, **kwargs) -> None:
        """Reads the parameters of the toolkit's own programs now (nothing else runs a program before its first
        step: a user's program is called exactly as often as by ``SVI``)."""
        if not self.loss.params and self.loss.builds_parameters_eagerly:
            self.loss.read_params(*args, **kwargs)

    def loss_and_grads(self, *args, **kwargs):
        """The loss on Pyro's interpreter and its gradients; ``(loss, parameters read)``."""
        return interpreted_loss_and_grads(self.loss, args, kwargs)

    def reduce(self, params, loss):
        """The loss as it is: one process has nothing to combine (the data-parallel wrapper sums over ranks)."""
        return loss


def interpreted_loss_and_grads(loss: ProgramLoss, args, kwargs):
    """The loss and its gradients on Pyro's interpreter, the parameters read recorded as ``SVI.step`` does."""
    with loss.store(), loss.recording() as params:
        if loss.single_loss:
            value = loss(*args, **kwargs)
            value.backward()
        else:  # ReweightedWakeSleep: its own loss_and_grads, (wake-theta loss, phi loss)
            value = loss.loss_and_grads(*args, **kwargs)
            value = torch.as_tensor(value[0] if isinstance(value, tuple) else value, dtype=torch.float64)
    return torch.as_tensor(value).detach(), params


class CapturedEngine:
    """The loss module's graph (``backend`` trace or inductor) replayed; parameters fixed at capture.
    Runs no Python that changes between steps, so the whole step can be recorded as a CUDA graph
    (``inference/training/graphs.py``): its one per-step value, the schedule weight, goes through a buffer."""

    deferred_checks = True
    graph_safe = True
    captures = True  # replays a captured graph: a program of static structure only
    name = ""

    def __init__(self, loss: ProgramLoss, backend: Optional[str] = None):
        self.loss, self.name = loss, backend or self.name
        self.captured = CapturedLoss(loss, self.name)

    def prepare(self, *args, **kwargs) -> None:
        """Capture the loss module's graph on an example batch (after the first, interpreted step for a program that
        creates its parameters then)."""
        if not self.loss.creates_params_at_first_step:
            self.captured.prepare(*args, **kwargs)  # else: captured after its first, interpreted step

    def loss_and_grads(self, *args, **kwargs):
        """The captured graph's loss and its gradients; ``(loss, parameters)``."""
        if self.loss.creates_params_at_first_step:
            return interpreted_loss_and_grads(self.loss, args, kwargs)  # creates the parameters as SVI does
        loss = self.captured(*args, **kwargs)
        loss.backward()
        return loss.detach(), self.loss.params

    def reduce(self, params, loss):
        """The loss as it is: one process has nothing to combine (the data-parallel wrapper sums over ranks)."""
        return loss

    def use_input_buffers(self, device: Optional[torch.device]) -> None:
        """Per-step values through buffers on ``device`` (None: as Python values again)."""
        self.captured.weight_buffer = None if device is None else torch.zeros((), device=device)

    def fill_inputs(self) -> None:
        """Write this step's per-step values (the schedule weight) into their buffers before a replay."""
        self.captured.fill_weight()


@register("trace")
class TracedEngine(CapturedEngine):
    """The captured graph, replayed by the trace backend."""

    name, fallback = "trace", "off"


@register("inductor")
class InductorEngine(CapturedEngine):
    """The captured graph compiled by ``torch.compile``'s inductor."""

    name, fallback = "inductor", "trace"


@register("auto")
class AutoEngine:
    """Not an engine itself: ``inductor`` for runs of at least ``AUTO_INDUCTOR_STEPS`` steps, else ``trace``."""

    name, fallback, captures = "auto", None, True

    @staticmethod
    def choose(planned_steps: int) -> str:
        """``inductor`` for at least ``AUTO_INDUCTOR_STEPS`` planned steps, else ``trace``."""
        return "inductor" if planned_steps >= AUTO_INDUCTOR_STEPS else "trace"


def candidates(compile: str, planned_steps: int = 0) -> list[str]:
    """The engines ``compile`` allows, fastest first: the engine, then its fallbacks (the interpreter last)."""
    if compile not in ENGINES:
        raise ValueError(f"unknown compile mode {compile!r}; choose one of: {', '.join(ENGINES.names())}")
    chosen = ENGINES.get(compile)
    name = chosen.choose(planned_steps) if hasattr(chosen, "choose") else ENGINES.canonical(compile)
    chain = []
    while name is not None and name not in chain:
        chain.append(name)
        name = ENGINES.get(name).fallback
    return chain if chain[-1] == "off" else [*chain, "off"]


def choose_engine(loss: ProgramLoss, compile: str, examples=(), planned_steps: int = 0,
                  wrap: Optional[Callable] = None):
    """``(engine, notice)``: the first engine ``compile`` allows that prepares every example (a tuple of
    positional arguments and a dict of keywords); ``notice`` is one ``note:`` line when an engine was
    given up, else None. ``wrap`` goes around each engine tried (data-parallel)."""
    wrap = wrap or (lambda engine: engine)
    tried = candidates(compile, planned_steps)
    failures = []
    problem = loss.static_problem if any(ENGINES.get(name).captures for name in tried) else None
    for name in tried:
        if problem is not None and ENGINES.get(name).captures:  # it could freeze the program's Python-side state
            failures.append((name, problem))
            continue
        try:
            engine = wrap(ENGINES[name](loss))
            for args, kwargs in examples:
                engine.prepare(*args, **kwargs)
        except CaptureError as err:
            failures.append((name, str(err)))
            continue
        if not failures:
            return engine, None
        given_up, reason = failures[0]
        what = "Pyro's interpreter (--compile off)" if name == "off" else f"compile={name}"
        return engine, (f"note: {type(loss.objective).__name__} could not be captured by {given_up} ({reason}); "
                        f"training with {what} instead")
    raise AssertionError("the interpreter prepares every program")  # pragma: no cover

