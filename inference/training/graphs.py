"""The whole SVI step recorded as a CUDA graph and replayed: one launch instead of a few hundred.

On a GPU the 784-400-20 VAE's step is a few MFLOP per image; what costs is launching its kernels
(forward, backward, gradient norms, the finiteness guard, Adam) from Python. ``StepGraphs`` records one
call of ``SVIStep`` per input shape with ``torch.cuda.graph`` (PyTorch's "whole network capture":
https://pytorch.org/docs/stable/notes/cuda.html#cuda-graphs) and replays it with the batch copied into
the graph's input buffers. The replay draws from torch's CUDA generator as the eager step would (CUDA
graphs advance its Philox offset by the recorded amount), so the trained parameters equal the eager
engine's on the same seed (``tests/inference/training/test_gpu.py``).

What a recorded step needs (``unsupported`` says which is missing; the trainer then steps without graphs,
with one ``note:`` line):

- the batch on a CUDA device and a captured engine (``trace`` or ``inductor``): no Python in the loss;
- the default optimizer (one fused, capturable ``torch.optim.Adam``): it guards the update on the device,
  with no host read, and keeps its step count on the device;
- a single process (the data-parallel all-reduce is not recorded).

Python values that change from step to step must not be baked into the graph: the schedule weight
(KL warm-up) is an input buffer filled before each replay, the fault log counts on the device
(``inference/training/step.py``), and the step count is kept by this wrapper.
"""
from __future__ import annotations

from typing import Optional

import torch

from pyro_vae.inference.training.capture import CaptureError, call_key

WARMUP_STEPS = 2  # eager steps of each batch shape (on a side stream) before it is recorded: lazy allocations,
#                   compilation, Adam's state. Each call is one step, recorded or not.


class GraphRecordError(RuntimeError):
    """The step could not be recorded as a CUDA graph; the message says why in one line."""


class StepGraphs:
    """``step(*args, **kwargs)`` like ``SVIStep``'s, each batch shape recorded once and replayed."""

    def __init__(self, svi_step, device: torch.device):
        self.svi_step = svi_step
        self.graphs: dict = {}
        self.seen: dict = {}
        svi_step.engine.use_input_buffers(device)

    def close(self) -> None:
        """Back to eager steps: the engine takes its per-step values as before."""
        self.svi_step.engine.use_input_buffers(None)
        self.graphs.clear()

    @staticmethod
    def unsupported(svi_step, args, kwargs) -> Optional[str]:
        """Why the step cannot be recorded (one phrase), or None when it can."""
        named = StepGraphs._named(args, kwargs)
        tensors = [(name, v) for name, v in named if torch.is_tensor(v)]
        if not tensors or tensors[0][1].device.type != "cuda":
            return "the batch is not on a CUDA device"
        try:
            call_key(args, kwargs)
        except CaptureError as err:
            return str(err)
        floats = [name for name, v in named if isinstance(v, float)]
        if floats:  # a graph would bake the value in; a tensor argument goes through an input buffer
            return f"step argument {floats[0]!r} is a Python float (pass it as a tensor on the batch's device)"
        elsewhere = [name for name, v in tensors if v.device != tensors[0][1].device]
        if elsewhere:  # a CPU scalar would be read once, at recording, and frozen into the graph
            return f"step argument {elsewhere[0]!r} is not on the batch's device (move it there)"
        if not getattr(svi_step.engine, "graph_safe", False):
            return f"engine {svi_step.engine.name!r} runs Python each step (use --compile trace or inductor)"
        updater = svi_step.updater
        if updater is None or not getattr(updater, "capturable", False):
            return "the optimizer is not the default fused, capturable Adam"
        if not svi_step.stable:
            return "stable=False"  # the guard's deferral is what keeps host reads out of the step
        return None

    @staticmethod
    def _named(args, kwargs) -> list:
        """The arguments by name (positions first, then keywords in name order): what keys and feeds a graph."""
        return [(i, a) for i, a in enumerate(args)] + sorted(kwargs.items())

    def __call__(self, *args, **kwargs) -> torch.Tensor:
        named = self._named(args, kwargs)
        tensors = [t for _, t in named if torch.is_tensor(t)]
        key = call_key(args, kwargs)[0]  # shapes, dtypes, devices and the typed values of the other arguments
        self.svi_step.engine.fill_inputs()
        entry = self.graphs.get(key)
        if entry is None:
            self.seen[key] = self.seen.get(key, 0) + 1
            if self.seen[key] <= WARMUP_STEPS:
                return self._eager(args, kwargs)
            entry = self.graphs[key] = self._record(args, kwargs)
        inputs, graph, loss, grad_norm = entry
        for buffer, value in zip(inputs, tensors):
            buffer.copy_(value, non_blocking=True)
        graph.replay()
        self.svi_step.steps += 1
        self.svi_step.grad_norm = grad_norm.clone()
        return loss.clone()  # the caller may keep it past the next replay

    def _eager(self, args, kwargs) -> torch.Tensor:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        try:
            with torch.cuda.stream(side):
                loss = self.svi_step(*args, **kwargs)
        finally:
            torch.cuda.current_stream().wait_stream(side)
        loss.record_stream(torch.cuda.current_stream())  # used on the main stream: not reused early
        return loss

    def _record(self, args, kwargs):
        """One step recorded (recording runs nothing): its input buffers, graph, loss and gradient norm."""
        step = self.svi_step
        static = {name: v.clone() if torch.is_tensor(v) else v for name, v in self._named(args, kwargs)}
        inputs = [v for v in static.values() if torch.is_tensor(v)]  # in the order __call__ feeds them
        static_args = [static[i] for i in range(len(args))]
        static_kwargs = {k: static[k] for k in kwargs}
        graph = torch.cuda.CUDAGraph()
        steps = step.steps
        try:
            with torch.cuda.graph(graph):
                loss = step(*static_args, **static_kwargs)
        except Exception as err:  # an operation a graph cannot hold (a host read, a CPU tensor, ...)
            torch.cuda.synchronize()
            for p in step.engine.loss.params:  # gradients the aborted recording left unfilled
                p.grad = None
            raise GraphRecordError(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__) \
                from None
        finally:
            step.steps = steps
        return inputs, graph, loss, step.grad_norm
