"""The hierarchical VAE as a Pyro program: Trace_ELBO is the hand-written sum of its log-densities, the
importance-sampled log p(x) matches the closed form of a linear-Gaussian hierarchy, and SVI trains it."""
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO
from torch import nn

from guides.hierarchical import BottomUpGuide
from models import BernoulliLikelihood, StandardNormalPrior
from models.hierarchical import GaussianLayer, HierarchicalVAEModel
from models.likelihoods import FixedScaleGaussianLikelihood
from models.networks import MLPDecoder

from inference.evaluate.elbo import evaluate_elbo
from inference.evaluate.marginal_likelihood import importance_log_likelihood

EVENT = torch.Size([1, 28, 28])


def _burda_like(latent=(6, 3), hidden=(32, 16)):
    """Burda et al.'s two-layer shape, scaled down: x -[h1, h1]- z1 -[h2, h2]- z2, tanh."""
    pyro.set_rng_seed(0)
    model = HierarchicalVAEModel(StandardNormalPrior(latent[1]), [GaussianLayer(latent[1], latent[0], hidden[1])],
                                 MLPDecoder(latent[0], EVENT, hidden[0], 2, "tanh"), BernoulliLikelihood(EVENT),
                                 latent)
    guide = BottomUpGuide([GaussianLayer(784, latent[0], hidden[0]), GaussianLayer(latent[0], latent[1], hidden[1])],
                          EVENT)
    return model, guide


def test_trace_elbo_is_the_hand_written_sum_of_log_densities(embedded):
    model, guide = _burda_like()
    x = embedded.train_x[:7].round()
    pyro.set_rng_seed(3)
    loss = Trace_ELBO().loss(model, guide, x)
    pyro.set_rng_seed(3)  # the same draws: Trace_ELBO runs the guide first, on the same stream
    trace = poutine.trace(guide).get_trace(x)
    z1, z2 = trace.nodes["z1"]["value"], trace.nodes["z2"]["value"]
    q1, q2 = guide.layers[0].params(x.flatten(1)), guide.layers[1].params(z1)
    p1 = model.conditionals[0].params(z2)
    logits = model.decoder(z1).flatten(1)
    by_hand = (torch.distributions.Normal(0.0, 1.0).log_prob(z2).sum(-1)
               + torch.distributions.Normal(*p1).log_prob(z1).sum(-1)
               + (x.flatten(1) * logits - nn.functional.softplus(logits)).sum(-1)
               - torch.distributions.Normal(*q1).log_prob(z1).sum(-1)
               - torch.distributions.Normal(*q2).log_prob(z2).sum(-1)).sum()
    assert loss == pytest.approx(-by_hand.item(), rel=1e-5)


class _LinearGaussian(nn.Module):
    """h -> N(h W^T + c, cov): a linear link with a fixed covariance (full or diagonal)."""

    def __init__(self, weight, bias, cov):
        super().__init__()
        self.weight, self.bias, self.tril = weight, bias, torch.linalg.cholesky(cov)

    def forward(self, h):
        return dist.MultivariateNormal(h @ self.weight.T + self.bias, scale_tril=self.tril)


def _linear_hierarchy(perturb: float):
    """z2 ~ N(0, I_2), z1 | z2 ~ N(A z2 + b, S1), x | z1 ~ N(C z1 + d, s0^2 I_5), and its exact posterior
    q(z1 | x) q(z2 | z1) = p(z1 | x) p(z2 | z1), with means shifted and covariances widened by ``perturb``."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 2, generator=g, dtype=torch.float64), torch.randn(3, generator=g, dtype=torch.float64)
    c, d = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    s1, s0 = torch.diag(torch.tensor([0.5, 0.8, 0.3], dtype=torch.float64) ** 2), 0.6
    decoder = nn.Linear(3, 5).double()
    with torch.no_grad():
        decoder.weight.copy_(c)
        decoder.bias.copy_(d)
    prior = StandardNormalPrior(2).double()
    model = HierarchicalVAEModel(prior, [_LinearGaussian(a, b, s1)], decoder,
                                 FixedScaleGaussianLikelihood(torch.Size([5]), s0), (3, 2))
    p1 = a @ a.T + s1  # z1's marginal covariance (mean b)
    post1 = torch.linalg.inv(torch.linalg.inv(p1) + c.T @ c / s0 ** 2)
    w1 = post1 @ c.T / s0 ** 2  # E[z1 | x] = post1 (p1^-1 b + C^T (x - d) / s0^2) = w1 x + c1
    c1 = post1 @ (torch.linalg.inv(p1) @ b - c.T @ d / s0 ** 2)
    post2 = torch.linalg.inv(torch.eye(2, dtype=torch.float64) + a.T @ torch.linalg.inv(s1) @ a)
    w2 = post2 @ a.T @ torch.linalg.inv(s1)  # E[z2 | z1] = w2 (z1 - b)
    widen = 1.0 + perturb
    guide = BottomUpGuide([_LinearGaussian(w1, c1 + perturb, widen * post1),
                           _LinearGaussian(w2, -w2 @ b + perturb, widen * post2)], torch.Size([5]))
    marginal = dist.MultivariateNormal(c @ b + d, c @ p1 @ c.T + s0 ** 2 * torch.eye(5, dtype=torch.float64))
    return model, guide, marginal


def test_importance_sampling_matches_the_exact_marginal_of_a_linear_gaussian_hierarchy():
    exact_model, exact_guide, marginal = _linear_hierarchy(perturb=0.0)
    torch.manual_seed(0)
    x = marginal.sample(torch.Size([40]))
    exact = marginal.log_prob(x)
    report, est, se = importance_log_likelihood(exact_model, exact_guide, x, 4, per_point=True)
    assert torch.allclose(est, exact, atol=1e-9)  # the exact posterior: every weight is p(x)
    model, guide, _ = _linear_hierarchy(perturb=0.1)  # means shifted by 0.1, covariances 10 % wider
    report, est, se = importance_log_likelihood(model, guide, x, 5000, per_point=True, seed=1)
    assert (se > 1e-3).all()  # the weights vary now
    assert ((est - exact) / se).abs().max() < 4  # each point within 4 of its Monte Carlo standard errors
    assert abs(report.log_likelihood - exact.mean().item()) < 4 * report.standard_error + 1e-3


def test_svi_raises_the_test_elbo_of_a_two_layer_vae(embedded):
    model, guide = _burda_like()
    x, test = embedded.train_x.round(), embedded.test_x.round()
    before = evaluate_elbo(model, guide, test, seed=0).elbo
    pyro.clear_param_store()
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 3e-3}), Trace_ELBO())
    pyro.set_rng_seed(0)
    for step in range(300):
        idx = torch.randint(0, x.shape[0], (64,))
        svi.step(x[idx], num_data=x.shape[0], subsample=idx)
    after = evaluate_elbo(model, guide, test, seed=0).elbo
    assert after > before + 200 and math.isfinite(after)  # from about -545 nats
