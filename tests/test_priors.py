"""Each prior is a normalized density whose samples follow it (quadrature in 2-D)."""
import pyro
import pytest
import torch

from guides import DiagonalNormalGuide
from models import PRIORS, MLPEncoder
from inference.runs.build import construct

EVENT = torch.Size([1, 2, 2])
GRID = torch.linspace(-9, 9, 601, dtype=torch.float64)
CELL = (GRID[1] - GRID[0]).item() ** 2


def _prior(name):
    pyro.set_rng_seed(0)
    prior = construct(PRIORS.get(name), 2, num_components=3, num_flows=2, event_shape=EVENT)  # each its own
    if name == "vamp":
        prior.attach_guide(DiagonalNormalGuide(MLPEncoder(EVENT, 4, hidden_dim=8), 2))
    with torch.no_grad():  # move the learned parameters away from their initial values
        for p in prior.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return prior


PROPER = [n for n in PRIORS.names() if getattr(PRIORS.get(n), "can_sample", True)]


@pytest.mark.parametrize("name", PROPER)
def test_density_integrates_to_one_and_samples_match_its_moments(name):
    prior = _prior(name)
    zz = torch.stack(torch.meshgrid(GRID, GRID, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        density = prior(torch.Size([zz.shape[0]])).log_prob(zz.float()).double().exp()
        mass = density.sum().item() * CELL
        mean = (density[:, None] * zz).sum(0) * CELL
        second = (density[:, None, None] * zz[:, :, None] * zz[:, None, :]).sum(0) * CELL
        cov = second - mean[:, None] * mean[None, :]
        torch.manual_seed(1)
        samples = prior(torch.Size([40_000])).sample().double()
    assert mass == pytest.approx(1.0, abs=2e-3)
    n = samples.shape[0]
    sd = cov.diagonal().sqrt()
    # sample mean within 4 standard errors; sample covariance within 5% of the quadrature's
    assert ((samples.mean(0) - mean).abs() < 4 * sd / n ** 0.5).all()
    torch.testing.assert_close(torch.cov(samples.T), cov, rtol=0.05, atol=0.05 * sd.max().item() ** 2)


def test_vamp_prior_needs_its_guide():
    prior = PRIORS.get("vamp")(2, event_shape=EVENT)
    with pytest.raises(RuntimeError, match="attach_guide"):
        prior(torch.Size([3]))


def test_standard_normal_has_no_parameters():
    assert list(PRIORS.get("normal")(4).parameters()) == []


def test_flat_prior_scores_zero_everywhere_and_has_no_samples():
    prior = PRIORS.get("flat")(3)
    z = torch.randn(5, 3) * 100
    assert torch.equal(prior(torch.Size([5])).log_prob(z), torch.zeros(5))
    assert prior.can_sample is False and "flat" not in PROPER


def test_a_misspelled_option_is_an_error_not_silently_ignored():
    with pytest.raises(TypeError, match="num_component"):
        PRIORS.get("mog")(2, num_component=3)
    with pytest.raises(TypeError, match="min_scal"):
        DiagonalNormalGuide(MLPEncoder(EVENT, 4), 2, min_scal=1e-3)
