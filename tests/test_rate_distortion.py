"""Rate-distortion: the entropy model, real entropy coding, bits-back, and the beta sweep."""

import math

import numpy as np
import pyro
import pytest
import torch

from pyro_vae.inference import RunConfig
from pyro_vae.inference.coding.bits_back import BitsBackCoder, decode_lossless, encode_lossless
from pyro_vae.inference.coding.entropy_coding import HEADER, decode_codes, encode_codes, model_rate_bits
from pyro_vae.inference.evaluate.elbo import evaluate_elbo
from pyro_vae.inference.experiments.rd_sweep import run_sweep
from pyro_vae.inference.runs.folder import load_run, train_run
from pyro_vae.models.entropy_model import FactorizedEntropyPrior, NoisyLogisticMixture

from .conftest import run_vae


def _perturbed_prior(latent=6, seed=0):
    pyro.set_rng_seed(seed)
    prior = FactorizedEntropyPrior(latent, num_components=3)
    with torch.no_grad():
        for p in prior.parameters():
            p.add_(torch.randn_like(p))
    return prior


def test_integer_masses_sum_to_one_for_every_dimension():
    masses = _perturbed_prior().integer_masses(-200, 200)
    assert torch.allclose(masses.sum(-1), torch.ones(6, dtype=torch.float64), atol=1e-6)


def test_noisy_density_is_the_cdf_difference_and_integrates_to_one():
    prior = _perturbed_prior(latent=2)
    u = prior.univariate()
    v = torch.linspace(-80, 80, 160001)  # logistic tails: wide enough that what lies outside is < 1e-6
    naive = (u.cdf(v.unsqueeze(-1) + 0.5) - u.cdf(v.unsqueeze(-1) - 0.5))  # (n, 2), direct subtraction
    stable = u.log_prob(v.unsqueeze(-1)).exp()
    assert torch.allclose(stable, naive, atol=1e-6)
    area = torch.trapezoid(stable.double(), v.double(), dim=0)
    assert torch.allclose(area, torch.ones(2, dtype=torch.float64), atol=1e-4)


def test_samples_follow_the_noisy_density():
    prior = _perturbed_prior(latent=1)
    torch.manual_seed(0)
    z = prior.univariate().sample(torch.Size([200_000]))[:, 0]
    edges = torch.tensor([-2.0, -0.5, 0.0, 0.7, 2.5])
    d = NoisyLogisticMixture(*(t[0:1] for t in (prior.logits, prior.locs, torch.nn.functional.softplus(
        prior.raw_scales) + 1e-2)))
    grid = torch.linspace(-2, 2.5, 9001)
    dens = d.log_prob(grid.unsqueeze(-1)).exp()[:, 0]
    for lo, hi in zip(edges, edges[1:]):
        inside = (grid >= lo) & (grid <= hi)
        expected = torch.trapezoid(dens[inside], grid[inside]).item()
        got = ((z >= lo) & (z < hi)).float().mean().item()
        assert got == pytest.approx(expected, abs=4 * math.sqrt(expected / 200_000) + 1e-3)


@pytest.fixture(scope="module")
def rd_autoencoder(tmp_path_factory):
    out = tmp_path_factory.mktemp("rdae") / "run"
    cfg = RunConfig.from_dict({"data": {"binarize": "none"},
                               "model": {"latent_dim": 8, "hidden_dim": 64, "prior": "entropy_model",
                                         "likelihood": "gaussian", "likelihood_scale": 0.1},
                               "guide": {"guide": "uniform_noise", "hidden_dim": 64}, "train": {"epochs": 3}})
    train_run(cfg, out, quiet=True)
    return load_run(out)


def test_entropy_coding_round_trips_and_costs_what_the_model_promises(rd_autoencoder):
    run = rd_autoencoder
    codes = run.guide.quantized_code(run.data.test_x[:300])
    data = encode_codes(run.model.prior, codes)
    assert torch.equal(decode_codes(run.model.prior, data), codes)
    promised = float(model_rate_bits(run.model.prior, codes).sum())
    coded = 8 * (len(data) - HEADER.size)
    assert coded <= 1.01 * promised + 64  # within 1 % + the final ANS state (two 32-bit words)
    assert coded >= 0.99 * promised  # the model cannot be beaten by more than its rounding


def test_codes_that_are_all_equal_round_trip(rd_autoencoder):
    """One symbol in use (a barely trained run codes everything as 0): still coded, and decoded exactly."""
    codes = torch.zeros(5, rd_autoencoder.model.prior.latent_dim, dtype=torch.long)
    data = encode_codes(rd_autoencoder.model.prior, codes)
    assert torch.equal(decode_codes(rd_autoencoder.model.prior, data), codes)
    promised = float(model_rate_bits(rd_autoencoder.model.prior, codes).sum())
    assert 8 * (len(data) - HEADER.size) <= 1.01 * promised + 64


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


@pytest.fixture(scope="module")
def small_vae(tmp_path_factory):
    out = tmp_path_factory.mktemp("vae") / "run"
    cfg = RunConfig.from_dict({"model": {"latent_dim": 8, "hidden_dim": 128}, "guide": {"hidden_dim": 128},
                               "train": {"epochs": 4}})
    train_run(cfg, out, quiet=True)
    return load_run(out)


def test_bits_back_is_lossless_and_costs_the_negative_elbo(small_vae):
    run = small_vae
    x = run.data.test_x[:250]
    coder = BitsBackCoder(run.model, run.guide)
    data, result = encode_lossless(coder, x)
    assert torch.equal(decode_lossless(run.model, run.guide, data), x)  # bit for bit
    seed_words = np.random.default_rng(0).integers(1, 2 ** 32, 32, dtype=np.uint32)
    coder.decode(result.words, len(x), x.shape[1:])
    assert np.array_equal(coder.remaining, seed_words)  # the borrowed bits are all given back
    neg_elbo_bits = np.mean([-evaluate_elbo(run.model, run.guide, x, 250, seed).elbo for seed in range(20)]) / math.log(2)
    assert result.net_bits_per_image == pytest.approx(neg_elbo_bits, rel=0.01)


def test_rd_sweep_trades_rate_for_distortion_and_resumes(tmp_path):
    base = RunConfig.from_dict({"model": {"latent_dim": 8, "hidden_dim": 64}, "guide": {"hidden_dim": 64},
                                "train": {"epochs": 2}})
    rows = run_sweep(base, [0.3, 1.0, 4.0], tmp_path / "sweep", log=lambda line: None)
    rates, distortions = [r["rate"] for r in rows], [r["distortion"] for r in rows]
    assert rates[0] > rates[1] > rates[2] and distortions[0] < distortions[1] < distortions[2]
    weights = tmp_path / "sweep" / "beta-1" / "weights.pt"
    stamp = weights.stat().st_mtime_ns
    said = []
    again = run_sweep(base, [0.3, 1.0, 4.0], tmp_path / "sweep", log=said.append)
    assert weights.stat().st_mtime_ns == stamp and all("reusing" in line for line in said)
    assert [r["rate"] for r in again] == rates
    assert (tmp_path / "sweep" / "rd.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "sweep" / "rd.csv").read_text().splitlines()[0].startswith("beta,rate,distortion")


def test_rd_compare_puts_both_families_in_one_plane(tmp_path):
    out = tmp_path / "cmp"
    done = run_vae("rd-compare", "--betas", "1,100", "--epochs", "1", "--latent-dim", "6", "--hidden-dim", "48",
                   "--out", out)
    assert done.returncode == 0, done.stderr
    import json

    results = json.loads((out / "rd_compare.json").read_text())
    vae, rdae = results["families"]["vae"], results["families"]["rd_autoencoder"]
    assert [r["beta"] for r in vae] == [1.0, 100.0] == [r["beta"] for r in rdae]
    assert vae[0]["rate_bits"] > vae[1]["rate_bits"]  # a higher price on rate buys less of it
    assert all(r["squared_error"] > 0 and r["rate_bits"] >= 0 for r in vae + rdae)
    for name in ("rd_compare.png", "l2_vs_l1.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
