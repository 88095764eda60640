"""Pyro programs as users write them for their own SVI scripts, each with what it needs from the step: extra
positional and keyword step arguments, Python-side state, parameters created late or lazily, Pyro's own
objectives. ``PROGRAMS[name]()`` returns ``(model, guide, objective, steps)``: ``steps`` is the list of
``(args, kwargs)`` the script passes to ``svi.step`` (the same for Pyro's ``SVI`` and the library's trainer),
and ``between(i)`` (an attribute of the list) is what the script does between steps."""
from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer import JitTrace_ELBO, Trace_ELBO, TraceTailAdaptive_ELBO
from pyro.infer.autoguide import (AutoDiagonalNormal, AutoGuideList, AutoIAFNormal, AutoLowRankMultivariateNormal,
                                  AutoNormal)
from torch import nn

N, B, D, Z, STEPS = 64, 16, 6, 2, 20


class Steps(list):
    """The step arguments of a script, and what it does between steps (``between(i)`` before step ``i``)."""

    def __init__(self, items, between=None):
        super().__init__(items)
        self.between = between or (lambda i: None)


def _data(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1000 + step)
    idx = torch.randperm(N, generator=gen)[:B]
    x = torch.randn(B, D, generator=gen) + torch.arange(D) / D
    return x, idx


def _decoder_and_encoder():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(Z, 8), nn.Tanh(), nn.Linear(8, D)), nn.Linear(D, 2 * Z)


def _annealed_pair(static: bool):
    """Kingma & Welling's model with a KL-annealing factor as the third step argument (Pyro's DMM example)."""
    decoder, encoder = _decoder_and_encoder()

    def model(x, idx, annealing_factor=1.0):
        pyro.module("decoder", decoder)
        with pyro.plate("data", N, subsample=idx):
            with poutine.scale(scale=annealing_factor):
                z = pyro.sample("z", dist.Normal(torch.zeros(Z), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(decoder(z), 0.5).to_event(1), obs=x)

    def guide(x, idx, annealing_factor=1.0):
        pyro.module("encoder", encoder)
        loc, raw = encoder(x).split(Z, -1)
        with pyro.plate("data", N, subsample=idx):
            with poutine.scale(scale=annealing_factor):
                pyro.sample("z", dist.Normal(loc, F.softplus(raw) + 1e-3).to_event(1))
    if static:
        model.static_structure = guide.static_structure = True
    return model, guide


def factor_positional_float():
    model, guide = _annealed_pair(static=True)
    return model, guide, Trace_ELBO(), Steps([(_data(i) + (0.1 + 0.045 * i,), {}) for i in range(STEPS)])


def factor_keyword_tensor():
    model, guide = _annealed_pair(static=True)
    return model, guide, Trace_ELBO(), Steps([(_data(i), {"annealing_factor": torch.tensor(0.1 + 0.045 * i)})
                                              for i in range(STEPS)])


def factor_in_a_closure():
    """The factor read from Python-side state that the script updates between steps (not declared static)."""
    state = {"factor": 0.1}
    model, guide = _annealed_pair(static=False)

    def closure_model(x, idx):
        return model(x, idx, state["factor"])

    def closure_guide(x, idx):
        return guide(x, idx, state["factor"])
    return closure_model, closure_guide, Trace_ELBO(), Steps(
        [(_data(i), {}) for i in range(STEPS)], between=lambda i: state.update(factor=0.1 + 0.045 * i))


def mask_and_flag():
    """A mask tensor (missing values) and a Python bool (whether to observe) as keyword step arguments."""
    decoder, encoder = _decoder_and_encoder()

    def model(x, idx, mask=None, observe=True):
        pyro.module("decoder", decoder)
        with pyro.plate("data", N, subsample=idx):
            z = pyro.sample("z", dist.Normal(torch.zeros(Z), 1.0).to_event(1))
            if observe:
                pyro.sample("x", dist.Normal(decoder(z), 0.5).mask(mask).to_event(1), obs=x)

    def guide(x, idx, mask=None, observe=True):
        pyro.module("encoder", encoder)
        loc, raw = encoder(x).split(Z, -1)
        with pyro.plate("data", N, subsample=idx):
            pyro.sample("z", dist.Normal(loc, F.softplus(raw) + 1e-3).to_event(1))
    model.static_structure = guide.static_structure = True
    steps = []
    for i in range(STEPS):
        x, idx = _data(i)
        mask = torch.rand(B, D, generator=torch.Generator().manual_seed(i)) > 0.3
        steps.append(((x, idx), {"mask": mask, "observe": i % 5 != 4}))
    return model, guide, Trace_ELBO(), Steps(steps)


def param_first_read_late():
    """A guide that reads a ``pyro.param`` from its 4th call on (a counter in Python; not declared static)."""
    model, _ = _annealed_pair(static=False)
    calls = [0]

    def late_guide(x, idx):
        calls[0] += 1
        shift = pyro.param("shift", torch.zeros(Z)) if calls[0] >= 4 else torch.zeros(Z)
        loc = pyro.param("loc", torch.zeros(B, Z))
        with pyro.plate("data", N, subsample=idx):
            pyro.sample("z", dist.Normal(loc + shift, 0.7).to_event(1))
    return lambda x, idx: model(x, idx), late_guide, Trace_ELBO(), Steps([(_data(i), {}) for i in range(STEPS)])


def _global_model():
    """A model with one global latent vector (what Pyro's whole-model autoguides are for)."""
    decoder, _ = _decoder_and_encoder()

    def model(x, idx):
        pyro.module("decoder", decoder)
        w = pyro.sample("w", dist.Normal(torch.zeros(Z), 1.0).to_event(1))
        with pyro.plate("data", N, subsample=idx):
            pyro.sample("x", dist.Normal(decoder(w), 0.5).to_event(1), obs=x)
    model.static_structure = True
    return model


def _autoguide(cls, **options):
    def build():
        model = _global_model()
        return model, cls(model, **options), Trace_ELBO(), Steps([(_data(i), {}) for i in range(STEPS)])
    return build


def jit_trace_elbo():
    model = _global_model()
    return model, AutoNormal(model), JitTrace_ELBO(), Steps([(_data(i), {}) for i in range(STEPS)])


def tail_adaptive():
    """TraceTailAdaptive_ELBO: its loss is infinite by design, its gradients finite (trained by SVI)."""
    model = _global_model()
    return model, AutoNormal(model), TraceTailAdaptive_ELBO(num_particles=4, vectorize_particles=True), \
        Steps([(_data(i), {}) for i in range(STEPS)])


def guide_list_with_a_closure():
    """Pyro's ``AutoGuideList``: an ``AutoNormal`` over the global latent and the user's own function (not declared
    static; Pyro wraps it in an ``AutoCallable``) that reads Python-side state the script updates between steps."""
    state = {"factor": 1.0}
    decoder, _ = _decoder_and_encoder()

    def model(x, idx):  # no plate: AutoGuideList enters the model's plates itself, so its parts cannot
        pyro.module("decoder", decoder)
        w = pyro.sample("w", dist.Normal(torch.zeros(Z), 1.0).to_event(1))
        z = pyro.sample("z", dist.Normal(torch.zeros(B, Z), 1.0).to_event(2))
        pyro.sample("x", dist.Normal(decoder(w + z), 0.5).to_event(2), obs=x)
    model.static_structure = True

    def local(x, idx):
        loc = pyro.param("local_loc", torch.zeros(B, Z))
        pyro.sample("z", dist.Normal(loc * state["factor"], 0.7).to_event(2))
    def global_part(x, idx):  # the model's global site alone, for the autoguide
        pyro.sample("w", dist.Normal(torch.zeros(Z), 1.0).to_event(1))
    global_part.static_structure = True
    guide = AutoGuideList(model)
    guide.append(AutoNormal(global_part))
    guide.append(local)
    return model, guide, Trace_ELBO(), Steps([(_data(i), {}) for i in range(STEPS)],
                                             between=lambda i: state.update(factor=1.0 + 0.1 * i))


PROGRAMS = {
    "factor-positional-float": factor_positional_float,
    "factor-keyword-tensor": factor_keyword_tensor,
    "factor-in-a-closure": factor_in_a_closure,
    "mask-and-flag": mask_and_flag,
    "param-first-read-late": param_first_read_late,
    "auto-normal": _autoguide(AutoNormal),
    "auto-diagonal-normal": _autoguide(AutoDiagonalNormal),
    "auto-low-rank": _autoguide(AutoLowRankMultivariateNormal, rank=1),
    "auto-iaf-normal": _autoguide(AutoIAFNormal, hidden_dim=[4]),
    "jit-trace-elbo": jit_trace_elbo,
    "tail-adaptive": tail_adaptive,
    "guide-list-with-a-closure": guide_list_with_a_closure,
}
