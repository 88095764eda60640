"""Fitting, evaluating and inspecting VAE programs: config, data, SVI trainer,
evaluation, checkpoints, run folders and the ``vae`` command line."""
from .build import build_guide, build_model, resolve_device
from .checkpoint import load_state, save_state
from .config import DataConfig, GuideConfig, ModelConfig, RunConfig, TrainConfig
from .data import ImageData, MinibatchStream, load_dataset, prepare
from .errors import UserError
from .evaluation import ELBOReport, elbo_terms, evaluate_elbo
from .runs import Run, load_run, setup, train, train_run
from .trainer import SVITrainer

__all__ = [
    "build_guide", "build_model", "resolve_device", "load_state", "save_state", "DataConfig",
    "GuideConfig", "ModelConfig", "RunConfig", "TrainConfig", "ImageData", "MinibatchStream",
    "load_dataset", "prepare", "UserError", "ELBOReport", "elbo_terms", "evaluate_elbo", "Run",
    "load_run", "setup", "train", "train_run", "SVITrainer",
]
