"""Deprecated (0.4.0), kept for one minor version: the training state is ``pyro_vae.inference.training.state``;
the checkpoint file is written and read by ``pyro_vae.inference.runs.writer``; its name is in
``pyro_vae.inference.runs.layout``."""
from __future__ import annotations

from pyro_vae.inference.deprecation import moved_names

_MOVED = {"TrainingState": "pyro_vae.inference.training.state", "TrainingInterrupted": "pyro_vae.inference.training.state",
          "rng_state": "pyro_vae.inference.training.state", "set_rng_state": "pyro_vae.inference.training.state",
          "save_checkpoint": "pyro_vae.inference.runs.writer", "load_checkpoint": "pyro_vae.inference.runs.writer",
          "CHECKPOINT": "pyro_vae.inference.runs.layout"}


__getattr__ = moved_names(__name__, _MOVED)
