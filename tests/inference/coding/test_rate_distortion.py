"""Rate-distortion coding: real entropy coding of a rate-distortion autoencoder's codes, and bits-back coding of a
VAE. (The entropy model itself: tests/models/test_entropy_model.py; the beta sweep: tests/inference/experiments/
test_rd_sweep.py; the compress and rd-compare commands: tests/e2e/test_commands.py.)"""

import math

import numpy as np
import pytest
import torch

from pyro_vae.inference import RunConfig
from pyro_vae.inference.coding.bits_back import BitsBackCoder, decode_lossless, encode_lossless
from pyro_vae.inference.coding.entropy_coding import HEADER, decode_codes, encode_codes, model_rate_bits
from pyro_vae.inference.evaluate.elbo import evaluate_elbo
from pyro_vae.inference.runs.folder import train_run
from pyro_vae.inference.runs.run import load_run


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
