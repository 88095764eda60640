"""The commands of the experiments, end to end in a subprocess: ``vae compare-em``, ``vae compress`` and
``vae decompress``, ``vae rd-compare``, ``vae diagnose``; each writes its files and figures into its folder."""
import json
import math
import re

import arviz as az
import numpy as np
import pytest

from pyro_vae.inference import RunConfig
from pyro_vae.inference.runs.folder import train_run

from tests.helpers import run_vae


def test_compare_em_command_writes_json_and_plot(tmp_path):
    out = tmp_path / "cmp"
    result = run_vae("compare-em", "--quick", "--settings", "ppca", "mixture", "--out", out)
    assert result.returncode == 0, result.stderr
    figures = json.loads((out / "comparison.json").read_text())
    assert set(figures["ppca"]["methods"]) == {"exact EM", "SVI linear VAE"}
    em = figures["ppca"]["methods"]["exact EM"]
    assert all(b["train_log_px"] >= a["train_log_px"] - 1e-6 for a, b in zip(em, em[1:]))
    assert em[-1]["train_log_px"] <= figures["ppca"]["closed_form"]["train_log_px"] + 1e-6
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = run_vae("compare-em", "--quick", "--settings", "ppca", "--out", out)
    assert again.returncode == 2 and "already holds a comparison" in again.stderr
    assert math.isfinite(figures["mixture"]["methods"]["exact EM"][-1]["test_log_px"])


def test_compress_and_decompress_commands(rd_autoencoder, tmp_path):
    packed, png = tmp_path / "codes.bin", tmp_path / "back.png"
    done = run_vae("compress", rd_autoencoder.path, "--test-images", 50, "-o", packed)
    assert done.returncode == 0, done.stderr
    assert run_vae("decompress", rd_autoencoder.path, packed, "-o", png).returncode == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    broken = tmp_path / "broken.bin"
    broken.write_bytes(b"nonsense")
    bad = run_vae("decompress", rd_autoencoder.path, broken, "-o", tmp_path / "x.png")
    assert bad.returncode == 2 and "not a file written by 'vae compress'" in bad.stderr and not (tmp_path / "x.png").exists()


def test_rd_compare_puts_both_families_in_one_plane(tmp_path):
    out = tmp_path / "cmp"
    done = run_vae("rd-compare", "--betas", "1,100", "--epochs", "1", "--latent-dim", "6", "--hidden-dim", "48",
                   "--out", out)
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "rd_compare.json").read_text())
    vae, rdae = results["families"]["vae"], results["families"]["rd_autoencoder"]
    assert [r["beta"] for r in vae] == [1.0, 100.0] == [r["beta"] for r in rdae]
    assert vae[0]["rate_bits"] > vae[1]["rate_bits"]  # a higher price on rate buys less of it
    assert all(r["squared_error"] > 0 and r["rate_bits"] >= 0 for r in vae + rdae)
    for name in ("rd_compare.png", "l2_vs_l1.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_vae_diagnose_writes_the_run_folder_files(tmp_path):
    run = tmp_path / "run"
    train_run(RunConfig.from_dict({"model": {"latent_dim": 3, "hidden_dim": 32}, "guide": {"hidden_dim": 32},
                                   "train": {"epochs": 1}}), run, quiet=True)
    done = run_vae("diagnose", run, "--points", "3", "--chains", "2", "--draws", "60", "--warmup", "60",
                   "--guide-samples", "200")
    assert done.returncode == 0, done.stderr
    assert re.search(r"\n\s+train\s+test\n\s+PSIS k-hat, median\s+[\d.]+\s+[\d.]+\n", done.stdout), done.stdout
    out = run / "diagnostics"
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["splits"]) == {"train", "test"} and summary["collapse"]["latent_dim"] == 3
    for split in ("train", "test"):
        part = summary["splits"][split]
        assert len(part["points"]) == 3 and len(part["per_point"]["khat"]) == 3
        assert summary["comparison"]["amortization_gap"][split] == pytest.approx(
            np.mean(part["per_point"]["amortization_gap"]))
        assert json.loads((out / split / "summary.json").read_text())["points"] == part["points"]
        guide = az.from_netcdf(out / split / "guide.nc")
        assert guide.posterior["z"].shape == (4, 50, 3, 3)  # 200 independent draws as 4 chains
        assert list(guide.posterior["point"].values) == part["points"]
        reference = az.from_netcdf(out / split / "reference.nc")
        assert set(reference.groups()) >= {"posterior", "sample_stats", "log_likelihood", "posterior_predictive",
                                           "observed_data"}
        assert reference.posterior_predictive["x"].shape == (2, 25, 3, 784) and "energy" in reference.sample_stats
        assert list(reference.log_likelihood["point"].values) == part["points"]
        for name in ("pair.png", "khat.png", "ppc_arviz.png"):
            assert (out / split / name).read_bytes()[:4] == b"\x89PNG"
    for name in ("splits.png", "energy.png", "kl_per_dim.png", "ppc.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
