"""The top-down (ladder) guide of a hierarchical VAE (Sønderby et al. 2016, "Ladder Variational Autoencoders",
eqs. 17-21): a deterministic upward pass, then inference down the model's own generative path.

    d_0 = x,   (d_l, mu^_l, sigma^_l) = step_l(d_{l-1})                         upward, l = 1 .. L
    q(z_L | x) = N(mu^_L, sigma^_L^2)
    q(z_l | z_{l+1}, x) = N(mu_q, sigma_q^2),  sigma_q^-2 = sigma^_l^-2 + sigma_p^-2,
                          mu_q = sigma_q^2 (mu^_l sigma^_l^-2 + mu_p sigma_p^-2)          l = L-1 .. 1

where (mu_p, sigma_p) are the model's p(z_l | z_{l+1}): the guide shares the generative path, so a layer's
posterior is the prior's prediction corrected by the data's estimate, weighted by their precisions. With
linear-Gaussian layers whose precisions are diagonal, this family holds the exact posterior (tested).
"""
from __future__ import annotations

from typing import Optional, Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn
from torch.distributions import constraints

from pyro_vae.models.hierarchical import site
from pyro_vae.models.networks import ACTIVATIONS, mlp
from pyro_vae.models.vae import data_plate

Estimate = tuple[torch.Tensor, torch.Tensor]


class LadderStep(nn.Module):
    """d -> (d', mu^, sigma^): ``num_hidden_layers`` layers of ``hidden_dim`` units give the features d' passed
    up; a linear head gives the layer's estimate (sigma^ = softplus + ``min_scale``)."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int, num_hidden_layers: int = 2,
                 activation: str = "tanh", min_scale: float = 1e-5):
        super().__init__()
        self.out_dim, self.min_scale = out_dim, min_scale
        self.features = nn.Sequential(mlp(in_dim, hidden_dim, max(num_hidden_layers - 1, 0), hidden_dim, activation),
                                      ACTIVATIONS[activation]())
        self.head = nn.Linear(hidden_dim, 2 * out_dim)

    def forward(self, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        d = self.features(d)
        loc, raw = self.head(d).split(self.out_dim, dim=-1)
        return d, loc, nn.functional.softplus(raw) + self.min_scale


def precision_weighted(estimate: Estimate, prior_loc: torch.Tensor, prior_scale: torch.Tensor) -> dist.Normal:
    """N(mu_q, sigma_q^2) combining the data's estimate with the model's prediction (eqs. 19-21)."""
    loc_hat, scale_hat = estimate
    p_hat, p_prior = scale_hat.pow(-2), prior_scale.pow(-2)
    variance = 1.0 / (p_hat + p_prior)
    return dist.Normal(variance * (loc_hat * p_hat + prior_loc * p_prior), variance.sqrt())


class LadderGuide(PyroModule):
    """``steps[l]`` maps d_l to (d_{l+1}, mu^_{l+1}, sigma^_{l+1}) (the first reads the flattened pixels;
    ``log1p`` for counts); ``model`` is the ``HierarchicalVAEModel`` whose ``conditionals[l].params(z)``
    give (mu_p, sigma_p) of its p(z_{l+1} | z_{l+2}). The model is held outside the module tree: its
    parameters stay the model's, trained once."""

    posterior_kind = "gaussian"

    def __init__(self, steps: Sequence[nn.Module], model: nn.Module, event_shape: torch.Size, log1p: bool = False):
        super().__init__()
        if len(steps) != len(model.conditionals) + 1:
            raise ValueError(f"a ladder over {len(model.conditionals) + 1} stochastic layers needs as many steps, "
                             f"got {len(steps)}")
        self.steps = nn.ModuleList(steps)
        self._model = [model]
        self.event_dims = len(event_shape)
        self.log1p = log1p

    @property
    def latent_dim(self) -> int:
        return self._model[0].latent_dims[0]

    def upward(self, x: torch.Tensor) -> list[Estimate]:
        """(mu^_l, sigma^_l) of every layer, l = 1 .. L."""
        d = x.flatten(-self.event_dims)
        d = torch.log1p(d) if self.log1p else d
        estimates = []
        for step in self.steps:
            d, loc, scale = step(d)
            estimates.append((loc, scale))
        return estimates

    def factor(self, layer: int, estimate: Estimate, above: torch.Tensor) -> dist.TorchDistribution:
        """q(z_layer | z_{layer+1}, x) for ``layer`` < L."""
        prior_loc, prior_scale = self._model[0].conditionals[layer - 1].params(above)
        return precision_weighted(estimate, prior_loc, prior_scale).to_event(1)

    def forward(self, x: Optional[torch.Tensor] = None, num_data: Optional[int] = None,
                subsample: Optional[torch.Tensor] = None, batch_size: Optional[int] = None):
        if x is None:
            raise ValueError("the guide q(z | x) needs data x")
        with data_plate(x.shape[0], num_data, subsample, x.device):
            estimates = self.upward(x)
            z = pyro.sample(site(len(estimates)), dist.Normal(*estimates[-1]).to_event(1))
            for layer in range(len(estimates) - 1, 0, -1):
                z = pyro.sample(site(layer), self.factor(layer, estimates[layer - 1], z))
            return z

    def top_posterior(self, x: torch.Tensor) -> dist.TorchDistribution:
        """q(z_L | x), in closed form: what the VampPrior at the top mixes at its pseudo-inputs."""
        return dist.Normal(*self.upward(x)[-1]).to_event(1)

    def posterior(self, x: torch.Tensor, y=None) -> dist.TorchDistribution:
        """q(z_1 | x, z_2 .. z_L at their means): z_1's factor for reconstructions and codes (its exact
        marginal mixes over the layers above and has no closed form)."""
        estimates = self.upward(x)
        z, q = estimates[-1][0], None
        for layer in range(len(estimates) - 1, 0, -1):
            q = self.factor(layer, estimates[layer - 1], z)
            z = q.mean
        return q

    def code(self, x: torch.Tensor, y=None) -> torch.Tensor:
        return self.posterior(x).mean

    def joint_posterior(self, x: torch.Tensor, y=None) -> "TopDownPosterior":
        return TopDownPosterior(self, self.upward(x))


class TopDownPosterior(dist.TorchDistribution):
    """The ladder guide's q(z_1, ..., z_L | x) over the concatenated code [z_1, ..., z_L]: draws descend from
    the top (reparameterized), ``log_prob`` sums the factors."""

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, guide: LadderGuide, estimates: list[Estimate]):
        self.guide, self.estimates = guide, estimates
        self.dims = [loc.shape[-1] for loc, _ in estimates]
        super().__init__(estimates[0][0].shape[:-1], torch.Size([sum(self.dims)]), validate_args=False)

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        codes = [dist.Normal(*self.estimates[-1]).rsample(sample_shape)]
        for layer in range(len(self.estimates) - 1, 0, -1):
            codes.insert(0, self.guide.factor(layer, self.estimates[layer - 1], codes[0]).rsample())
        return torch.cat(codes, dim=-1)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        parts = z.split(self.dims, dim=-1)
        total = dist.Normal(*self.estimates[-1]).to_event(1).log_prob(parts[-1])
        for layer in range(len(parts) - 1, 0, -1):
            total = total + self.guide.factor(layer, self.estimates[layer - 1], parts[layer]).log_prob(parts[layer - 1])
        return total
