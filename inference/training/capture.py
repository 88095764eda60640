"""A loss module captured as a graph of tensor operations: the Pyro program runs once, then only its arithmetic.

``pyro.infer`` interprets the model and guide anew at every step (effect handlers, traces, site
dictionaries): about 3 ms of Python per step, whatever the batch size. ``CapturedLoss`` runs the
``ProgramLoss`` once per input shape under ``torch.fx.experimental.proxy_tensor.make_fx``, which records
the ATen operations it executes (the random draws included) into a graph whose inputs are the
parameters and the batch. It records above autograd (``pre_dispatch=True``), so stop-gradients
(``detach``: score-function surrogates, DReG) stay in the graph. ``backend="inductor"`` compiles the
graph with ``torch.compile`` (fused kernels, forward and backward).

The graph's parameter inputs are every tensor of the program: the ``nn.Module`` programs' parameters and
buffers (swapped in by ``torch.func.functional_call``) and the param-store parameters the program reads
through ``pyro.param`` (swapped in by a param store holding the graph's inputs under their names).

The step's arguments are the graph's other inputs (``call_key``): tensors, and Python floats as 0-d
tensors; ints, bools, None and strings select the graph. Positions and keywords are kept as the caller
gave them, so the program receives what ``SVI`` would pass it.

Like ``pyro.infer.JitTrace_ELBO`` this needs programs of static structure: a Python branch on the data
is frozen at its first outcome, Python-side state (a closure's factor, a call counter) at its value
during capture, and a parameter that the program reads from outside both places (a network registered
by ``pyro.module`` in a function guide keeps using its own tensors) would be frozen as a constant. The
engines capture only programs known to be static (``pyro_vae.inference.programs.static_problem``), and each new
graph is checked against the Pyro program itself, on the same arguments and the same draws: the loss and
the gradient of every trained parameter must agree, else ``CaptureError`` (one line) and the trainer
falls back to Pyro's interpreter.
"""
from __future__ import annotations

from typing import Callable, Optional

import pyro
import torch
from torch import nn
from torch.func import functional_call

from pyro_vae.inference.programs import DATA_KEYWORDS
from pyro_vae.inference.training import pyro_compat
from pyro_vae.inference.training.loss import ProgramLoss

BACKENDS = ("trace", "inductor")
CHECK_RTOL = 1e-4
MAX_GRAPHS = 8  # distinct argument shapes and key values; beyond, the trainer gives up capturing (a note)


class CaptureError(RuntimeError):
    """The program could not be captured faithfully; the message says why in one line."""


def one_line(err: Exception, width: int = 160) -> str:
    text = f"{err.__class__.__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
    return text if len(text) <= width else text[: width - 3] + "..."


def _label(name) -> str:
    return f"#{name + 1} (positional)" if isinstance(name, int) else repr(name)


def call_key(args: tuple, kwargs: dict) -> tuple[tuple, list]:
    """A step's arguments as a graph sees them: ``(key, inputs)``. Tensors are graph inputs, and so is a
    Python float (a 0-d tensor of the default dtype, so that a KL-annealing factor is not frozen); an int
    (a size, such as ``num_data``), a bool, None or a string is part of the key (a new value: a new graph).
    Positions and keyword names are kept as given, so the program receives the call Pyro's ``SVI`` would
    pass it (a data keyword whose value is None reaches no program: ``pyro_vae.inference.programs.accepting``). Any other
    value cannot be a graph input: ``CaptureError``."""
    key, inputs = [], []
    given = sorted((k, v) for k, v in kwargs.items() if v is not None or k not in DATA_KEYWORDS)  # (reaches none)
    for name, value in [(i, a) for i, a in enumerate(args)] + given:
        if torch.is_tensor(value):
            key.append((name, "tensor", tuple(value.shape), value.dtype, value.device, value.requires_grad))
            inputs.append(value)
        elif isinstance(value, float):
            key.append((name, "float"))
            inputs.append(torch.tensor(value, dtype=torch.get_default_dtype()))
        elif value is None or isinstance(value, (bool, int, str)):
            key.append((name, "value", type(value).__name__, value))
        else:
            raise CaptureError(f"step argument {_label(name)} is a {type(value).__name__}, which a captured graph "
                               f"cannot take as an input (pass tensors, numbers, bools or strings)")
    return tuple(key), inputs


def _rebuild(key: tuple, inputs) -> tuple[list, dict]:
    """The call ``call_key`` took apart, with ``inputs`` (graph inputs, or the originals) in their places."""
    supplied = iter(inputs)
    args, kwargs = [], {}
    for entry in key:
        value = next(supplied) if entry[1] in ("tensor", "float") else entry[3]
        if isinstance(entry[0], int):
            args.append(value)
        else:
            kwargs[entry[0]] = value
    return args, kwargs


class _Scored(nn.Module):
    """The loss module called with the schedule weight first (when the objective has one) and the step's
    arguments, so that ``functional_call`` can swap every parameter for a graph input."""

    def __init__(self, loss: ProgramLoss):
        super().__init__()
        self.loss = loss

    def forward(self, schedule_weight, /, *args, **kwargs):
        if schedule_weight is not None:  # a scheduled objective: its weight is an input, not a frozen constant
            model, guide = self.loss.calls
            return self.loss.objective.loss_at(schedule_weight, model, guide, *args, **kwargs)
        return self.loss.elbo.differentiable_loss(*self.loss.calls, *args, **kwargs)


class CapturedLoss:
    """Callable ``(*args, **kwargs) -> loss`` equal to the ``ProgramLoss`` on the same draws; one graph per
    ``call_key`` (argument shapes and key values), built and checked by ``prepare`` (or at first use)."""

    def __init__(self, loss: ProgramLoss, backend: str = "trace"):
        if backend not in BACKENDS:
            raise ValueError(f"unknown capture backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
        if not loss.single_loss:
            raise CaptureError(f"{type(loss.objective).__name__} has no single differentiable loss")
        self.loss, self.backend = loss, backend
        self.scored = _Scored(loss)
        self.module_names: list[str] = []
        self.module_inputs: list[torch.Tensor] = []
        self.store_names: list[str] = []
        self.store_inputs: list[torch.Tensor] = []
        self.inputs: list[torch.Tensor] = []  # the graph's parameter inputs: module tensors, then store tensors
        self.constraints: dict = {}
        self.graphs: dict = {}
        self.weight_buffer: Optional[torch.Tensor] = None  # a CUDA graph's input: filled before each replay

    @property
    def params(self) -> list[torch.Tensor]:
        return self.loss.params

    def _collect_inputs(self) -> None:
        """Every module tensor (after the program created its parameters: autoguides do so at first call), and
        the trained tensors that are not module tensors (``pyro.param`` sites), fed through the store."""
        named = list(self.scored.named_parameters()) + list(self.scored.named_buffers())
        self.module_names = [name for name, _ in named]
        self.module_inputs = [t for _, t in named]
        own = {id(t) for t in self.module_inputs}
        with self.loss.store():
            constraints = dict(pyro.get_param_store()._constraints)  # (get_state would strip the live tensors'
            #                                                           unconstrained references)
        self.store_names = [n for n, p in zip(self.loss.param_names, self.loss.params) if id(p) not in own]
        self.store_inputs = [p for n, p in zip(self.loss.param_names, self.loss.params) if id(p) not in own]
        self.constraints = {n: constraints[n] for n in self.store_names}
        self.inputs = self.module_inputs + self.store_inputs

    def _weight(self) -> Optional[torch.Tensor]:
        """The step's schedule weight (``ProgramLoss.schedule_weight``, set by the trainer) as a graph input."""
        if self.loss.schedule_weight is None:
            return None
        if self.weight_buffer is not None:
            return self.weight_buffer
        return torch.tensor(float(self.loss.schedule_weight))

    def fill_weight(self) -> None:
        """The schedule weight of this step into ``weight_buffer`` (outside a CUDA graph's recording)."""
        if self.weight_buffer is not None and self.loss.schedule_weight is not None:
            self.weight_buffer.fill_(float(self.loss.schedule_weight))

    def prepare(self, *args, **kwargs) -> None:
        """Capture and check the graph for calls like this one now rather than at first use."""
        self._graph(args, kwargs, *call_key(args, kwargs))

    def __call__(self, *args, **kwargs) -> torch.Tensor:
        key, inputs = call_key(args, kwargs)
        return self._graph(args, kwargs, key, inputs)(self.inputs, inputs, self._weight())

    def _graph(self, args, kwargs, key, inputs):
        graph = self.graphs.get(key)
        if graph is None:
            if len(self.graphs) >= MAX_GRAPHS:
                raise CaptureError(f"more than {MAX_GRAPHS} different step-argument shapes or int/bool/string "
                                   f"values (each needs its own graph)")
            graph = self.graphs[key] = self._capture(args, kwargs, key, inputs)
        return graph

    def _program(self, key: tuple) -> Callable:
        n = len(self.module_inputs)

        def program(tensors, inputs, weight):
            args, kwargs = _rebuild(key, inputs)
            state = {"params": dict(zip(self.store_names, tensors[n:])), "constraints": dict(self.constraints)}
            with self.loss.standing_in(state):
                return functional_call(self.scored, dict(zip(self.module_names, tensors[:n])),
                                       (weight, *args), kwargs, strict=True)
        return program

    def _capture(self, args, kwargs, key, inputs) -> Callable:
        from torch.fx.experimental.proxy_tensor import make_fx

        if not pyro_compat.supported():
            raise CaptureError(pyro_compat.unsupported_reason())
        if not self.loss.params:
            self.loss.read_params(*args, **kwargs)
        self._collect_inputs()
        program, weight = self._program(key), self._weight()
        cuda = [t.device for t in inputs if t.device.type == "cuda"][:1]
        # Capturing runs the program once; fork_rng keeps that run from using up the training's draws.
        with torch.random.fork_rng(devices=cuda):
            try:
                with pyro_compat.losses_as_tensors(), pyro.validation_enabled(False):
                    graph = make_fx(program, pre_dispatch=True)(self.inputs, inputs, weight)
            except Exception as err:  # any Python the tracer cannot follow: data-dependent branches, .item()
                raise CaptureError(one_line(err)) from None
            if self.backend == "inductor":
                # fallback_random: the compiled graph draws from torch's own generator, as the program does
                graph = torch.compile(graph, dynamic=False, options={"fallback_random": True})
            self._check(graph, args, kwargs, inputs, weight)
        return graph

    def _check(self, graph, args, kwargs, inputs, weight) -> None:
        """The graph and the Pyro program give the same loss and gradients on the same arguments and draws."""
        seed = int(torch.randint(0, 2 ** 31 - 1, ()).item())
        params = self.params
        torch.manual_seed(seed)
        with self.loss.store():
            expected = self.scored(weight, *args, **kwargs)
        wanted = torch.autograd.grad(expected, params, allow_unused=True)
        torch.manual_seed(seed)
        try:
            got = graph(self.inputs, inputs, weight)
            grads = torch.autograd.grad(got, params, allow_unused=True)
        except Exception as err:  # e.g. inductor without a C++ compiler
            raise CaptureError(f"{self.backend} failed: {one_line(err)}") from None
        if not torch.allclose(got.detach(), expected.detach(), rtol=CHECK_RTOL, atol=1e-3, equal_nan=True):
            raise CaptureError(f"the captured graph gives loss {got.item():.6g}, the program {expected.item():.6g} "
                               f"on the same draws (does the program branch on its data?)")
        for name, p, g, e in zip(self.loss.param_names, params, grads, wanted):
            g = torch.zeros_like(p) if g is None else g
            e = torch.zeros_like(p) if e is None else e
            if (g - e).norm() > 1e-3 * e.norm() + 1e-5:
                raise CaptureError(f"the captured graph's gradient of {name!r} differs from the program's "
                                   f"(is it read from outside the program's modules and param store?)")
