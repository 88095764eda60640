"""Fitting, evaluating and inspecting VAE programs.

    inference/
      programs.py     how the library calls a user's Pyro program (keywords it accepts, modes)
      config/         config dataclasses (one option = one field), presets, config files
      data/           datasets and minibatch streams
      objectives/     the losses: Trace_ELBO and friends, beta, IWAE, contractive (one per file)
      training/       the loss module, engines, the one SVI step, the trainer, data-parallel, the epoch loop,
                      monitors, checkpoint state, the adversarial autoencoder's extra steps
      evaluate/       ELBO terms, importance-sampled log p(x), posterior collapse, autoencoder measures
      em/             EM against SVI (vae compare-em)
      diagnostics/    posterior diagnostics with ArviZ (vae diagnose)
      coding/         entropy coding and bits-back coding (vae compress)
      experiments/    rate-distortion sweeps and comparisons, ex-post densities
      runs/           run folders: build (names to objects), setup, load, atomic file I/O
      report/         image grids, plots, the HTML report
      cli/            the vae command line and its torchrun launcher

The names below (and ``__version__``) are imported on first use: ``import pyro_vae.inference`` loads nothing
heavy, and ``vae --help`` loads torch and Pyro but not torchvision, ArviZ, matplotlib or TensorBoard.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "pyro_vae.inference.runs.build": ["build_guide", "build_model", "build_model_and_guide", "resolve_device"],
    "pyro_vae.inference.runs.files": ["load_state", "save_state"],
    "pyro_vae.inference.config.sections": ["DataConfig", "GuideConfig", "ModelConfig", "ObjectiveConfig", "RunConfig",
                                  "TrainConfig"],
    "pyro_vae.inference.data.datasets": ["ImageData", "prepare"],
    "pyro_vae.inference.data.stream": ["MinibatchStream"],
    "pyro_vae.inference.data.given": ["from_dataset"],
    "pyro_vae.inference.data.sources": ["RowSource", "MappedArray"],
    "pyro_vae.inference.data.loaders": ["DATASETS", "DatasetLoader", "load_dataset"],
    "pyro_vae.inference.data.folders": ["load_image_folder"],
    "pyro_vae.inference.data.arrays": ["load_array"],
    "pyro_vae.inference.data.checks": ["check_fits", "standardize"],
    "pyro_vae.inference.errors": ["UserError"],
    "pyro_vae.inference.evaluate.collapse": ["CollapseReport", "posterior_collapse"],
    "pyro_vae.inference.evaluate.elbo": ["ELBOReport", "elbo_terms", "evaluate_elbo"],
    "pyro_vae.inference.evaluate.marginal_likelihood": ["LogLikelihoodReport", "importance_log_likelihood"],
    "pyro_vae.inference.objectives": ["OBJECTIVES", "BetaELBO", "IWAEBound", "ContractiveELBO", "build_objective"],
    "pyro_vae.inference.runs.folder": ["train_run", "resume_run"],
    "pyro_vae.inference.runs.writer": ["RunFolder"],
    "pyro_vae.inference.training.monitors": ["Monitor"],
    "pyro_vae.inference.training.state": ["TrainingState"],
    "pyro_vae.inference.runs.run": ["Run", "load_run", "load_run_data", "setup"],
    "pyro_vae.inference.training.loop": ["train"],
    "pyro_vae.inference.training.trainer": ["SVITrainer", "make_trainer"],
    "pyro_vae.inference.training.step": ["NumericalFault"],
    "pyro_vae.inference.training.loss": ["ProgramLoss", "new_param_state"],
    "pyro_vae.inference.training.engines": ["ENGINES"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE) + ["__version__"]


def __getattr__(name: str):
    if name == "__version__":  # the distribution's, read on first use: importing this package loads nothing heavy
        from pyro_vae.models import __version__ as value  # (the vae command's signal handlers come first)

        globals()[name] = value
        return value
    if name not in _WHERE:
        raise AttributeError(f"module 'inference' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
