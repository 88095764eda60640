"""Everything downstream of training works on your own data: a conv VAE on a colour image folder (conditional on
the folder's classes) and a count VAE on an array reload in a fresh process with the same test ELBO, and evaluate,
sample (grids; heat maps and CSV for arrays), diagnose, report and resume work on them."""
import csv
import json

import numpy as np
import pytest
import torch

from pyro_vae.inference.cli.main import main

from tests import own_data
from tests.helpers import run_vae

SMALL = ["--epochs", "2", "--latent-dim", "3", "--hidden-dim", "32", "--quiet", "--no-tensorboard", "--seed", "3"]


def _last(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("colour")
    folder = own_data.image_folder(root / "images", n_train=120, n_test=40)
    out = root / "run"
    assert main(["train", "--dataset", "folder", "--data-dir", str(folder), "--arch", "conv", "--channels", "8",
                 "--likelihood", "discretized_logistic_mixture", "--likelihood-components", "3", "--conditional",
                 "--num-classes", "3", *SMALL, "--epochs", "20", "--batch-size", "20", "--lr", "3e-3",
                 "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def count_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("counts")
    x, _, _ = own_data.low_rank_counts(n=300, d=12)
    np.savez(root / "counts.npz", train_x=x[:250], test_x=x[250:])
    out = root / "run"
    assert main(["train", "--dataset", "array", "--data-dir", str(root / "counts.npz"), "--likelihood",
                 "negative_binomial", *SMALL, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("which", ["colour_run", "count_run"])
def test_a_run_reloads_in_a_fresh_process_with_the_same_test_elbo(request, which, tmp_path):
    run = request.getfixturevalue(which)
    result = run_vae("evaluate", run, "--seed", "3", "--json", tmp_path / "e.json")
    assert result.returncode == 0, result.stderr
    figures = json.loads((tmp_path / "e.json").read_text())
    assert figures["elbo"]["elbo"] == pytest.approx(_last(run)["test_elbo"], rel=1e-5)


def test_colour_run_files_and_bits_per_dimension(colour_run, tmp_path):
    for name in ("samples.png", "reconstructions.png", "interpolations.png", "latent_space.png"):
        assert (colour_run / name).is_file()
    from PIL import Image

    assert Image.open(colour_run / "samples.png").mode == "RGB"
    described = json.loads((colour_run / "data.json").read_text())
    assert described["classes"] == list(own_data.CLASSES) and described["event_shape"] == [3, 16, 16]
    result = run_vae("evaluate", colour_run, "--iw-samples", "8", "--json", tmp_path / "e.json")
    assert result.returncode == 0, result.stderr
    figures = json.loads((tmp_path / "e.json").read_text())
    nll = -figures["log_likelihood"]["log_likelihood"]
    assert figures["log_likelihood"]["neg_log_likelihood_bits_per_dim"] == pytest.approx(nll / (3 * 16 * 16 * np.log(2)))
    # under 8 bits per dimension: better than coding each 8-bit level uniformly
    assert 0 < figures["log_likelihood"]["neg_log_likelihood_bits_per_dim"] < 8
    result = run_vae("sample", colour_run, "--label", "2", "-n", "9", "--out", tmp_path / "s.png")
    assert result.returncode == 0 and Image.open(tmp_path / "s.png").mode == "RGB"


def test_count_run_writes_heat_maps_and_csv_in_the_data_units(count_run, tmp_path):
    for name in ("samples.png", "samples.csv", "reconstructions.png", "reconstructions.csv", "latent_space.png"):
        assert (count_run / name).is_file(), name
    assert not (count_run / "interpolations.png").exists()  # pictures of decoded images: images only
    with open(count_run / "samples.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == [f"x{j}" for j in range(12)] and len(rows) == 65
    means = np.array(rows[1:], dtype=float)
    assert (means > 0).all()  # negative-binomial means
    with open(count_run / "reconstructions.csv") as fh:
        recon = list(csv.reader(fh))
    assert recon[0][0] == "test_row" and len(recon) == 33
    result = run_vae("sample", count_run, "-n", "10", "--out", tmp_path / "s.png")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "s.csv").read_text().count("\n") == 11


def test_standardized_samples_come_back_in_the_data_units(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(300, 2)) @ rng.normal(size=(2, 6)) * 4 + 100).astype(np.float32)
    np.save(tmp_path / "r.npy", x)
    out = tmp_path / "run"
    assert main(["train", "--dataset", "array", "--data-dir", str(tmp_path / "r.npy"), "--likelihood", "gaussian_pixel",
                 "--standardize", *SMALL, "--epochs", "5", "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["data"]["standardize"] is True
    samples = np.loadtxt(out / "samples.csv", delimiter=",", skiprows=1)
    assert abs(samples.mean() - 100) < 10  # in the data's units, not standardized ones (mean ~0)


def test_diagnose_and_report_on_an_array_run(count_run):
    result = run_vae("diagnose", count_run, "--points", "2", "--chains", "2", "--draws", "60", "--warmup", "60",
                     "--guide-samples", "50")
    assert result.returncode == 0, result.stderr
    summary = json.loads((count_run / "diagnostics" / "summary.json").read_text())
    assert summary["ppc"]["calibration"]
    result = run_vae("report", count_run)
    assert result.returncode == 0, result.stderr
    assert "samples.png" in (count_run / "report.html").read_text()


def test_an_array_run_resumes_to_the_same_weights(tmp_path):
    """Train one epoch, extend the run to two and resume it: the weights of a two-epoch run, exactly."""
    x, _, _ = own_data.low_rank_counts(n=200, d=8)
    np.save(tmp_path / "c.npy", x)
    common = ["train", "--dataset", "array", "--data-dir", str(tmp_path / "c.npy"), "--likelihood", "poisson",
              "--batch-size", "30", *SMALL, "--no-plots"]
    assert main([*common, "--out", str(tmp_path / "full")]) == 0
    assert main([*common, "--epochs", "1", "--out", str(tmp_path / "cut")]) == 0
    config = json.loads((tmp_path / "cut" / "config.json").read_text())
    config["train"]["epochs"] = 2
    (tmp_path / "cut" / "config.json").write_text(json.dumps(config))
    assert main(["train", "--resume", str(tmp_path / "cut"), "--quiet", "--no-plots"]) == 0
    a, b = (torch.load(tmp_path / name / "weights.pt", weights_only=True) for name in ("full", "cut"))
    assert all(torch.equal(a[part][k], b[part][k]) for part in ("model", "guide") for k in a[part])


@pytest.mark.slow
def test_a_colour_folder_trains_data_parallel(tmp_path):
    """--nproc 2 (two gloo processes) on a colour folder with class labels: both ranks read the folder (one
    writes the cache), the run reloads in a fresh process with its recorded test ELBO (up to Monte Carlo error:
    in training each rank drew the guide's samples for its own shard)."""
    folder = own_data.image_folder(tmp_path / "images", n_train=64, n_test=16)
    out = tmp_path / "run"
    result = run_vae("train", "--dataset", "folder", "--data-dir", folder, "--arch", "conv", "--channels", "8",
                     "--likelihood", "discretized_logistic_mixture", "--conditional", "--num-classes", "3",
                     *SMALL, "--nproc", "2", "--out", out)
    assert result.returncode == 0, result.stderr
    check = run_vae("evaluate", out, "--seed", "3", "--json", tmp_path / "e.json")
    assert check.returncode == 0, check.stderr
    assert json.loads((tmp_path / "e.json").read_text())["elbo"]["elbo"] == pytest.approx(_last(out)["test_elbo"],
                                                                                         rel=2e-4)


def test_an_array_compresses_and_decompresses_to_a_csv_in_the_data_units(tmp_path):
    rng = np.random.default_rng(2)
    np.save(tmp_path / "r.npy", (rng.normal(size=(200, 5)) * 2 + 50).astype(np.float32))
    out = tmp_path / "run"
    assert main(["train", "--dataset", "array", "--data-dir", str(tmp_path / "r.npy"), "--likelihood", "gaussian",
                 "--standardize", "--prior", "entropy_model", "--guide", "uniform_noise", *SMALL, "--no-plots",
                 "--out", str(out)]) == 0
    assert main(["compress", str(out), "--test-images", "6", "-o", str(tmp_path / "c.bin")]) == 0
    assert main(["decompress", str(out), str(tmp_path / "c.bin"), "-o", str(tmp_path / "d.png")]) == 0
    decoded = np.loadtxt(tmp_path / "d.csv", delimiter=",", skiprows=1)
    assert decoded.shape == (6, 5) and abs(decoded.mean() - 50) < 5  # standardization undone
