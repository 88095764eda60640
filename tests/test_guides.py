"""Guides: full-covariance samples, the flow's change of variables, the Delta guide's MAP objective."""
import math

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO

from pyro_vae.guides import GUIDES, FullCovarianceGuide, IAFGuide
from pyro_vae.inference import GuideConfig, ModelConfig, build_guide, build_model
from pyro_vae.models import MLPEncoder

EVENT = torch.Size([1, 28, 28])


def test_full_covariance_samples_have_covariance_L_Lt(embedded):
    pyro.set_rng_seed(0)
    guide = FullCovarianceGuide(MLPEncoder(EVENT, FullCovarianceGuide.encoder_outputs(3), 32), 3)
    x = embedded.test_x[:1]
    with torch.no_grad():
        loc, tril = guide.posterior_params(x)
        assert torch.equal(tril, tril.tril()) and (tril.diagonal(dim1=-2, dim2=-1) > 0).all()
        assert (tril.tril(-1).abs() > 0).any()  # off-diagonal terms are used
        z = guide.posterior(x).sample((100_000,))[:, 0]
    expected = (tril @ tril.transpose(-1, -2))[0].double()
    torch.testing.assert_close(torch.cov(z.T.double()), expected, rtol=0.03, atol=0.03 * expected.diagonal().max().item())
    torch.testing.assert_close(z.mean(0).double(), loc[0].double(), rtol=0, atol=0.02)


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
