"""Pyro programs for the differential tests: the toolkit's components by registry, and programs as users
write them (a ``pyro.param`` in a likelihood, a function guide, a function model, an autoguide)."""
from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import constraints
from pyro.infer.autoguide import AutoNormal

from pyro_vae.inference import RunConfig
from pyro_vae.inference.objectives import build_objective
from pyro_vae.inference.runs.build import build_model_and_guide
from pyro_vae.models import MLPDecoder, MLPEncoder, StandardNormalPrior, VAEModel, data_plate
from pyro_vae.models import LIKELIHOODS
from pyro_vae.models.likelihoods import BINARY, COUNT, EIGHT_BIT, REAL, Likelihood

EVENT = torch.Size([1, 8, 8])
N, B, Z = 200, 16, 3


class ParamScaleGaussian(Likelihood):
    """x ~ N(mu, sigma^2) with sigma = pyro.param("sigma"): the README's custom-likelihood pattern with a
    learned scale read from the param store, not a module attribute. It reads no Python-side state that changes
    between steps, and says so (``static_structure``), so the captured engines may replay it."""

    static_structure = True

    def forward(self, decoded):
        sigma = pyro.param("sigma", lambda: torch.tensor(0.5), constraint=constraints.positive)
        return self._event(dist.Normal(decoded, sigma))

    def mean(self, decoded):
        return decoded


# name -> RunConfig sections (small networks); each a registered component or objective
REGISTRY_CASES = {
    "elbo": {},
    "elbo-3-particles": {"objective": {"num_particles": 3}},
    "mean_field": {"objective": {"name": "mean_field"}},
    "beta-warm-up": {"objective": {"name": "beta", "beta": 4.0, "kl_schedule": "linear", "warmup_steps": 10}},
    "beta-free-bits": {"objective": {"name": "beta", "free_bits": 0.3}},
    "iwae": {"objective": {"name": "iwae", "num_particles": 4}},
    "iwae-dreg": {"objective": {"name": "iwae", "num_particles": 4, "dreg": True}},
    "contractive": {"model": {"prior": "flat"}, "guide": {"guide": "delta"}, "objective": {"name": "contractive"}},
    "adversarial": {"guide": {"guide": "delta"}, "objective": {"name": "adversarial"}},
    "prior-learned_normal": {"model": {"prior": "learned_normal"}},
    "prior-mog": {"model": {"prior": "mog", "prior_components": 3}},
    "prior-vamp": {"model": {"prior": "vamp", "prior_components": 3}},
    "prior-flow": {"model": {"prior": "flow"}},
    "prior-entropy_model": {"model": {"prior": "entropy_model"}, "guide": {"guide": "uniform_noise"}},
    "prior-flat": {"model": {"prior": "flat"}, "guide": {"guide": "delta"}},
    "prior-laplace": {"model": {"prior": "laplace"}},
    "guide-full_covariance": {"guide": {"guide": "full_covariance"}},
    "guide-iaf": {"guide": {"guide": "iaf"}},
    "guide-delta": {"guide": {"guide": "delta"}},
    "guide-uniform_noise": {"guide": {"guide": "uniform_noise"}},
    "conditional": {"model": {"conditional": True}},
    "hierarchy": {"model": {"hierarchy": [8]}},
    "hierarchy-vamp": {"model": {"hierarchy": [8], "prior": "vamp", "prior_components": 3}},
    "hierarchy-ladder": {"model": {"hierarchy": [8]}, "guide": {"hierarchy_guide": "ladder"}},
    "hierarchy-iwae-dreg": {"model": {"hierarchy": [8, 6], "prior": "mog", "prior_components": 3},
                            "objective": {"name": "iwae", "num_particles": 4, "dreg": True}},
    "likelihood-gaussian_learned": {"model": {"likelihood": "gaussian_learned"}, "data": {"binarize": "none"}},
    "likelihood-discretized_logistic_mixture": {"model": {"likelihood": "discretized_logistic_mixture",
                                                          "likelihood_components": 3}},
    **{f"likelihood-{name}": {"model": {"likelihood": name}, "data": {"dataset": "array", "data_dir": "counts.npz"}}
       for name in ("poisson", "negative_binomial", "zero_inflated_negative_binomial")},
}
USER_CASES = ("pyro-param-likelihood", "function-guide", "function-model", "autonormal-guide")
CASES = tuple(REGISTRY_CASES) + USER_CASES
# programs the captured engines cannot follow, each for its stated reason: they train on Pyro's interpreter
INTERPRETED = {
    "contractive": "torch.func's Jacobian inside the loss",
}


def _registry_pair(sections: dict):
    width = {} if "hierarchy" in sections.get("model", {}) else {"hidden_dim": 16}  # a hierarchy sets its own
    cfg = RunConfig.from_dict({"model": {"latent_dim": Z, **width, **sections.get("model", {})},
                               "guide": {**width, **sections.get("guide", {})},
                               "objective": sections.get("objective", {}), "data": sections.get("data", {})})
    model, guide = build_model_and_guide(cfg.model, cfg.guide, EVENT)
    kind = BINARY if cfg.data.binarize != "none" else LIKELIHOODS.get(cfg.model.likelihood).data
    return model, guide, build_objective(cfg.objective), kind, cfg.model.conditional


def _function_guide():
    encoder = MLPEncoder(EVENT, 2 * Z, hidden_dim=16)

    def guide(x, num_data=None, subsample=None):
        pyro.module("encoder", encoder)
        loc, raw = encoder(x).split(Z, -1)
        with data_plate(x.shape[0], num_data, subsample, x.device):
            pyro.sample("z", dist.Normal(loc, F.softplus(raw) + 1e-3).to_event(1))
    guide.static_structure = True  # the user's promise: the captured engines may replay it
    return guide


def _function_model():
    decoder = MLPDecoder(Z, EVENT, hidden_dim=16)

    def model(x, num_data=None, subsample=None):
        pyro.module("decoder", decoder)
        with data_plate(x.shape[0], num_data, subsample, x.device):
            z = pyro.sample("z", dist.Normal(torch.zeros(Z), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=decoder(z), validate_args=False).to_event(3), obs=x)
    model.static_structure = True
    return model


def build(case: str, seed: int = 0):
    """``(model, guide, objective, x, kwargs)``: the same parameters and batch for the same seed."""
    pyro.set_rng_seed(seed)
    kind, conditional = BINARY, False
    objective = pyro.infer.Trace_ELBO()
    if case in REGISTRY_CASES:
        model, guide, objective, kind, conditional = _registry_pair(REGISTRY_CASES[case])
    elif case == "pyro-param-likelihood":
        model = VAEModel(StandardNormalPrior(Z), MLPDecoder(Z, EVENT, hidden_dim=16), ParamScaleGaussian(EVENT))
        guide, kind = _registry_pair({})[1], REAL
    elif case == "function-guide":
        model, guide = _registry_pair({})[0], _function_guide()
    elif case == "function-model":
        model, guide = _function_model(), _registry_pair({})[1]
    elif case == "autonormal-guide":
        model = _registry_pair({})[0]
        guide = AutoNormal(model, create_plates=lambda x, num_data=None, subsample=None, **_: pyro.plate(
            "data", num_data, subsample=subsample, dim=-1))
    else:
        raise KeyError(case)
    x = torch.rand((B,) + EVENT, generator=torch.Generator().manual_seed(seed))
    if kind == BINARY:
        x = x.bernoulli(generator=torch.Generator().manual_seed(seed + 1))
    elif kind == EIGHT_BIT:
        x = (x * 255).round() / 255
    elif kind == COUNT:
        x = (x * 12).round()
    kwargs = {"num_data": N, "subsample": torch.arange(B) * 3}
    if conditional:
        kwargs["y"] = torch.randint(0, 10, (B,), generator=torch.Generator().manual_seed(seed))
    return model, guide, objective, x, kwargs
