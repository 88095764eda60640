"""A trained run's test figures in one call (``vae evaluate``): the ELBO and its terms, active units, and
optionally the importance-sampled log p(x) (Burda et al. 2015), with what ``evaluation.json`` records."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from pyro_vae.inference.errors import UserError
from pyro_vae.inference.evaluate.collapse import CollapseReport, posterior_collapse
from pyro_vae.inference.evaluate.elbo import ELBOReport, evaluate_elbo
from pyro_vae.inference.evaluate.marginal_likelihood import LogLikelihoodReport, importance_log_likelihood

MAX_IW_SAMPLES = 1_000_000  # 10^6 draws per point already take hours on a CPU


@dataclass
class RunEvaluation:
    """The figures of ``evaluate_run``; ``standardized_log_det``: sum log scale of a ``--standardize`` run
    (its densities are of the standardized values: subtract it from log p(x) for the data's own units)."""

    data_name: str
    seed: int
    elbo: ELBOReport
    collapse: CollapseReport
    log_likelihood: Optional[LogLikelihoodReport] = None
    standardized_log_det: Optional[float] = None

    def figures(self) -> dict:
        """What ``evaluation.json`` holds."""
        out = {"seed": self.seed, "elbo": self.elbo.to_dict(), "collapse": self.collapse.to_dict()}
        if self.log_likelihood is not None:
            out["log_likelihood"] = self.log_likelihood.to_dict()
        if self.standardized_log_det is not None:
            out["standardized_log_det_scale"] = self.standardized_log_det
        return out

    def rows(self) -> list[tuple[str, float, float]]:
        """(what, nats, bits per dimension) of -ELBO, D, R and -log p(x)."""
        r = self.elbo
        rows = [("-ELBO = D + R", -r.elbo, r.bits_per_dim(-r.elbo)),
                ("distortion D", r.distortion, r.bits_per_dim(r.distortion)),
                ("rate R", r.rate, r.bits_per_dim(r.rate))]
        if self.log_likelihood is not None:
            ll = self.log_likelihood
            rows.append((f"-log p(x), k={ll.num_samples}", -ll.log_likelihood, ll.bits_per_dim))
        return rows


def evaluate_run(run, batch_size: int = 1000, iw_samples: int = 0, limit: Optional[int] = None,
                 seed: int = 0) -> RunEvaluation:
    """Score ``run``'s test set (its first ``limit`` points) in passes of ``batch_size``, on a stream seeded by
    ``seed``: the ELBO, D and R, the active units and, with ``iw_samples`` = k > 0, log p(x) from k importance
    samples per point."""
    if batch_size <= 0 or iw_samples < 0:
        raise UserError("--batch-size must be positive and --iw-samples >= 0")
    if iw_samples > MAX_IW_SAMPLES:  # streamed in bounded memory, but days of decoding: refused at once
        raise UserError(f"--iw-samples {iw_samples:,} is more than {MAX_IW_SAMPLES:,} importance samples per "
                        f"point; its standard error falls as 1/sqrt(k), and k = 5000 (the IWAE paper's) is usually "
                        f"within 0.01 nats: ask for fewer")
    x, y = run.data.test_x, run.labels()
    if limit:
        x, y = x[:limit], None if y is None else y[:limit]
    with run.params():
        report = evaluate_elbo(run.model, run.guide, x, batch_size, seed, y=y)
        collapse = posterior_collapse(run.model, run.guide, x, batch_size, seed, y=y)
        ll = importance_log_likelihood(run.model, run.guide, x, iw_samples, seed=seed, y=y) if iw_samples else None
    log_det = float(run.data.scale.double().log().sum()) if run.data.scale is not None else None
    return RunEvaluation(run.data.name, seed, report, collapse, ll, log_det)
