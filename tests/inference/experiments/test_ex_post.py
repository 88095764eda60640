"""Ex-post density estimation (inference/experiments/ex_post.py): EM for a full-covariance Gaussian mixture against the
closed form (one component) and against scikit-learn's EM from the same start."""
import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture as SklearnMixture

from pyro_vae.inference import UserError
from pyro_vae.inference.experiments.ex_post import fit_gaussian_mixture


def _clusters(seed=0, n=(300, 200, 100)):
    """Three correlated Gaussian clusters in 3-D, unequal sizes."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0, 0.0, 0.0], [4.0, 1.0, -2.0], [-3.0, 4.0, 1.0]])
    parts = []
    for centre, count in zip(centres, n):
        mix = torch.randn(3, 3, generator=g) * 0.6 + torch.eye(3)
        parts.append(torch.randn(count, 3, generator=g, dtype=torch.float64) @ mix.double() + centre.double())
    return torch.cat(parts)


def test_one_component_is_the_closed_form_maximum_likelihood_gaussian():
    z = _clusters()
    fit = fit_gaussian_mixture(z, 1, reg=0.0)
    mean = z.mean(0)
    cov = (z - mean).T @ (z - mean) / z.shape[0]  # the MLE (biased) covariance
    torch.testing.assert_close(fit.locs[0], mean)
    torch.testing.assert_close(fit.covariances[0], cov)
    assert fit.weights.tolist() == [1.0]
    exact = torch.distributions.MultivariateNormal(mean, cov).log_prob(z).mean()
    assert fit.history[-1] == pytest.approx(float(exact), abs=1e-10)
    assert float(fit.log_prob(z).mean()) == pytest.approx(float(exact), abs=1e-10)


def test_em_matches_scikit_learn_from_the_same_start_and_never_lowers_the_likelihood():
    z = _clusters(seed=1)
    start = fit_gaussian_mixture(z, 3, iterations=0, seed=4)  # k-means++ means, data covariance, equal weights
    ours = fit_gaussian_mixture(z, 3, iterations=500, tol=1e-12, seed=4)
    theirs = SklearnMixture(3, covariance_type="full", reg_covar=1e-6, tol=1e-12, max_iter=500,
                            weights_init=start.weights.numpy(), means_init=start.locs.numpy(),
                            precisions_init=np.linalg.inv(start.covariances.numpy())).fit(z.numpy())
    assert theirs.converged_
    assert ours.history[-1] == pytest.approx(float(theirs.score(z.numpy())), abs=1e-8)
    np.testing.assert_allclose(ours.weights.numpy(), theirs.weights_, atol=1e-6)
    np.testing.assert_allclose(ours.locs.numpy(), theirs.means_, atol=1e-5)
    np.testing.assert_allclose(ours.covariances.numpy(), theirs.covariances_, atol=1e-5)
    np.testing.assert_allclose(sorted(ours.weights.numpy() * z.shape[0]), [100, 200, 300], atol=10)  # the clusters
    assert (np.diff(ours.history) > -1e-10).all()  # EM: each step keeps or raises the likelihood


def test_draws_follow_the_fitted_mixture_and_bad_sizes_are_refused():
    z = _clusters(seed=2)
    fit = fit_gaussian_mixture(z, 3, seed=0)
    draws = fit.sample(20000, seed=1)
    assert draws.shape == (20000, 3) and torch.equal(draws, fit.sample(20000, seed=1))
    mean = (fit.weights[:, None] * fit.locs).sum(0)  # the mixture's mean, closed form
    assert torch.allclose(draws.mean(0), mean, atol=0.06)
    for bad in (0, z.shape[0] + 1):
        with pytest.raises(UserError, match=f"cannot fit a mixture of {bad} components"):
            fit_gaussian_mixture(z, bad)


def test_degenerate_codes_still_fit():
    """Collapsed codes (one point, all points equal, a dimension always 0) fit with finite likelihoods:
    the covariance floor ``reg`` keeps every component a proper Gaussian."""
    assert fit_gaussian_mixture(torch.full((1, 3), 2.0), 1).locs.tolist() == [[2.0, 2.0, 2.0]]
    same = fit_gaussian_mixture(torch.ones(50, 3), 3)
    z = torch.randn(200, 3, generator=torch.Generator().manual_seed(0))
    z[:, 2] = 0.0
    flat = fit_gaussian_mixture(z, 4)
    assert np.isfinite(same.history[-1]) and np.isfinite(flat.history[-1])
    assert torch.allclose(flat.covariances[:, 2, 2], torch.full((4,), 1e-6, dtype=torch.float64))
