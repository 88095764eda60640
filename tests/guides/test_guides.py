"""Guides: the full-covariance posterior's L and density, the flow's change of variables, the Delta guide's MAP
objective."""
import math

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO

from pyro_vae.guides import GUIDES, FullCovarianceGuide, IAFGuide
from pyro_vae.inference import GuideConfig, ModelConfig, build_guide, build_model
from pyro_vae.models import MLPEncoder

EVENT = torch.Size([1, 28, 28])


def test_full_covariance_guide_builds_L_from_its_encoder_and_scores_z_under_L_Lt(embedded):
    """Seed 001's full-covariance posterior: loc is the encoder's first Z outputs, L is lower triangular with the
    next Z(Z+1)/2 outputs row by row below and on the diagonal (softplus + min_scale there), and log q(z | x) is
    the Gaussian density with covariance L L^T, computed by hand with a triangular solve."""
    pyro.set_rng_seed(0)
    z_dim = 3
    guide = FullCovarianceGuide(MLPEncoder(EVENT, FullCovarianceGuide.encoder_outputs(z_dim), 32), z_dim)
    x = embedded.test_x[:2]
    with torch.no_grad():
        out = guide.encoder(x).double()
        loc, tril = guide.posterior_params(x)
        q = guide.posterior(x)
        z = q.sample((5,))  # (5, 2, Z)
        log_q = q.log_prob(z).double()
    by_hand = torch.zeros(2, z_dim, z_dim, dtype=torch.float64)
    k = z_dim
    for i in range(z_dim):
        for j in range(i + 1):
            raw = out[:, k]
            by_hand[:, i, j] = torch.nn.functional.softplus(raw) + guide.min_scale if i == j else raw
            k += 1
    assert k == out.shape[-1]
    torch.testing.assert_close(loc.double(), out[:, :z_dim])
    torch.testing.assert_close(tril.double(), by_hand)
    assert (by_hand.tril(-1).abs() > 0).any()  # off-diagonal terms are used
    white = torch.linalg.solve_triangular(by_hand, (z.double() - out[:, :z_dim]).unsqueeze(-1), upper=False)
    expected = (-0.5 * white.squeeze(-1).pow(2).sum(-1) - by_hand.diagonal(dim1=-2, dim2=-1).log().sum(-1)
                - 0.5 * z_dim * math.log(2 * math.pi))
    torch.testing.assert_close(log_q, expected, rtol=1e-5, atol=1e-5)


def test_iaf_log_prob_is_the_change_of_variables_formula(embedded):
    pyro.set_rng_seed(0)
    z_dim = 3
    guide = IAFGuide(MLPEncoder(EVENT, IAFGuide.encoder_outputs(z_dim), 32), z_dim, num_flows=2)
    x = embedded.test_x[:1]
    q = guide.posterior(x)
    z0 = q.base_dist.sample()[0].detach()

    def push(z):  # (Z,) -> (Z,) through every flow layer
        z = z.unsqueeze(0)
        for t in q.transforms:
            z = t(z)
        return z.squeeze(0)

    z = push(z0)
    jac = torch.autograd.functional.jacobian(push, z0)  # (Z, Z), by automatic differentiation
    base = q.base_dist.log_prob(z0).item()
    expected = base - torch.linalg.slogdet(jac).logabsdet.item()
    assert q.log_prob(z.unsqueeze(0)).item() == pytest.approx(expected, abs=1e-4)
    assert not torch.allclose(z, z0)  # the flow is not the identity


def test_delta_guide_turns_the_elbo_into_map_of_the_code(embedded):
    pyro.set_rng_seed(0)
    model = build_model(ModelConfig(latent_dim=4, hidden_dim=32), EVENT)
    guide = build_guide(GuideConfig(guide="delta", hidden_dim=32), 4, EVENT)
    x = torch.bernoulli(embedded.test_x[:10])
    with torch.no_grad():
        z = guide.encoder(x)
        log_px = -torch.nn.functional.binary_cross_entropy_with_logits(model.decoder(z), x, reduction="sum")
        log_pz = (-0.5 * z ** 2 - 0.5 * math.log(2 * math.pi)).sum()
    assert Trace_ELBO().loss(model, guide, x) == pytest.approx(-(log_px + log_pz).item(), rel=1e-5)


def test_every_guide_is_registered():
    assert set(GUIDES.names()) == {"diagonal_normal", "full_covariance", "iaf", "delta", "uniform_noise"}
