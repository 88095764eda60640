"""Fitting, evaluating and inspecting VAE programs: config, data, SVI trainer,
evaluation, checkpoints, run folders and the ``vae`` command line."""
from .build import build_guide, build_model, build_model_and_guide, resolve_device
from .checkpoint import load_state, save_state
from .config import DataConfig, GuideConfig, ModelConfig, ObjectiveConfig, RunConfig, TrainConfig
from .data import ImageData, MinibatchStream, load_dataset, prepare
from .errors import UserError
from .collapse import CollapseReport, posterior_collapse
from .evaluation import ELBOReport, elbo_terms, evaluate_elbo
from .marginal_likelihood import LogLikelihoodReport, importance_log_likelihood
from .objectives import OBJECTIVES, BetaELBO, IWAEBound, build_objective
from .runs import Run, load_run, setup, train, train_run
from .trainer import SVITrainer

__all__ = [
    "build_guide", "build_model", "build_model_and_guide", "resolve_device", "load_state", "save_state", "DataConfig",
    "GuideConfig", "ModelConfig", "RunConfig", "TrainConfig", "ImageData", "MinibatchStream",
    "load_dataset", "prepare", "UserError", "ELBOReport", "elbo_terms", "evaluate_elbo", "Run",
    "load_run", "setup", "train", "train_run", "SVITrainer", "ObjectiveConfig", "CollapseReport",
    "posterior_collapse", "LogLikelihoodReport", "importance_log_likelihood", "OBJECTIVES", "BetaELBO",
    "IWAEBound", "build_objective",
]
