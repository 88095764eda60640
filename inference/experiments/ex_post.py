"""Ex-post density estimation of the codes: samples for an autoencoder without a prior, better ones for a VAE.

Fit p̂(z) = sum_k pi_k N(z; m_k, S_k) to the training codes (the Delta guide's points, a Gaussian guide's
means) by exact EM, then decode z ~ p̂ (Ghosh et al. 2020, "From variational to deterministic autoencoders",
section 4; pythae's GaussianMixtureSampler). EM here is seed 003's alternating maximization of the ELBO with
the E-step exact: r_nk = p(k | z_n); M-step pi_k = N_k / N, m_k = sum_n r_nk z_n / N_k,
S_k = sum_n r_nk (z_n - m_k)(z_n - m_k)^T / N_k + eps I (eps keeps S_k invertible, as scikit-learn's reg_covar).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import pyro.distributions as dist
import torch

from pyro_vae.inference.data.sources import is_source
from pyro_vae.inference.evaluate.autoencoders import codes, mmd_squared
from pyro_vae.inference.errors import UserError
from pyro_vae.inference.memory import require_memory
from pyro_vae.inference.report.images import prior_draws

@dataclass
class GaussianMixture:
    """A fitted full-covariance Gaussian mixture over codes; ``history`` is the mean log-likelihood per EM step."""

    weights: torch.Tensor  # (K,)
    locs: torch.Tensor  # (K, Z)
    covariances: torch.Tensor  # (K, Z, Z)
    history: list[float]

    def distribution(self) -> dist.TorchDistribution:
        components = dist.MultivariateNormal(self.locs, covariance_matrix=self.covariances)
        return dist.MixtureSameFamily(dist.Categorical(probs=self.weights), components)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return self.distribution().log_prob(z.to(self.locs))

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.distribution().sample(torch.Size([n]))


def _component_log_densities(z, locs, covariances) -> torch.Tensor:
    """log N(z_n; m_k, S_k) as an (N, K) matrix, by one Cholesky factor per component."""
    tril = torch.linalg.cholesky(covariances)  # (K, Z, Z)
    diff = (z[None] - locs[:, None]).transpose(1, 2)  # (K, Z, N)
    solved = torch.linalg.solve_triangular(tril, diff, upper=False)
    half_log_det = tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # (K,)
    return (-0.5 * solved.pow(2).sum(1) - half_log_det[:, None] - 0.5 * z.shape[1] * math.log(2 * math.pi)).T


def kmeans_plus_plus(z: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k starting means drawn from the points, each with probability proportional to its squared distance
    to the nearest mean already drawn (Arthur & Vassilvitskii 2007)."""
    chosen = [int(torch.randint(z.shape[0], (1,), generator=generator))]
    nearest = (z - z[chosen[0]]).pow(2).sum(-1)
    for _ in range(1, k):
        odds = nearest if nearest.sum() > 0 else torch.ones_like(nearest)  # every point on a mean already
        chosen.append(int(torch.multinomial(odds / odds.sum(), 1, generator=generator)))
        nearest = torch.minimum(nearest, (z - z[chosen[-1]]).pow(2).sum(-1))
    return z[chosen].clone()


def fit_gaussian_mixture(z: torch.Tensor, components: int, iterations: int = 300, tol: float = 1e-7,
                         reg: float = 1e-6, seed: int = 0, init: Optional[tuple] = None) -> GaussianMixture:
    """EM for a K-component full-covariance mixture on the rows of ``z`` (float64 throughout); stops when the
    mean log-likelihood gains less than ``tol`` nats. ``init`` = (weights, locs, covariances) to start from
    given parameters; otherwise k-means++ means, the data covariance and equal weights."""
    z = z.detach().double().cpu()
    n, dim = z.shape
    if not 1 <= components <= n:
        raise UserError(f"cannot fit a mixture of {components} components to {n} codes; "
                        f"choose between 1 and {n} components (vae sample --ex-post K)")
    # the E-step's (N, K) densities, responsibilities and their products with z; K covariances and factors
    require_memory(8 * (4 * n * components + n * components * dim + 3 * components * dim * dim),
                   f"a mixture of {components} components on {n} codes of {dim} dimensions",
                   "ask for fewer components (--ex-post K)")
    eye = torch.eye(dim, dtype=z.dtype)
    if init is None:
        locs = kmeans_plus_plus(z, components, torch.Generator().manual_seed(seed))
        spread = (torch.cov(z.T).reshape(dim, dim) if n > 1 else torch.zeros(dim, dim, dtype=z.dtype)) + reg * eye
        weights, covariances = torch.full((components,), 1.0 / components, dtype=z.dtype), spread.expand(components, dim, dim)
    else:
        weights, locs, covariances = (torch.as_tensor(t, dtype=z.dtype).clone() for t in init)
    history: list[float] = []
    for _ in range(iterations):
        joint = _component_log_densities(z, locs, covariances) + weights.log()  # (N, K)
        log_px = torch.logsumexp(joint, dim=1)
        history.append(float(log_px.mean()))
        r = (joint - log_px[:, None]).exp()  # responsibilities, the exact E-step
        counts = r.sum(0).clamp(min=10 * torch.finfo(z.dtype).tiny)
        weights = counts / n
        locs = (r.T @ z) / counts[:, None]
        diff = z[None] - locs[:, None]  # (K, N, Z)
        covariances = torch.einsum("nk,kni,knj->kij", r, diff, diff) / counts[:, None, None] + reg * eye
        if len(history) > 1 and history[-1] - history[-2] < tol:
            break
    joint = _component_log_densities(z, locs, covariances) + weights.log()
    history.append(float(torch.logsumexp(joint, dim=1).mean()))
    return GaussianMixture(weights, locs, covariances, history)


def _codes(run, x, y) -> torch.Tensor:
    """``codes`` of a set on the run's device: at once in memory, a chunk at a time for a set read from disk."""
    y = None if y is None else y.to(run.device)
    if not is_source(x):
        return codes(run.guide, x.to(run.device), y)
    size = run.config.train.eval_batch_size
    return torch.cat([codes(run.guide, chunk.to(run.device), None if y is None else y[i * size:(i + 1) * size])
                      for i, chunk in enumerate(x.split(size))])


def training_codes(run) -> torch.Tensor:
    """The code of every training image (the labels too for a conditional guide)."""
    return _codes(run, run.data.train_x, run.labels("train"))


@torch.no_grad()
def ex_post_report(run, mixture: GaussianMixture, train_codes: torch.Tensor, num_draws: int = 1000,
                   seed: int = 0) -> dict:
    """How well the fitted mixture describes the *test* codes, against one Gaussian fitted to the same codes
    and the model's prior (where it has one): mean log density (nats per code) and the unbiased MMD² between
    ``num_draws`` draws and the test codes (``pyro_vae.inference.evaluate.autoencoders.mmd_squared``)."""
    test = _codes(run, run.data.test_x, run.labels()).double().cpu()
    single = fit_gaussian_mixture(train_codes, 1)
    report = {"components": int(mixture.weights.numel()), "em_iterations": len(mixture.history) - 1,
              "train_log_density": mixture.history[-1]}
    for name, density in (("mixture", mixture), ("gaussian", single)):
        report[f"test_log_density_{name}"] = float(density.log_prob(test).mean())
        report[f"mmd2_{name}"] = mmd_squared(density.sample(num_draws, seed), test)
    if run.can_sample:
        report["test_log_density_prior"] = float(run.model.prior().log_prob(test.to(run.device, torch.float32)).mean())
        report["mmd2_prior"] = mmd_squared(prior_draws(run.model, num_draws, seed).cpu(), test)
    return report


def report_table(report: dict, prior_name: str) -> str:
    """``ex_post_report`` as the lines ``vae sample --ex-post`` prints: one row per density."""
    rows = ["                      log density (nats)    MMD² of 1000 draws"]
    for name, what in (("mixture", f"mixture (K = {report['components']})"), ("gaussian", "one Gaussian"),
                       ("prior", f"the {prior_name} prior")):
        if f"mmd2_{name}" in report:
            rows.append(f"  {what:<20} {report[f'test_log_density_{name}']:12.2f} {report[f'mmd2_{name}']:18.4f}")
    return "\n".join(rows)


__all__ = ["GaussianMixture", "fit_gaussian_mixture", "kmeans_plus_plus", "training_codes", "ex_post_report", "report_table"]
