"""Compressed files that detect damage: every single-bit flip, truncation, random file, random mutation and
file from another run is refused with its own one-line reason, never decoded into different images; the
undamaged file still round-trips exactly."""
import io

import numpy as np
import pytest
import torch

from pyro_vae.inference import RunConfig
from pyro_vae.inference.coding.run_coding import decompress
from pyro_vae.inference.coding import container
from pyro_vae.inference.coding.bits_back import BitsBackCoder, encode_lossless
from pyro_vae.inference.coding.entropy_coding import encode_codes
from pyro_vae.inference.errors import UserError
from pyro_vae.inference.runs.folder import train_run
from pyro_vae.inference.runs.run import load_run

from pyro_vae.inference.cli.main import main

from tests.helpers import refuse

IMAGES = 6


def _run(tmp_path_factory, name, seed, **model):
    out = tmp_path_factory.mktemp(name) / "run"
    cfg = RunConfig.from_dict({"model": {"latent_dim": 4, "hidden_dim": 32, **model.get("model", {})},
                               "guide": {"hidden_dim": 32, **model.get("guide", {})},
                               "data": model.get("data", {}),
                               "train": {"epochs": 1, "seed": seed, "compile": "off"}})
    train_run(cfg, out, quiet=True, plots=False, tensorboard=False)
    return load_run(out)


@pytest.fixture(scope="module")
def vae(tmp_path_factory):
    return _run(tmp_path_factory, "vae", 0)


@pytest.fixture(scope="module")
def other_vae(tmp_path_factory):
    return _run(tmp_path_factory, "other", 1)


@pytest.fixture(scope="module")
def lossless(vae):
    payload, _ = encode_lossless(BitsBackCoder(vae.model, vae.guide), vae.data.test_x[:IMAGES])
    return container.pack(container.LOSSLESS, vae.fingerprint(), payload)


def _outcome(run, tmp_path, data: bytes, fingerprint: bytes):
    path = tmp_path / "file.bin"
    path.write_bytes(bytes(data))
    try:
        kind, decoded = decompress(run, path, fingerprint)
    except UserError as err:
        assert "\n" not in str(err)
        return str(err)
    return decoded


def test_the_undamaged_file_round_trips_exactly(vae, lossless, tmp_path):
    decoded = _outcome(vae, tmp_path, lossless, vae.fingerprint())
    assert torch.equal(decoded, vae.data.test_x[:IMAGES])


def test_every_single_bit_flip_is_refused_as_damage(vae, lossless, tmp_path):
    fingerprint = vae.fingerprint()
    for bit in range(8 * len(lossless)):
        data = bytearray(lossless)
        data[bit // 8] ^= 1 << (bit % 8)
        outcome = _outcome(vae, tmp_path, data, fingerprint)
        assert isinstance(outcome, str) and " is damaged: " in outcome, (bit, outcome)


def test_every_truncation_is_refused_as_truncated(vae, lossless, tmp_path):
    fingerprint = vae.fingerprint()
    for length in range(len(lossless)):
        outcome = _outcome(vae, tmp_path, lossless[:length], fingerprint)
        assert isinstance(outcome, str) and " is truncated: " in outcome, (length, outcome)


def test_random_files_are_refused_as_not_ours(vae, tmp_path):
    rng = np.random.default_rng(0)
    fingerprint = vae.fingerprint()
    for _ in range(100):
        data = rng.integers(0, 256, int(rng.integers(8, 3000)), dtype=np.uint8).tobytes()
        assert "is not a file written by 'vae compress'" in _outcome(vae, tmp_path, data, fingerprint)


def test_random_mutations_are_refused_never_decoded(vae, lossless, tmp_path):
    """Spans overwritten, bytes inserted or deleted, bytes appended: refused as damaged or truncated."""
    rng = np.random.default_rng(1)
    fingerprint = vae.fingerprint()
    for case in range(200):
        data = bytearray(lossless)
        at, span = int(rng.integers(0, len(data))), int(rng.integers(1, 16))
        how = case % 4
        if how == 0:
            data[at:at + span] = rng.integers(0, 256, len(data[at:at + span]), dtype=np.uint8).tobytes()
        elif how == 1:
            data[at:at] = rng.integers(0, 256, span, dtype=np.uint8).tobytes()
        elif how == 2:
            del data[at:at + span]
        else:
            data += rng.integers(0, 256, span, dtype=np.uint8).tobytes()
        if bytes(data) == lossless:
            continue
        outcome = _outcome(vae, tmp_path, data, fingerprint)
        assert isinstance(outcome, str) and (" is damaged: " in outcome or " is truncated: " in outcome or (
            at < 4 and "is not a file written by 'vae compress'" in outcome)), (case, outcome)  # bytes before the magic


def test_a_file_from_another_run_is_refused_by_fingerprint(vae, other_vae, lossless, tmp_path):
    outcome = _outcome(other_vae, tmp_path, lossless, other_vae.fingerprint())
    assert f"was compressed with another run, or another epoch of this one (run fingerprint " \
           f"{vae.fingerprint().hex()[:12]}, this run's is {other_vae.fingerprint().hex()[:12]})" in outcome


def test_the_bits_back_decoder_detects_damage_the_checksum_was_rebuilt_around(vae, lossless, tmp_path):
    """A payload changed and then given a valid header and checksum: the decoder does not end on the stack's
    initial words, and says so."""
    packed = container.read(io.BytesIO(lossless), "f", vae.fingerprint())
    payload = bytearray(packed.payload)
    payload[-5] ^= 0x10  # a bit of the stack's last-but-one word
    forged = container.pack(container.LOSSLESS, vae.fingerprint(), bytes(payload))
    outcome = _outcome(vae, tmp_path, forged, vae.fingerprint())
    assert isinstance(outcome, str) and " is damaged: " in outcome and "initial words" in outcome


def test_a_file_of_the_earlier_unchecked_format_still_decodes(vae, lossless, tmp_path, capsys):
    packed = container.read(io.BytesIO(lossless), "f", vae.fingerprint())
    decoded = _outcome(vae, tmp_path, b"VAEL" + packed.payload, vae.fingerprint())
    assert torch.equal(decoded, vae.data.test_x[:IMAGES])
    assert "unchecked format of earlier versions" in capsys.readouterr().err
    damaged = b"VAEL" + packed.payload[: len(packed.payload) // 2]  # cut: refused, and only the refusal is said
    outcome = _outcome(vae, tmp_path, damaged, vae.fingerprint())
    assert isinstance(outcome, str) and " is damaged: " in outcome and capsys.readouterr().err == ""


def test_the_rate_distortion_codes_file_detects_damage_too(tmp_path_factory, tmp_path):
    run = _run(tmp_path_factory, "rdae", 0, model={"prior": "entropy_model", "likelihood": "gaussian",
                                                 "likelihood_scale": 0.1},
               guide={"guide": "uniform_noise"}, data={"binarize": "none"})
    codes = run.guide.quantized_code(run.data.test_x[:20])
    fingerprint = run.fingerprint()
    good = container.pack(container.CODES, fingerprint, encode_codes(run.model.prior, codes))
    assert torch.equal(_outcome(run, tmp_path, good, fingerprint), codes)
    for bit in range(0, 8 * len(good), 3):
        data = bytearray(good)
        data[bit // 8] ^= 1 << (bit % 8)
        assert " is damaged: " in _outcome(run, tmp_path, data, fingerprint)
    for length in range(0, len(good), 2):
        assert " is truncated: " in _outcome(run, tmp_path, good[:length], fingerprint)


def test_vae_decompress_refuses_in_one_line_and_writes_nothing(vae, other_vae, tmp_path, capsys):
    good = tmp_path / "codes.bb"
    assert main(["compress", str(vae.path), "--lossless", "--test-images", str(IMAGES), "-o", str(good)]) == 0
    back = tmp_path / "back.png"
    assert main(["decompress", str(vae.path), str(good), "-o", str(back)]) == 0 and back.is_file()
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 4
    flipped = tmp_path / "flipped.bb"
    flipped.write_bytes(data)
    cut = tmp_path / "cut.bb"
    cut.write_bytes(good.read_bytes()[:100])
    for file, run, reason in ((flipped, vae, "is damaged: its checksum does not match"),
                              (cut, vae, "is truncated"), (good, other_vae, "was compressed with another run")):
        out = tmp_path / "refused.png"
        assert reason in refuse(capsys, ["decompress", run.path, file, "-o", out])
        assert not out.exists()


@pytest.mark.parametrize("length", [2 ** 40, 2 ** 64 - 1])
def test_a_header_that_promises_more_than_the_file_holds_is_truncated_before_any_read(vae, tmp_path, length):
    head = container.HEADER.pack(container.MAGIC, container.VERSION, container.LOSSLESS, vae.fingerprint(), length)
    head += container.CRC.pack(container._crc(head))
    outcome = _outcome(vae, tmp_path, head + b"\0" * 100, vae.fingerprint())
    assert outcome == f"{tmp_path / 'file.bin'} is truncated: it holds {len(head) + 100} bytes, its header promises " \
                      f"{container.HEADER_SIZE + length + 4}"
