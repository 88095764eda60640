"""Each prior is a normalized density whose samples follow it (quadrature in 2-D)."""
import pyro
import pytest
import torch

from pyro_vae.guides import DiagonalNormalGuide
from pyro_vae.models import PRIORS, MLPEncoder
from pyro_vae.inference.config.sections import GuideConfig, ModelConfig

EVENT = torch.Size([1, 2, 2])
GRID = torch.linspace(-9, 9, 601, dtype=torch.float64)
CELL = (GRID[1] - GRID[0]).item() ** 2


def _prior(name):
    pyro.set_rng_seed(0)
    options = ModelConfig(prior=name, prior_components=3, prior_flows=2)  # each prior reads its own options
    prior = PRIORS.get(name).from_config(options, 2, EVENT)
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


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_diagonal_mixture_matches_mixture_same_family_in_value_and_gradient(dtype):
    """The matrix-product log-density equals torch's elementwise MixtureSameFamily, with scales from 0.01
    to 3 and points both at the components' means (the expansion's worst cancellation) and far away."""
    import pyro.distributions as dist
    from pyro_vae.models.diagonal_mixture import DiagonalNormalMixture
    g = torch.Generator().manual_seed(0)
    k, d = 7, 40
    logits = torch.randn(k, generator=g, dtype=dtype).requires_grad_()
    loc = (3 * torch.randn(k, d, generator=g, dtype=dtype)).requires_grad_()
    scale = torch.exp(torch.empty(k, d, dtype=dtype).uniform_(-4.6, 1.1, generator=g)).requires_grad_()
    z = torch.cat([loc.detach()[:3] + 1e-3 * torch.randn(3, d, generator=g, dtype=dtype),
                   6 * torch.randn(5, d, generator=g, dtype=dtype)]).reshape(2, 4, d)
    ours = DiagonalNormalMixture(logits, loc, scale).expand(torch.Size([4]))
    theirs = dist.MixtureSameFamily(dist.Categorical(logits=logits), dist.Normal(loc, scale).to_event(1))
    a, b = ours.log_prob(z), theirs.log_prob(z)
    assert a.shape == b.shape == (2, 4) and ours.batch_shape == (4,) and ours.event_shape == (d,)
    tol = dict(rtol=1e-10, atol=1e-9) if dtype == torch.float64 else dict(rtol=1e-5, atol=2e-3)
    torch.testing.assert_close(a, b, **tol)
    grads = [torch.autograd.grad(f.sum(), (logits, loc, scale)) for f in (a, b)]
    for ga, gb in zip(*grads):
        torch.testing.assert_close(ga, gb, rtol=1e-4 if dtype == torch.float32 else 1e-9,
                                   atol=1e-2 if dtype == torch.float32 else 1e-8)
    torch.testing.assert_close(ours.mean[0], theirs.mean)
    torch.testing.assert_close(ours.variance[0], theirs.variance)


def test_vamp_prior_of_a_full_covariance_guide_stays_a_mixture_same_family():
    import pyro.distributions as dist
    from pyro_vae.guides import GUIDES
    prior = PRIORS.get("vamp")(2, num_components=3, event_shape=EVENT)
    prior.attach_guide(GUIDES.get("full_covariance").from_config(GuideConfig(), MLPEncoder(EVENT, 5, hidden_dim=8), 2))
    assert isinstance(prior.distribution(), dist.MixtureSameFamily)
    assert type(_prior("vamp").distribution()).__name__ == "DiagonalNormalMixture"
