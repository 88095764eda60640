"""Resuming in this process: train_run's checkpoint at an epoch end, then resume_run, ends with the parameters of
an uninterrupted run; no checkpoint, a clear error. (A run killed with SIGKILL or stopped by SIGINT and resumed
by ``vae train --resume``: tests/e2e/test_resume.py.)"""
import json

import torch

from pyro_vae.inference import RunConfig
from pyro_vae.inference.runs.folder import train_run

from tests.helpers import same_weights


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path, capsys):
    from pyro_vae.inference.cli.main import main

    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "no checkpoint.pt to resume from" in capsys.readouterr().err


def test_in_process_resume_matches(tmp_path):
    """The library path: train_run's checkpoint at an epoch end, then resume_run."""
    from pyro_vae.inference.runs.folder import resume_run

    cfg = RunConfig.from_dict({"model": {"latent_dim": 3, "hidden_dim": 32}, "guide": {"hidden_dim": 32},
                               "train": {"epochs": 2, "seed": 2}})
    train_run(cfg, tmp_path / "full", quiet=True)
    cfg.train.epochs = 1
    train_run(cfg, tmp_path / "half", quiet=True)
    # extend the finished one-epoch run to two epochs: the checkpoint holds epoch 1 complete
    config = json.loads((tmp_path / "half" / "config.json").read_text())
    config["train"]["epochs"] = 2
    (tmp_path / "half" / "config.json").write_text(json.dumps(config))
    resume_run(tmp_path / "half", quiet=True)
    a = torch.load(tmp_path / "full" / "weights.pt", weights_only=True)
    b = torch.load(tmp_path / "half" / "weights.pt", weights_only=True)
    assert same_weights(a, b)
