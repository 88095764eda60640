"""Priors p(z) over the latent code, one small class each.

A prior is a ``PyroModule`` whose ``forward(batch_shape)`` returns the
distribution of ``z`` with ``event_shape == (latent_dim,)``, so a learned prior
holds its own parameters and the VAE model never changes when the prior does.
Each constructor takes ``latent_dim`` and its own options only (a misspelled option is an error); a prior
with options declares them in its ``Config`` (``option(...)``: the config key and the ``vae`` flag) and
builds itself from them in ``from_config`` (``pyro_vae.models.registry``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
import pyro.distributions as dist
import pyro.distributions.transforms as T
from pyro.nn import PyroModule
from torch import nn

from .diagonal_mixture import DiagonalNormalMixture
from .networks import flow_hidden_width
from .registry import Registry, option

PRIORS: Registry = Registry("prior")


class Prior(PyroModule):
    """The base of the priors p(z): a ``PyroModule`` whose ``forward(batch_shape)`` returns the distribution of z.

    A subclass defines ``distribution()`` (p(z) for one data point, event shape ``(latent_dim,)``) and registers
    itself in ``PRIORS``. ``factorized``: p(z) is a product over latent dimensions (free bits and the
    per-dimension rate need it); ``can_sample``: p(z) has draws (an improper prior has none)."""

    factorized = False
    can_sample = True

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim

    @classmethod
    def from_config(cls, config, latent_dim: int, event_shape: torch.Size) -> "Prior":
        """The prior a model config names, with the options of its ``Config`` (none here)."""
        return cls(latent_dim)

    def forward(self, batch_shape: torch.Size = torch.Size()) -> dist.TorchDistribution:
        """The distribution of z for a batch: ``distribution()`` expanded to ``batch_shape``, event shape ``(latent_dim,)``."""
        return self.distribution().expand(batch_shape)

    def distribution(self) -> dist.TorchDistribution:
        """p(z) for one data point, ``event_shape == (latent_dim,)``: what a subclass defines."""
        raise NotImplementedError

    def numbers_per_draw(self) -> int:
        """Numbers held at once to score one draw z, beside z itself (0: a few per unit); an evaluator adds
        them to the decoder's outputs when it sizes its passes."""
        return 0

    @classmethod
    def pairing_problem(cls, guide_cls) -> Optional[str]:
        """Why this prior cannot be trained with guides of class ``guide_cls`` (None: it can)."""
        return None


@PRIORS.register("normal")
class StandardNormalPrior(Prior):
    """p(z) = N(0, I) (Kingma & Welling 2013; seed 000: p(Z) = N(0, 1))."""

    factorized = True

    def __init__(self, latent_dim: int):
        super().__init__(latent_dim)
        # Buffers follow the module to its device and stay out of the optimizer.
        self.register_buffer("loc", torch.zeros(latent_dim))
        self.register_buffer("scale", torch.ones(latent_dim))

    def distribution(self):
        """N(0, I) over the ``latent_dim`` dimensions."""
        return dist.Normal(self.loc, self.scale).to_event(1)


@PRIORS.register("learned_normal")
class LearnedNormalPrior(Prior):
    """p(z) = N(m, diag(s^2)) with m and s = softplus(r) learned."""

    factorized = True

    def __init__(self, latent_dim: int):
        super().__init__(latent_dim)
        self.loc = nn.Parameter(torch.zeros(latent_dim))
        self.raw_scale = nn.Parameter(torch.full((latent_dim,), 0.5413))  # softplus(0.5413) = 1

    def distribution(self):
        """N(m, diag(s^2)) with the current learned m and s."""
        return dist.Normal(self.loc, F.softplus(self.raw_scale)).to_event(1)


def components_option():
    """``prior_components``, the option the mixture priors share, declared alike by each."""
    return option(10, "mixture components K of the mog and vamp priors (entropy_model: per dimension, at most 5)",
                  above=0)


@dataclass
class ComponentsConfig:
    prior_components: int = components_option()


@PRIORS.register("mog")
class MixtureOfGaussiansPrior(Prior):
    """p(z) = sum_k pi_k N(z; m_k, diag(s_k^2)), K learned components (weights, means, scales)."""

    Config = ComponentsConfig

    @classmethod
    def from_config(cls, config, latent_dim, event_shape):
        """The prior a model config names, with K = ``prior_components``."""
        return cls(latent_dim, config.prior_components)

    def __init__(self, latent_dim: int, num_components: int = 10):
        super().__init__(latent_dim)
        self.logits = nn.Parameter(torch.zeros(num_components))
        self.locs = nn.Parameter(torch.randn(num_components, latent_dim))
        self.raw_scales = nn.Parameter(torch.full((num_components, latent_dim), 0.5413))

    def distribution(self):
        """The mixture sum_k pi_k N(m_k, diag(s_k^2)), pi = softmax(logits)."""
        return DiagonalNormalMixture(self.logits, self.locs, F.softplus(self.raw_scales))

    def numbers_per_draw(self) -> int:
        """The K per-component log-densities held to score one draw."""
        return DiagonalNormalMixture.numbers_per_draw(self.logits.shape[0])


@PRIORS.register("vamp")
class VampPrior(Prior):
    """p(z) = (1/K) sum_k q(z | u_k): the guide's posteriors at K learned pseudo-inputs
    u_k (Tomczak & Welling 2018). ``attach_guide`` links the guide after both are built."""

    Config = ComponentsConfig

    @classmethod
    def from_config(cls, config, latent_dim, event_shape):
        """The prior a model config names: K = ``prior_components`` pseudo-inputs of the data's ``event_shape``."""
        return cls(latent_dim, config.prior_components, event_shape)

    def __init__(self, latent_dim: int, num_components: int = 10, event_shape: Optional[torch.Size] = None):
        super().__init__(latent_dim)
        if event_shape is None:
            raise ValueError("the VampPrior needs the data's event_shape for its pseudo-inputs")
        self.pseudo_inputs = nn.Parameter(torch.rand(num_components, *event_shape))
        self._guide: list = []  # a plain list: the guide is not a submodule of the model

    @classmethod
    def pairing_problem(cls, guide_cls) -> Optional[str]:
        """Why the VampPrior cannot mix the posteriors of guides of class ``guide_cls`` (None: it can).

        Only guides with ``mixable = True`` (diagonal or full-covariance Gaussians) give posteriors that
        ``MixtureSameFamily`` can batch into one mixture.
        """
        if getattr(guide_cls, "mixable", False):
            return None
        why = {"point": "point masses, so the mixture has no density",
               "box": "unit boxes, so the prior is 0 (log p = -inf) for almost every code",
               "flow": "conditional flows, which MixtureSameFamily cannot batch into one mixture"}
        kind = getattr(guide_cls, "posterior_kind", "flow")
        return (f"the VampPrior mixes the guide's posteriors at its pseudo-inputs, and this guide's are "
                f"{why.get(kind, why['flow'])}")

    def attach_guide(self, guide) -> None:
        """Link the guide whose posteriors q(z | u_k) the prior mixes (kept outside the model's submodules).

        Raises ``ValueError`` for a guide without ``posterior(x)`` or one ``pairing_problem`` refuses.
        """
        if not hasattr(guide, "posterior"):
            raise ValueError("the VampPrior needs a guide with a posterior(x) method")
        problem = self.pairing_problem(type(guide))
        if problem:
            raise ValueError(problem)
        self._guide[:] = [guide]

    def distribution(self):
        """(1/K) sum_k q(z | u_k) at the current pseudo-inputs; needs ``attach_guide`` first."""
        if not self._guide:
            raise RuntimeError("VampPrior.attach_guide(guide) must be called before use")
        components = self._guide[0].posterior(self.pseudo_inputs)
        weights = torch.zeros(self.pseudo_inputs.shape[0], device=self.pseudo_inputs.device)
        return DiagonalNormalMixture.of(weights, components)

    def numbers_per_draw(self) -> int:
        """K log-densities (float64, then float32): MixtureSameFamily's (K x D) for non-diagonal components."""
        k = self.pseudo_inputs.shape[0]
        with torch.no_grad():
            diagonal = isinstance(self.distribution(), DiagonalNormalMixture)
        return DiagonalNormalMixture.numbers_per_draw(k) if diagonal else k * (self.latent_dim + 4)


@PRIORS.register("flow")
class FlowPrior(Prior):
    """p(z) = N(0, I) pushed through K masked autoregressive affine layers (MAF,
    Papamakarios et al. 2017) from ``pyro.distributions.transforms``: log p(z) is
    one parallel pass; sampling inverts the layers dimension by dimension."""

    @dataclass
    class Config:
        prior_flows: int = option(2, "autoregressive layers of the flow prior", above=0)

    @classmethod
    def from_config(cls, config, latent_dim, event_shape):
        """The prior a model config names, with ``prior_flows`` autoregressive layers."""
        return cls(latent_dim, config.prior_flows)

    def __init__(self, latent_dim: int, num_flows: int = 2):
        super().__init__(latent_dim)
        self.register_buffer("loc", torch.zeros(latent_dim))
        self.register_buffer("scale", torch.ones(latent_dim))
        self.flows = nn.ModuleList([T.affine_autoregressive(latent_dim, hidden_dims=[flow_hidden_width(latent_dim)])
                                    for _ in range(num_flows)])

    def distribution(self):
        """N(0, I) pushed through the flow: a ``TransformedDistribution`` of the inverted layers."""
        base = dist.Normal(self.loc, self.scale).to_event(1)
        return dist.TransformedDistribution(base, [flow.inv for flow in reversed(self.flows)])


@PRIORS.register("flat")
class FlatPrior(Prior):
    """log p(z) = 0 (improper): no prior term, so a Delta guide gives the plain autoencoder (MAP of the
    decoder with a point code, seed 002). It has no samples: ``vae sample`` refuses such a run."""

    can_sample = False

    @classmethod
    def pairing_problem(cls, guide_cls) -> Optional[str]:
        """Why the flat prior cannot be trained with guides of class ``guide_cls``: only a deterministic (Delta) guide."""
        if getattr(guide_cls, "deterministic", False):
            return None
        return ("the flat prior is improper (log p(z) = 0 everywhere), so with a stochastic guide the ELBO bounds "
                "nothing and its figures mean nothing")

    def distribution(self):
        """An ``ImproperUniform`` over R^latent_dim: log p(z) = 0, no samples."""
        return dist.ImproperUniform(dist.constraints.real, (), (self.latent_dim,))


@PRIORS.register("laplace")
class LaplacePrior(StandardNormalPrior):
    """p(z) = prod_j Laplace(z_j; 0, 1): with a Delta guide, -log p(z) = sum_j ``|z_j|`` + const is the L1
    penalty of the sparse autoencoder (MAP of the code). Same fixed location and scale buffers as N(0, I)."""

    def distribution(self):
        """prod_j Laplace(z_j; 0, 1) over the ``latent_dim`` dimensions."""
        return dist.Laplace(self.loc, self.scale).to_event(1)
