"""The top-down (ladder) guide: with linear-Gaussian layers built so that the exact posterior lies in its
family, every importance weight is p(x) (closed form); SVI trains it; the run command takes it."""
import math
import re

import pyro
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO
from torch import nn

from pyro_vae.guides.ladder import LadderGuide
from pyro_vae.inference import RunConfig
from pyro_vae.inference.cli.main import main
from pyro_vae.inference.errors import UserError
from pyro_vae.inference.evaluate.elbo import evaluate_elbo
from pyro_vae.inference.evaluate.marginal_likelihood import importance_log_likelihood
from pyro_vae.inference.runs.build import build_model_and_guide
from pyro_vae.models import StandardNormalPrior
from pyro_vae.models.hierarchical import HierarchicalVAEModel
from pyro_vae.models.likelihoods import FixedScaleGaussianLikelihood

import pyro.distributions as dist

F64 = torch.float64


class _DiagonalLink(nn.Module):
    """z -> N(A z + b, diag(s^2)): the model's linear p(z_1 | z_2), with the ``params`` a ladder reads."""

    def __init__(self, a, b, s):
        super().__init__()
        self.a, self.b, self.s = a, b, s

    def params(self, h):
        return h @ self.a.T + self.b, self.s.expand(h.shape[:-1] + self.s.shape)

    def forward(self, h):
        return dist.Normal(*self.params(h)).to_event(1)


class _AffineStep(nn.Module):
    """d -> (d, W d + c, s): the data's estimate of one layer, affine in x."""

    def __init__(self, w, c, s):
        super().__init__()
        self.w, self.c, self.s = w, c, s

    def forward(self, d):
        return d, d @ self.w.T + self.c, self.s.expand(d.shape[:-1] + self.s.shape)


def _orthonormal(rows, cols, g):
    return torch.linalg.qr(torch.randn(rows, cols, generator=g, dtype=F64))[0]


def _exact_ladder():
    """z2 ~ N(0, I_2), z1 | z2 ~ N(A z2 + b, diag s1^2), x | z1 ~ N(C z1 + d, s0^2 I_5) with C = Q diag(c)
    (orthogonal columns) and A = M^(-1/2) Q2 diag(a), M = diag(c^2 / (c^2 s1^2 + s0^2)): then p(z1 | z2, x)
    is the precision-weighted combination of p(z1 | z2) with N(diag(1/c) Q^T (x - d), s0^2 / c^2), and
    p(z2 | x) is a diagonal Gaussian, so a ladder guide holds the exact posterior."""
    g = torch.Generator().manual_seed(0)
    q, q2 = _orthonormal(5, 3, g), _orthonormal(3, 2, g)
    c, a = torch.tensor([1.5, 0.7, 1.1], dtype=F64), torch.tensor([1.2, 0.5], dtype=F64)
    s1, s0 = torch.tensor([0.5, 0.8, 0.3], dtype=F64), 0.6
    b, d = torch.randn(3, generator=g, dtype=F64), torch.randn(5, generator=g, dtype=F64)
    big_c = q * c
    m = c ** 2 / (c ** 2 * s1 ** 2 + s0 ** 2)
    big_a = (q2 * a) / m.sqrt()[:, None]
    decoder = nn.Linear(3, 5).double()
    with torch.no_grad():
        decoder.weight.copy_(big_c)
        decoder.bias.copy_(d)
    model = HierarchicalVAEModel(StandardNormalPrior(2).double(), [_DiagonalLink(big_a, b, s1)], decoder,
                                 FixedScaleGaussianLikelihood(torch.Size([5]), s0), (3, 2))
    cov_x = big_c @ torch.diag(s1 ** 2) @ big_c.T + s0 ** 2 * torch.eye(5, dtype=F64)  # x given z2
    ca = big_c @ big_a
    precision2 = torch.eye(2, dtype=F64) + ca.T @ torch.linalg.solve(cov_x, ca)
    assert torch.allclose(precision2, torch.diag(1 + a ** 2), atol=1e-10)  # diagonal, as constructed
    w2 = torch.linalg.solve(precision2, ca.T @ torch.linalg.inv(cov_x))  # E[z2 | x] = w2 (x - C b - d)
    steps = [_AffineStep(q.T / c[:, None], -(q.T @ d) / c, s0 / c),
             _AffineStep(w2, -w2 @ (big_c @ b + d), (1 + a ** 2).rsqrt())]
    guide = LadderGuide(steps, model, torch.Size([5]))
    marginal = dist.MultivariateNormal(big_c @ b + d, big_c @ (big_a @ big_a.T + torch.diag(s1 ** 2)) @ big_c.T
                                       + s0 ** 2 * torch.eye(5, dtype=F64))
    return model, guide, marginal


def test_the_ladder_holds_the_exact_posterior_so_every_importance_weight_is_p_x():
    model, guide, marginal = _exact_ladder()
    torch.manual_seed(0)
    x = marginal.sample(torch.Size([30]))
    _, est, _ = importance_log_likelihood(model, guide, x, 4, per_point=True)
    torch.testing.assert_close(est, marginal.log_prob(x), rtol=0, atol=1e-9)
    q = guide.joint_posterior(x)  # the same, drawn outside Pyro: log q(z | x) + log p(x) = log p(x, z)
    z = q.sample(torch.Size([3]))
    torch.testing.assert_close(q.log_prob(z) + marginal.log_prob(x), model.log_joint(x, z), rtol=0, atol=1e-9)
    assert set(n for n, _ in guide.named_parameters()).isdisjoint(n for n, _ in model.named_parameters())


def test_a_wrong_ladder_is_caught_by_the_same_check():
    """Shift the top estimate by 0.3: the weights vary, and the estimates leave the closed form."""
    model, guide, marginal = _exact_ladder()
    guide.steps[1].c = guide.steps[1].c + 0.3
    torch.manual_seed(0)
    x = marginal.sample(torch.Size([30]))
    report, est, se = importance_log_likelihood(model, guide, x, 4, per_point=True)
    assert (se > 1e-2).all() and (est - marginal.log_prob(x)).abs().max() > 0.05


def _ladder_config(**model):
    return RunConfig.from_dict({"model": {"hierarchy": [12], "latent_dim": 4, "num_hidden_layers": 2,
                                          "activation": "tanh", **model},
                                "guide": {"num_hidden_layers": 2, "activation": "tanh", "hierarchy_guide": "ladder"},
                                "train": {"epochs": 1, "compile": "off"}})


def test_svi_raises_the_test_elbo_of_a_ladder_vae(embedded):
    cfg = _ladder_config()
    pyro.set_rng_seed(0)
    model, guide = build_model_and_guide(cfg.model, cfg.guide, torch.Size([1, 28, 28]))
    assert isinstance(guide, LadderGuide)
    x, test = embedded.train_x.round(), embedded.test_x.round()
    before = evaluate_elbo(model, guide, test, seed=0).elbo
    pyro.clear_param_store()
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 3e-3}), Trace_ELBO())
    shared = model.conditionals[0].net[0].weight.detach().clone()
    for step in range(300):
        idx = torch.randint(0, x.shape[0], (64,))
        svi.step(x[idx], num_data=x.shape[0], subsample=idx)
    after = evaluate_elbo(model, guide, test, seed=0).elbo
    assert after > before + 200 and math.isfinite(after)
    assert not torch.equal(shared, model.conditionals[0].net[0].weight)  # the shared path trains


def test_the_ladder_trains_from_the_command_line_with_the_vamp_prior_at_the_top(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--hierarchy", "12", "--latent-dim", "4", "--num-hidden-layers", "2", "--activation",
                 "tanh", "--hierarchy-guide", "ladder", "--prior", "vamp", "--prior-components", "5", "--epochs", "1",
                 "--out", str(out), "--no-tensorboard", "--compile", "off"]) == 0
    assert main(["evaluate", str(out), "--iw-samples", "20"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"by layer: z1 \d+ of 12, z2 \d+ of 4", text), text


def test_a_ladder_without_a_hierarchy_is_refused_in_one_line():
    with pytest.raises(UserError, match=r"--hierarchy-guide ladder is the guide of a hierarchical VAE; add "
                                        r"--hierarchy UNITS"):
        RunConfig.from_dict({"guide": {"hierarchy_guide": "ladder"}}).validate()
