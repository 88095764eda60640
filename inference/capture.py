"""An objective captured as a graph of tensor operations: the Pyro program runs once, then only its arithmetic.

``pyro.infer`` interprets the model and guide anew at every step (effect handlers,
traces, site dictionaries): about 3 ms of Python per step, whatever the batch size.
``CapturedObjective`` runs ``objective.differentiable_loss(model, guide, x, ...)``
once per input shape under ``torch.fx.experimental.proxy_tensor.make_fx``, which
records the ATen operations it executes (the random draws included) into a graph
whose inputs are the parameters and the batch. It records above autograd
(``pre_dispatch=True``), so stop-gradients (``detach``: score-function surrogates,
DReG) stay in the graph. Replaying the graph gives the same
loss and gradients as the Pyro program without its interpreter; ``backend="inductor"``
compiles the graph with ``torch.compile`` (fused kernels, forward and backward).

Like ``pyro.infer.JitTrace_ELBO`` this needs programs of static structure: a Python
branch on the data is frozen at its first outcome. Each new graph is checked against
the Pyro program itself (same batch, same draws); a program that cannot be captured,
or whose graph disagrees, raises ``CaptureError`` and the trainer falls back.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Optional

import pyro
import pyro.infer.trace_elbo
import pyro.infer.trace_mean_field_elbo
import torch
from torch import nn
from torch.func import functional_call

BACKENDS = ("trace", "inductor")
CHECK_RTOL = 1e-4


class CaptureError(RuntimeError):
    """The program could not be captured faithfully; the message says why in one line."""


class _ObjectiveModule(nn.Module):
    """``objective(model, guide, x, ...)`` as one module, so its parameters can be swapped for graph inputs."""

    def __init__(self, model: nn.Module, guide: nn.Module, objective):
        super().__init__()
        self.model, self.guide, self.objective = model, guide, objective

    def forward(self, x, subsample, y, weight, num_data: int):
        kwargs = {"num_data": num_data, "subsample": subsample}
        if y is not None:
            kwargs["y"] = y
        if weight is not None:  # a scheduled objective: its weight is an input, not a frozen constant
            return self.objective.loss_at(weight, self.model, self.guide, x, **kwargs)
        return self.objective.differentiable_loss(self.model, self.guide, x, **kwargs)


def _one_line(err: Exception, width: int = 160) -> str:
    text = f"{err.__class__.__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
    return text if len(text) <= width else text[: width - 3] + "..."


def _tensor_item(x):
    return x.detach() if torch.is_tensor(x) else x


@contextlib.contextmanager
def _pyro_losses_as_tensors():
    """Pyro's ELBOs read their loss with ``torch_item`` (a host read) and ``warn_if_nan``; both stop a
    graph capture. While capturing, the loss stays a detached tensor (same value) and the NaN warning
    is left to the trainer's own finiteness check."""
    modules = (pyro.infer.trace_elbo, pyro.infer.trace_mean_field_elbo)
    saved = [(m, m.torch_item, m.warn_if_nan) for m in modules]
    try:
        for m in modules:
            m.torch_item, m.warn_if_nan = _tensor_item, (lambda *args, **kwargs: None)
        yield
    finally:
        for m, item, warn in saved:
            m.torch_item, m.warn_if_nan = item, warn


def _own_param_store():
    """An empty param store while the program runs on graph inputs: ``pyro.module`` then registers the
    swapped-in tensors instead of replacing them by the global store's (the store is restored after)."""
    return pyro.get_param_store().scope()


def _rng_devices(x: torch.Tensor) -> list:
    return [x.device] if x.device.type == "cuda" else []


class CapturedObjective:
    """Callable ``(x, num_data, subsample, y) -> loss`` equal to ``objective.differentiable_loss`` on the
    same draws; one graph per (batch shape, ``num_data``), built on first use.

    ``params`` are the model's and guide's own ``nn.Parameter`` objects: an optimizer over them
    trains the user's modules in place.
    """

    def __init__(self, model: nn.Module, guide: nn.Module, objective, backend: str = "trace"):
        if backend not in BACKENDS:
            raise ValueError(f"unknown capture backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
        self.objective, self.backend = objective, backend
        self.module = _ObjectiveModule(model, guide, objective)
        named = list(self.module.named_parameters())
        self.params = [p for _, p in named]
        buffers = list(self.module.named_buffers())  # inputs too, so the graph reads their current values
        self.names = [name for name, _ in named + buffers]
        self.inputs = self.params + [b for _, b in buffers]
        self.graphs: dict = {}

    def _weight(self) -> Optional[torch.Tensor]:
        if not hasattr(self.objective, "loss_at"):
            return None
        return torch.tensor(float(self.objective.current_beta))

    def _graph(self, x, num_data, subsample, y, weight) -> Callable:
        key = (tuple(x.shape), x.dtype, x.device, int(num_data), None if y is None else tuple(y.shape))
        graph = self.graphs.get(key)
        if graph is None:
            graph = self.graphs[key] = self._capture(x, int(num_data), subsample, y, weight)
        return graph

    def prepare(self, x: torch.Tensor, num_data: int, subsample: torch.Tensor,
                y: Optional[torch.Tensor] = None) -> None:
        """Capture (and check) the graph for batches shaped like ``x`` now rather than at first use."""
        self._graph(x, num_data, subsample, y, self._weight())

    def __call__(self, x: torch.Tensor, num_data: int, subsample: torch.Tensor,
                 y: Optional[torch.Tensor] = None) -> torch.Tensor:
        weight = self._weight()
        return self._graph(x, num_data, subsample, y, weight)(self.inputs, x, subsample, y, weight)

    def _program(self, num_data: int) -> Callable:
        def program(tensors, x, subsample, y, weight):
            return functional_call(self.module, dict(zip(self.names, tensors)), (x, subsample, y, weight),
                                   {"num_data": num_data}, strict=True)
        return program

    def _capture(self, x, num_data, subsample, y, weight) -> Callable:
        from torch.fx.experimental.proxy_tensor import make_fx

        program = self._program(num_data)
        # Capturing runs the program once; fork_rng keeps that run from using up the training's draws.
        with torch.random.fork_rng(devices=_rng_devices(x)):
            try:
                with _pyro_losses_as_tensors(), pyro.validation_enabled(False), _own_param_store():
                    graph = make_fx(program, pre_dispatch=True)(self.inputs, x, subsample, y, weight)
            except Exception as err:  # any Python the tracer cannot follow: data-dependent branches, .item()
                raise CaptureError(_one_line(err)) from None
            if self.backend == "inductor":
                # fallback_random: the compiled graph draws from torch's own generator, as the program does
                graph = torch.compile(graph, dynamic=False, options={"fallback_random": True})
            self._check(graph, program, x, subsample, y, weight)
        return graph

    def _check(self, graph, program, x, subsample, y, weight) -> None:
        """The graph and the Pyro program must give the same loss on the same batch and draws."""
        seed = int(torch.randint(0, 2 ** 31 - 1, ()).item())
        torch.manual_seed(seed)
        with torch.no_grad(), _own_param_store():
            expected = program(self.inputs, x, subsample, y, weight)
        torch.manual_seed(seed)
        try:  # with grad: inductor compiles once, for training
            got = graph(self.inputs, x, subsample, y, weight).detach()
        except Exception as err:  # e.g. inductor without a C++ compiler
            raise CaptureError(f"{self.backend} failed: {_one_line(err)}") from None
        if not torch.allclose(got, expected, rtol=CHECK_RTOL, atol=1e-3, equal_nan=True):
            raise CaptureError(f"the captured graph gives loss {got.item():.6g}, the program {expected.item():.6g} "
                               f"on the same draws (does the program branch on its data?)")
