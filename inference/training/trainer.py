"""``SVITrainer``: Pyro's ``SVI`` for any program, on any engine, with one step.

::

    trainer = SVITrainer(model, guide, Trace_ELBO(), pyro.optim.Adam({"lr": 1e-3}), engine="trace")
    for x in batches:
        loss = trainer.step(x, num_data=N, subsample=idx)   # as svi.step(x, num_data=N, subsample=idx)

The model and guide may be ``PyroModule`` s, ``nn.Module`` s or plain callables; each is called with
only the keywords it accepts (``inference/programs.py``). The objective is any ``pyro.infer`` ELBO or
one of ``pyro_vae.inference.objectives``; the optimizer any ``pyro.optim`` optimizer or scheduler or a
``torch.optim`` class (``inference/training/optim.py``). The parameters trained are those the program
reads, as ``SVI`` finds them (``inference/training/loss.py``), on every engine
(``inference/training/engines.py``); one step function (``inference/training/step.py``) updates them.
By default the program reads Pyro's global param store (never cleared by the trainer), or the store its
model and guide carry (a run's); ``param_state=new_param_state()`` gives it a private one.

Faithful to ``SVI``: the same loss and parameters at every step on every engine. A captured engine replays
only programs known to have static structure (``static_structure = True`` on a user's own); anything else
trains on the interpreter after one ``note:`` line, and nothing runs the program before its first step.
"""
from __future__ import annotations

import warnings
from typing import Optional, Protocol

import torch
from pyro.infer import Trace_ELBO

from pyro_vae.inference.objectives.base import weight_at
from pyro_vae.inference.training.capture import CaptureError
from pyro_vae.inference.training.engines import choose_engine
from pyro_vae.inference.training.graphs import GraphRecordError, StepGraphs
from pyro_vae.inference.training.loss import ProgramLoss
from pyro_vae.inference.training.optim import clip_args, load_updater_state, make_updater, updater_state
from pyro_vae.inference.training.step import NumericalFault, SVIStep


class Trainer(Protocol):
    """What the epoch loop (``inference/training/loop.py``) needs of a trainer: ``step`` on a batch (the arguments
    ``SVI.step`` takes) returning the loss, ``check`` for a skipped non-finite step, the step count (which a
    schedule follows and a checkpoint saves), the optimizer's state, and ``grad_norm`` before clipping."""

    steps: int
    grad_norm: Optional[torch.Tensor]

    def step(self, *args, **kwargs): ...

    def check(self) -> None: ...

    def optimizer_state(self) -> dict: ...

    def load_optimizer_state(self, state: dict) -> None: ...


class SVITrainer:
    """``step(*args, **kwargs)`` returns the loss (a device tensor on a captured engine: read it with
    ``float``; ``check()`` raises a skipped non-finite step there). ``notice`` is the one-line note of an
    engine given up (None when the asked-for engine runs)."""

    def __init__(self, model, guide, loss=None, optim=None, *, lr: float = 1e-3, clip_norm: Optional[float] = None,
                 engine: str = "off", param_state: Optional[dict] = None, stable: bool = True,
                 planned_steps: int = 0, parallel=None, cuda_graph: bool = True):
        if clip_norm is not None and clip_args(optim):
            raise ValueError(f"clip the gradients once: either the trainer's clip_norm or the pyro.optim "
                             f"optimizer's own clipping ({clip_args(optim)}), not both")
        if clip_norm is not None and not clip_norm > 0:
            raise ValueError(f"clip_norm must be positive, got {clip_norm}")
        self.model, self.guide = model, guide
        self.objective = loss if loss is not None else Trace_ELBO()
        self.loss = ProgramLoss(model, guide, self.objective, param_state)
        self.optim, self.lr, self.clip_norm, self.stable = optim, lr, clip_norm, stable
        self.compile, self.planned_steps, self.parallel = engine, planned_steps, parallel
        self.svi_step: Optional[SVIStep] = None
        self.notice: Optional[str] = None
        self._steps = 0
        self.cuda_graph = cuda_graph  # on CUDA with a captured engine: the whole step as one CUDA graph
        self.graphs: Optional[StepGraphs] = None
        self._graphs_decided = False

    # -- engine ---------------------------------------------------------------------------------------
    def prepare(self, *examples) -> Optional[str]:
        """Choose the engine with example batches (each ``(args, kwargs)``): capture and check its graphs
        now; returns the notice (one line) when an engine was given up, else None."""
        engine, self.notice = choose_engine(self.loss, self.compile, examples, self.planned_steps, self.parallel)
        previous, self._steps = self.svi_step, self.steps
        self.svi_step = SVIStep(engine, lambda params: make_updater(self.optim, params, self.lr), self.clip_norm,
                                self.stable, self.loss.store)
        self.svi_step.steps = self._steps
        if previous is not None:  # another engine for the same parameters: the optimizer's state goes on, and
            self.svi_step.updater, self.svi_step.faults = previous.updater, previous.faults  # a pending fault
            self.svi_step.had_grad, self.svi_step.pending_state = previous.had_grad, previous.pending_state
        if self.loss.params:
            self.svi_step.ensure_updater(self.loss.params)
        if self.graphs is not None:
            self.graphs.close()
        self.graphs, self._graphs_decided = None, not self.cuda_graph
        return self.notice

    @property
    def engine(self) -> str:
        """The engine's name, ``+cuda-graph`` when its steps are replayed as CUDA graphs."""
        if self.svi_step is None:
            return "unprepared"
        return self.svi_step.engine.name + ("+cuda-graph" if self.graphs is not None else "")

    def _stepper(self, args, kwargs):
        """The recorded step where ``StepGraphs`` can record it, else the eager one; decided once per engine,
        with one ``note:`` line when a CUDA run cannot use graphs."""
        if not self._graphs_decided and self.svi_step.updater is not None:
            self._graphs_decided = True
            reason = StepGraphs.unsupported(self.svi_step, args, kwargs)
            if reason is None:
                self.graphs = StepGraphs(self.svi_step, args[0].device)
            elif any(torch.is_tensor(a) and a.device.type == "cuda" for a in list(args) + list(kwargs.values())):
                self._note(f"note: the step is not recorded as a CUDA graph ({reason}); stepping eagerly")
        return self.graphs or self.svi_step

    def _note(self, line: str) -> None:
        self.notice = line if not self.notice else f"{self.notice}\n{line}"
        warnings.warn(line, stacklevel=4)

    @property
    def params(self) -> list[torch.Tensor]:
        """The tensors this trainer optimizes (unconstrained), in the order of ``param_names``."""
        return self.loss.params

    @property
    def param_names(self) -> list[str]:
        """The names of the trained parameters in the param store."""
        return self.loss.param_names

    # -- stepping -------------------------------------------------------------------------------------
    @property
    def steps(self) -> int:
        """The number of steps taken (settable, so that a resumed run continues its count)."""
        return self._steps if self.svi_step is None else self.svi_step.steps

    @steps.setter
    def steps(self, value: int) -> None:
        self._steps = value
        if self.svi_step is not None:
            self.svi_step.faults.base += value - self.svi_step.steps  # steps recorded since keep their numbers
            self.svi_step.steps = value

    @property
    def grad_norm(self) -> Optional[torch.Tensor]:
        """The norm of all gradients of the last step, before clipping (None before the first step)."""
        return None if self.svi_step is None else self.svi_step.grad_norm

    def step(self, *args, **kwargs):
        """One gradient step on the batch (the arguments Pyro's ``SVI.step`` would take)."""
        try:
            return self._step(args, kwargs)
        except ValueError as err:  # distribution validation: NaN or Inf reached a distribution's parameter
            if "invalid values" not in str(err):
                raise
            for p in self.loss.params:
                p.grad = None
            raise NumericalFault(self.steps + 1, "distribution parameter") from None

    def _step(self, args, kwargs):
        if self.svi_step is None:  # nothing runs the program before its first step: SVI's calls, SVI's draws
            self.prepare()
            if self.notice:
                warnings.warn(self.notice, stacklevel=3)
        self._set_schedule_weight()
        try:
            loss = self._stepper(args, kwargs)(*args, **kwargs)
        except CaptureError as err:  # a call that does not capture (new arguments): the interpreter from now on
            given_up, self.compile = self.svi_step.engine.name, "off"
            self.prepare()
            self.notice = f"note: {type(self.objective).__name__} could not be captured by {given_up} ({err}); " \
                          f"training with Pyro's interpreter (--compile off) from step {self.steps + 1}"
            warnings.warn(self.notice, stacklevel=3)
            return self._step(args, kwargs)
        except GraphRecordError as err:  # nothing was stepped: the same step eagerly, from now on
            self.graphs.close()
            self.graphs = None
            self._note(f"note: the step could not be recorded as a CUDA graph ({err}); stepping eagerly")
            return self._step(args, kwargs)
        except NumericalFault as fault:
            raise NumericalFault(self.steps + 1, self._bad_term(fault, args, kwargs)) from None
        return loss

    def _set_schedule_weight(self) -> None:
        """The one place a schedule (KL warm-up) meets the step count: the step after t steps minimizes the
        loss at weight ``objective.schedule_weight(t)``, passed to the (stateless) objective through the loss
        module."""
        self.loss.schedule_weight = weight_at(self.objective, self.steps)

    def check(self) -> None:
        """Raise ``NumericalFault`` for a skipped step since the last check (one host read)."""
        if self.svi_step is not None:
            self.svi_step.check()

    def _bad_term(self, fault: NumericalFault, args, kwargs) -> str:
        """Which part of the library's -ELBO is not finite on the batch: reconstruction or KL."""
        from pyro_vae.inference.evaluate.elbo import elbo_terms

        if fault.term == "distribution parameter" or not args or not torch.is_tensor(args[0]):
            return fault.term
        try:
            with torch.no_grad(), self.loss.store():
                distortion, rate = elbo_terms(self.model, self.guide, args[0], kwargs.get("y"))
        except Exception:  # a program outside the library's data convention: keep Pyro's own word
            return fault.term
        if not torch.isfinite(distortion).all():
            return "reconstruction"
        if not torch.isfinite(rate).all():
            return "KL"
        return fault.term

    # -- checkpoints ----------------------------------------------------------------------------------
    def optimizer_state(self) -> dict:
        """The optimizer's state by parameter name, and which parameters keep a zeroed gradient (as under SVI)."""
        if self.svi_step is None or self.svi_step.updater is None:
            raise RuntimeError("the trainer has taken no step and has no optimizer state yet")
        with self.loss.store():
            state = updater_state(self.svi_step.updater, self.loss.param_names)
        state["had_grad"] = [n for n, p in zip(self.loss.param_names, self.loss.params)
                             if self.svi_step.had_grad_before(p)]
        return state

    def load_optimizer_state(self, state: dict) -> None:
        """Restore an ``optimizer_state()``; before the program's first step (its parameters not read yet), at
        that step, before its update."""
        if self.svi_step is None:
            self.prepare()
        if self.svi_step.updater is None:
            self.svi_step.pending_state = (state, self._load)
            return
        with self.loss.store():
            self._load(self.svi_step.updater, state)

    def _load(self, updater, state: dict) -> None:
        load_updater_state(updater, state, self.loss.param_names)
        had = set(state.get("had_grad", ()))
        optim = getattr(updater, "optim", None)  # a state without the list: parameters with moments had gradients
        with_moments = {id(p) for p in optim.state} if isinstance(optim, torch.optim.Optimizer) else set()
        for name, p in zip(self.loss.param_names, self.loss.params):
            if name in had or ("had_grad" not in state and id(p) in with_moments):
                self.svi_step.mark_had_grad(p)


def make_trainer(model, guide, objective, lr: float = 1e-3, clip_norm: Optional[float] = None,
                 compile: str = "auto", planned_steps: int = 0, examples=(), optim=None,
                 param_state: Optional[dict] = None, parallel=None, cuda_graph: bool = True):
    """The trainer ``vae train`` uses: ``SVITrainer`` prepared on ``examples`` (``(args, kwargs)`` each),
    extended by the objective when it takes steps beyond the loss (``objective.extend_trainer``, the
    adversarial autoencoder). Returns ``(trainer, notice)``."""
    trainer = SVITrainer(model, guide, objective, optim, lr=lr, clip_norm=clip_norm, engine=compile,
                         param_state=param_state, planned_steps=planned_steps, parallel=parallel,
                         cuda_graph=cuda_graph)
    notice = trainer.prepare(*examples) if examples else None
    extend = getattr(objective, "extend_trainer", None)
    return (extend(trainer) if extend else trainer), notice

