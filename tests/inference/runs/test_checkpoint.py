"""Checkpoints: atomic writes, weights_only loads, refusal of foreign code and mismatched shapes."""
import json
import os
import shutil

import pytest
import torch

from pyro_vae.inference import ModelConfig, UserError, build_model
from pyro_vae.inference.runs.files import atomic_write, load_module_state, load_state, save_state

from tests.helpers import DATA, RunsCode


def test_a_pickle_that_would_run_code_is_refused_and_the_code_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "weights.pt"
    with open(path, "wb") as fh:
        torch.save({"model": RunsCode(str(marker))}, fh)
    with pytest.raises(UserError, match="refusing to load"):
        load_state(path)
    assert not marker.exists()
    # The file really is dangerous: a plain unpickle runs it.
    with open(path, "rb") as fh:
        torch.load(fh, weights_only=False)
    assert marker.exists()


def test_save_and_load_round_trip(tmp_path):
    state = {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "epoch": 3}
    save_state(tmp_path / "c.pt", state)
    loaded = load_state(tmp_path / "c.pt")
    assert torch.equal(loaded["model"]["w"], state["model"]["w"]) and loaded["epoch"] == 3


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "c.pt"
    save_state(path, {"v": torch.ones(3)})
    before = path.read_bytes()

    def half_then_crash(fh):
        fh.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(path, half_then_crash)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.pt"]


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "c.pt"
    save_state(path, {"v": torch.ones(1000)})
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(UserError, match="cannot read checkpoint"):
        load_state(path)


def test_shape_mismatch_names_the_first_mismatched_parameter():
    event = torch.Size([1, 28, 28])
    small = build_model(ModelConfig(latent_dim=5, hidden_dim=32), event)
    big = build_model(ModelConfig(latent_dim=5, hidden_dim=64), event)
    with pytest.raises(UserError, match=r"'decoder\.net\.0\.weight' has shape \(32, 5\), the model expects \(64, 5\)"):
        load_module_state(big, small.state_dict(), "model")


OLD_RUN = DATA / "run_2026_11_v1"  # written by vae train before the 2026-11 redesign


def test_a_run_folder_written_before_the_redesign_loads_and_evaluates_as_it_did(tmp_path):
    from pyro_vae.inference import load_run

    run = load_run(OLD_RUN)
    recorded = json.loads((OLD_RUN / "metrics.jsonl").read_text().splitlines()[-1])["test_elbo"]
    assert run.evaluate(seed=run.config.train.seed).elbo == pytest.approx(recorded, abs=1e-3)


def test_resuming_a_run_written_before_the_redesign_is_refused_in_one_line_and_touches_nothing(tmp_path):
    from pyro_vae.inference.errors import UserError
    from pyro_vae.inference.runs.folder import resume_run

    shutil.copytree(OLD_RUN, tmp_path / "run")
    raw = (tmp_path / "run" / "config.json").read_text().replace('"epochs": 1', '"epochs": 2')
    (tmp_path / "run" / "config.json").write_text(raw)
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    with pytest.raises(UserError, match="written by an earlier version of the toolkit; its weights load"):
        resume_run(tmp_path / "run", quiet=True, plots=False, tensorboard=False)
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.name in before} == before


RUN_BEFORE_NAMESPACE = DATA / "run_2026_12_v2"  # vae train of the top-level packages


def test_a_run_folder_written_before_the_namespace_loads_evaluates_and_resumes(tmp_path):
    """Nothing stored names a module path: a run written when the packages were top-level ``inference`` and
    ``models`` loads, scores as it logged, and resumes from its checkpoint."""
    from pyro_vae.inference import load_run
    from pyro_vae.inference.runs.folder import resume_run

    run = load_run(RUN_BEFORE_NAMESPACE)
    recorded = json.loads((RUN_BEFORE_NAMESPACE / "metrics.jsonl").read_text().splitlines()[-1])["test_elbo"]
    assert run.evaluate(seed=run.config.train.seed).elbo == pytest.approx(recorded, abs=1e-3)
    shutil.copytree(RUN_BEFORE_NAMESPACE, tmp_path / "run")
    raw = (tmp_path / "run" / "config.json").read_text().replace('"epochs": 1', '"epochs": 2')
    (tmp_path / "run" / "config.json").write_text(raw)
    metrics = resume_run(tmp_path / "run", quiet=True, plots=False, tensorboard=False)
    assert [m["epoch"] for m in metrics] == [1, 2] and metrics[0]["test_elbo"] == pytest.approx(recorded, abs=1e-6)
