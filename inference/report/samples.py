"""A run's samples as a picture (``vae sample``): E[x | z] for z drawn from the prior, or from a Gaussian
mixture fitted to the training codes by EM (ex-post density estimation, Ghosh et al. 2020)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pyro_vae.inference.errors import UserError
from pyro_vae.inference.experiments.ex_post import ex_post_report, fit_gaussian_mixture, training_codes
from pyro_vae.inference.report.outputs import check_picture_count, save_decoded_codes, save_samples
from pyro_vae.inference.runs.layout import SAMPLES, SAMPLES_EX_POST


@dataclass
class Samples:
    """What ``sample_run`` wrote: ``path`` (and its CSV for arrays), ``n``; with ``ex_post``, the mixture's
    report (``ex_post_report``) and the number of training codes it was fitted to."""

    path: Path
    n: int
    image: bool
    ex_post: Optional[dict] = None
    train_codes: int = 0

    def describe(self) -> str:
        if self.image:
            return f"wrote {self.n} samples to {self.path}"
        return (f"wrote {self.n} samples to {self.path} (heat map) and {self.path.with_suffix('.csv')} (their decoded "
                f"means E[x | z], not draws of x)")


def sample_run(run, n: int = 64, seed: int = 0, label: Optional[int] = None, ex_post: int = 0,
               out: Optional[Path] = None) -> Samples:
    """Decode ``n`` codes of ``run`` into ``out`` (default ``RUN/samples.png``, ``RUN/samples_ex_post.png``):
    z ~ p(z), or with ``ex_post`` = K > 0 from a K-component mixture fitted to the training codes; ``label``:
    the class of a conditional VAE's samples (default its ``sample_label``). Everything is checked first."""
    if n <= 0:
        raise UserError(f"-n must be positive, got {n}")
    check_picture_count(n, run)
    model_cfg = run.config.model
    if label is not None and not model_cfg.conditional:
        raise UserError("--label needs a conditional VAE (trained with --conditional)")
    if label is not None and not 0 <= label < model_cfg.num_classes:
        raise UserError(f"--label must be in 0..{model_cfg.num_classes - 1}, got {label}")
    if ex_post < 0:
        raise UserError(f"--ex-post must be a number of mixture components >= 1 (0: sample the prior), got {ex_post}")
    if not ex_post and not run.can_sample:
        raise UserError(f"the {model_cfg.prior} prior of this run has no samples (an autoencoder without a prior); "
                        f"fit a density to its codes instead: --ex-post 10")
    label = label if label is not None else run.sample_label
    out = Path(out) if out else run.path / (SAMPLES_EX_POST if ex_post else SAMPLES)
    if not out.parent.is_dir():
        raise UserError(f"folder {out.parent} does not exist; create it or choose another --out")
    result = Samples(out, n, run.data.is_image)
    with run.params():
        if not ex_post:
            with run.adding_results(out):
                save_samples(run, out, n=n, seed=seed, label=label)
            return result
        codes = training_codes(run)
        mixture = fit_gaussian_mixture(codes, ex_post, seed=seed)
        result.ex_post, result.train_codes = ex_post_report(run, mixture, codes, seed=seed), codes.shape[0]
        with run.adding_results(out):
            save_decoded_codes(run, mixture.sample(n, seed), out, label=label)
    return result
