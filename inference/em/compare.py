"""``vae compare-em``: EM against SVI on one dataset and budget, written as JSON and a plot.

Three settings (seed 003: the ELBO is log p(x) - KL(p(z|x) || q(z|x)); EM closes the gap exactly
where it can, the VAE amortizes it):

- ``ppca``: grey-level images, probabilistic PCA: closed-form maximum likelihood, exact EM, SVI on the
  linear VAE; exact log p(x).
- ``mixture``: binarized images, mixture of Bernoullis: exact EM, SVI with c enumerated, SVI with an
  amortized categorical guide; exact log p(x).
- ``nonlinear``: binarized images, a decoder with Z = 3 and 100 hidden units on 1,000 training points
  (Kingma & Welling 2013, Fig. 3): Monte-Carlo EM (HMC), hard EM, wake-sleep, AEVB; log p(x) by
  Laplace-proposal importance sampling.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Optional

import pyro
import torch

from pyro_vae.models.linear_gaussian import PPCAParams, largest_principal_angle, ppca_log_likelihood, ppca_maximum_likelihood
from pyro_vae.models.mixture import BernoulliMixtureModel

from pyro_vae.inference.runs.build import build_guide, build_model
from pyro_vae.inference.config.sections import DataConfig, GuideConfig, ModelConfig
from pyro_vae.inference.data.datasets import prepare
from pyro_vae.inference.data.loaders import load_dataset
from pyro_vae.inference.errors import UserError
from pyro_vae.inference.report.images import pyplot, save_figure
from pyro_vae.inference.objectives import trace_elbo
from pyro_vae.inference.runs.files import write_json
from pyro_vae.inference.runs.writer import library_versions
from pyro_vae.inference.em import mixture, nonlinear, ppca

SETTINGS = ("ppca", "mixture", "nonlinear")


@dataclass
class EMComparisonConfig:
    """The budget of each setting; round-trips to JSON like the run configs."""

    dataset: str = "mnist-embedded"
    data_dir: Optional[str] = None
    seed: int = 0
    settings: tuple = SETTINGS
    ppca_latent_dim: int = 10
    ppca_em_iterations: int = 200
    ppca_svi_epochs: int = 20
    mixture_components: int = 10
    mixture_em_iterations: int = 30
    mixture_svi_epochs: int = 30  # as many samples seen as EM's 30 iterations
    nonlinear_train_points: int = 1000
    nonlinear_test_points: int = 500
    nonlinear_epochs: int = 20
    nonlinear_eval_every: int = 2
    nonlinear_eval_samples: int = 200

    def to_dict(self) -> dict:
        """The budget as JSON-ready values."""
        return {**asdict(self), "settings": list(self.settings)}

    @classmethod
    def from_dict(cls, raw: dict) -> "EMComparisonConfig":
        """The budget ``raw`` describes, its keys and values checked (``validate``)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise UserError(f"unknown compare-em option {unknown[0]!r}; known: {', '.join(sorted(known))}")
        cfg = cls(**{**raw, "settings": tuple(raw.get("settings", SETTINGS))})
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Refuse an unknown dataset or setting and a count that is not positive, in one line (``UserError``)."""
        DataConfig(dataset=self.dataset, data_dir=self.data_dir).validate()
        bad = [s for s in self.settings if s not in SETTINGS]
        if bad or not self.settings:
            raise UserError(f"unknown setting {bad[0] if bad else '(none)'!r}; choose from: {', '.join(SETTINGS)}")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int) and f.name != "seed" and value <= 0:
                raise UserError(f"{f.name} must be positive, got {value}")


def compare_ppca(cfg: EMComparisonConfig, x: torch.Tensor, x_test: torch.Tensor) -> dict:
    x, x_test = x.double(), x_test.double()
    q = cfg.ppca_latent_dim
    ml = ppca_maximum_likelihood(x, q)
    torch.manual_seed(cfg.seed)
    init = PPCAParams(0.1 * torch.randn(x.shape[1], q, dtype=x.dtype), x.mean(0), 1.0)
    em_params, em_history = ppca.ppca_em(x, init, cfg.ppca_em_iterations, x_test, record_every=5)
    vae, svi_history = ppca.fit_linear_vae(x.float(), q, cfg.ppca_svi_epochs, init=init, x_test=x_test.float(),
                                           seed=cfg.seed)
    return {"closed_form": {"train_log_px": float(ppca_log_likelihood(x, ml).mean()),
                            "test_log_px": float(ppca_log_likelihood(x_test, ml).mean())},
            "methods": {"exact EM": em_history, "SVI linear VAE": svi_history},
            "em_subspace_angle": largest_principal_angle(em_params.weight, ml.weight),
            "svi_subspace_angle": largest_principal_angle(vae.params().weight.double(), ml.weight)}


def compare_mixture(cfg: EMComparisonConfig, x: torch.Tensor, x_test: torch.Tensor) -> dict:
    pyro.set_rng_seed(cfg.seed)
    start = BernoulliMixtureModel(x.shape[1], cfg.mixture_components)
    histories = {"exact EM": mixture.fit_mixture_em(copy.deepcopy(start), x, cfg.mixture_em_iterations, x_test)}
    for name, amortized in (("SVI, c enumerated", False), ("SVI, amortized q(c|x)", True)):
        histories[name] = mixture.fit_mixture_svi(copy.deepcopy(start), x, cfg.mixture_svi_epochs, amortized,
                                                  batch_size=100, x_test=x_test)
    return {"methods": histories}


def compare_nonlinear(cfg: EMComparisonConfig, x: torch.Tensor, x_test: torch.Tensor) -> dict:
    x, x_test = x[: cfg.nonlinear_train_points], x_test[: cfg.nonlinear_test_points]
    event = x.shape[1:]
    pyro.set_rng_seed(cfg.seed)
    model0 = build_model(ModelConfig(latent_dim=3, hidden_dim=100, activation="tanh"), event)
    guide0 = build_guide(GuideConfig(hidden_dim=100, activation="tanh"), 3, event)
    makers = {
        "Monte-Carlo EM (HMC)": lambda m, g, s: nonlinear.mcem_epoch(m, x, s),
        "hard EM": lambda m, g, s: nonlinear.hard_em_epoch(m, x, s),
        "wake-sleep (RWS)": lambda m, g, s: nonlinear.svi_epoch(m, g, x, nonlinear.wake_sleep_loss()),
        "AEVB (VAE)": lambda m, g, s: nonlinear.svi_epoch(m, g, x, trace_elbo()),
    }
    histories = {}
    for name, make in makers.items():
        pyro.set_rng_seed(cfg.seed)
        model, guide = copy.deepcopy(model0), copy.deepcopy(guide0)
        histories[name] = nonlinear.train_by_epochs(model, make(model, guide, {}), x, cfg.nonlinear_epochs, x_test,
                                                    cfg.nonlinear_eval_every, cfg.nonlinear_eval_samples)
    return {"methods": histories, "train_points": x.shape[0], "test_points": x_test.shape[0]}


def run_comparison(cfg: EMComparisonConfig) -> dict:
    """Run each of ``cfg.settings`` (``ppca``, ``mixture``, ``nonlinear``) on its data: EM against SVI.

    Returns a JSON-ready dict: the config, and per setting the history of each method (log p(x) on the training and
    test points against the samples seen and the seconds spent).
    """
    data = load_dataset(DataConfig(dataset=cfg.dataset, data_dir=cfg.data_dir, stream="never"))  # exact EM: in memory
    grey = prepare(data, "none")
    binary = prepare(data, "static")
    results = {"config": cfg.to_dict()}
    if "ppca" in cfg.settings:
        results["ppca"] = compare_ppca(cfg, grey.train_x.flatten(1), grey.test_x.flatten(1))
    if "mixture" in cfg.settings:
        results["mixture"] = compare_mixture(cfg, binary.train_x.flatten(1), binary.test_x.flatten(1))
    if "nonlinear" in cfg.settings:
        results["nonlinear"] = compare_nonlinear(cfg, binary.train_x, binary.test_x)
    return results


def plot_comparison(results: dict, path: Path) -> None:
    plt = pyplot()
    settings = [s for s in SETTINGS if s in results]
    fig, axes = plt.subplots(len(settings), 2, figsize=(11, 3.6 * len(settings)), squeeze=False)
    for row, setting in zip(axes, settings):
        for name, history in results[setting]["methods"].items():
            for ax, key in zip(row, ("samples_seen", "seconds")):
                xs = [r[key] for r in history]
                line, = ax.plot(xs, [r["test_log_px"] for r in history], label=f"{name} (test)")
                ax.plot(xs, [r["train_log_px"] for r in history], ls="--", color=line.get_color(), alpha=0.6)
        for ax, key in zip(row, ("training samples seen", "seconds")):
            if setting == "ppca":
                ax.axhline(results["ppca"]["closed_form"]["test_log_px"], color="k", lw=0.8, label="closed form (test)")
            ax.set_xlabel(key)
            ax.set_ylabel("log p(x) per point")
            ax.set_title(f"{setting}: test (solid) and train (dashed)")
            ax.set_xscale("symlog", linthresh=1000 if key.startswith("training") else 0.1)
        row[0].legend(fontsize=7)
    save_figure(fig, path)


QUICK = {"ppca_em_iterations": 20, "ppca_svi_epochs": 5, "mixture_em_iterations": 10, "mixture_svi_epochs": 3,
         "nonlinear_train_points": 300, "nonlinear_test_points": 200, "nonlinear_epochs": 4, "nonlinear_eval_every": 2,
         "nonlinear_eval_samples": 100}


def write_comparison(cfg: EMComparisonConfig, out: Path, force: bool = False) -> dict:
    """Run the comparison and write ``out/comparison.json`` and ``out/comparison.png`` (each atomically)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"output path {out} exists and is not a folder; choose another --out")
    if (out / "comparison.json").exists() and not force:
        raise UserError(f"{out} already holds a comparison; pass --force to overwrite it or choose another --out")
    results = run_comparison(cfg)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "comparison.json", {**results, "versions": library_versions()})
    plot_comparison(results, out / "comparison.png")
    return results
