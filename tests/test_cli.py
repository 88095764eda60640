"""The ``vae`` command end to end, and its answer to bad input."""
import gzip
import json
import shutil

import pytest
import torch
from PIL import Image

from pyro_vae.inference import RunConfig
from pyro_vae.inference.cli.main import main
from pyro_vae.inference.data.datasets import IDX_FILES

from .conftest import run_vae
from .test_data import write_folder

RUN_FILES = ["config.json", "versions.json", "weights.pt", "metrics.jsonl", "samples.png", "reconstructions.png"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    proc = run_vae("train", "--epochs", 2, "--latent-dim", 8, "--hidden-dim", 64, "--seed", 3, "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "test ELBO" in proc.stdout
    return out


def test_train_writes_every_run_file(trained_run):
    for name in RUN_FILES:
        assert (trained_run / name).is_file(), name
    cfg = RunConfig.load(trained_run / "config.json")
    assert (cfg.model.latent_dim, cfg.model.hidden_dim, cfg.train.seed) == (8, 64, 3)
    lines = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    assert {"train_objective", "test_elbo", "test_distortion", "test_rate", "seconds"} <= set(lines[0])
    versions = json.loads((trained_run / "versions.json").read_text())
    assert versions["torch"] == torch.__version__ and versions["seed"] == 3
    assert Image.open(trained_run / "samples.png").size == (242, 242)  # 8 x 8 grid of 28 px + 2 px padding
    assert Image.open(trained_run / "reconstructions.png").size == (242, 242)  # 4 pairs of rows of 8


def test_evaluate_reproduces_the_training_figure(trained_run, tmp_path):
    out = tmp_path / "eval.json"
    proc = run_vae("evaluate", trained_run, "--seed", 3, "--json", out, "--iw-samples", 100)
    assert proc.returncode == 0, proc.stderr
    assert "rate R" in proc.stdout and "-log p(x), k=100" in proc.stdout and "active units" in proc.stdout
    figures = json.loads(out.read_text())
    last = json.loads((trained_run / "metrics.jsonl").read_text().splitlines()[-1])
    assert figures["elbo"]["elbo"] == pytest.approx(last["test_elbo"], abs=1e-9)
    # log p(x) >= ELBO: the k = 100 estimate sits above the bound it improves on
    assert figures["log_likelihood"]["log_likelihood"] > figures["elbo"]["elbo"]
    assert len(figures["collapse"]["kl_per_dim"]) == 8
    assert sum(figures["collapse"]["kl_per_dim"]) == pytest.approx(figures["elbo"]["rate"], rel=1e-6)


def test_sample_writes_a_grid(trained_run, tmp_path):
    proc = run_vae("sample", trained_run, "-n", 16, "--out", tmp_path / "s.png")
    assert proc.returncode == 0, proc.stderr
    assert Image.open(tmp_path / "s.png").size == (122, 122)


def _refused(capsys, *argv):
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vae: error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def _truncated_folder(tmp_path):
    tmp_path.mkdir()
    write_folder(tmp_path)
    path = tmp_path / IDX_FILES["test_images"]
    raw = gzip.open(path).read()
    with gzip.open(path, "wb") as fh:
        fh.write(raw[:1000])
    return tmp_path


@pytest.mark.parametrize("args, message", [
    (["--dataset", "cifar"], "unknown dataset 'cifar'"),
    (["--dataset", "idx", "--data-dir", "/nonexistent/folder"], "does not exist"),
    (["--epochs", "0"], "train.epochs must be positive"),
    (["--batch-size", "-5"], "train.batch_size must be positive"),
    (["--latent-dim", "0"], "model.latent_dim must be positive"),
    (["--epochs", "two"], "invalid int value"),
    (["--likelihood", "cauchy"], "unknown likelihood"),
    (["--beta", "4"], "objective.beta does not apply to objective 'elbo'"),
    (["--objective", "iwae", "--num-particles", "0"], "num_particles must be positive"),
])
def test_bad_train_input_is_one_line_exit_2_and_writes_nothing(capsys, tmp_path, args, message):
    out = tmp_path / "out"
    assert message in _refused(capsys, "train", "--out", out, *args)
    assert not out.exists()


def test_truncated_idx_file(capsys, tmp_path):
    folder = _truncated_folder(tmp_path / "data")
    assert "truncated" in _refused(capsys, "train", "--dataset", "idx", "--data-dir", folder, "--out", tmp_path / "o")


def test_existing_run_is_not_touched_without_force(capsys, trained_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    before = {str(p.relative_to(copy)): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    assert "already holds a run" in _refused(capsys, "train", "--out", copy, "--epochs", "1")
    assert {str(p.relative_to(copy)): p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu(capsys, tmp_path):
    assert "no CUDA GPU" in _refused(capsys, "train", "--device", "cuda", "--out", tmp_path / "o")


def test_train_with_another_objective_records_it(tmp_path):
    out = tmp_path / "iwae"
    proc = run_vae("train", "--epochs", 1, "--objective", "iwae", "--num-particles", 3, "--dreg", "--latent-dim", 4,
                   "--hidden-dim", 32, "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    cfg = RunConfig.load(out / "config.json")
    assert (cfg.objective.name, cfg.objective.num_particles, cfg.objective.dreg) == ("iwae", 3, True)


def test_missing_run_and_bad_sample_count(capsys, tmp_path, trained_run):
    assert "does not exist" in _refused(capsys, "evaluate", tmp_path / "nothing")
    assert "-n must be positive" in _refused(capsys, "sample", trained_run, "-n", "0")


def test_real_exit_status_and_no_traceback_in_a_subprocess(tmp_path):
    proc = run_vae("train", "--dataset", "nope", "--out", tmp_path / "o")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "Traceback" not in proc.stderr
