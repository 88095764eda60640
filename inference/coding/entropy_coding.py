"""Real entropy coding with a trained model, through ``constriction``'s ANS coder.

Lossy (the rate-distortion autoencoder): codes round(g_a(x)) coded dimension by dimension with the
entropy model's integer masses (``FactorizedEntropyPrior.integer_masses``); the file's size is
checked against the model's rate -sum log2 p~(code). Payload layout (little-endian; the file around it,
with its checksums and the run's fingerprint, is ``pyro_vae.inference.coding.container``):

    uint32 Z | uint32 N | int32 low | int32 high | uint32 words...

Decoding rebuilds the same probability tables from the same weights, so decode(encode(codes)) is
exact. Lossless bits-back coding with the VAE lives in ``pyro_vae.inference.coding.bits_back``.
"""
from __future__ import annotations

import struct
import sys

import numpy as np
import torch

from pyro_vae.inference.errors import UserError

HEADER = struct.Struct("<IIii")
LEGACY_VERSION = struct.Struct("<I")  # the unchecked b"VAEZ" files put a version before the header


def require_entropy_model(model, guide) -> None:
    if not hasattr(model.prior, "integer_masses") or not hasattr(guide, "quantized_code"):
        raise UserError("compression needs a rate-distortion autoencoder: train with --prior entropy_model "
                        "--guide uniform_noise")


def model_rate_bits(prior, codes: torch.Tensor) -> torch.Tensor:
    """-sum_j log2 p~_j(code_j) per image: the code length the entropy model promises."""
    with torch.no_grad():
        return -prior.univariate().log_prob(codes.double().to(prior.locs.device)).sum(-1) / np.log(2.0)


def _model_and_tables(prior, low: int, high: int, count: int):
    import constriction

    masses = prior.integer_masses(low, high).cpu().numpy()  # (Z, n), float64
    return constriction.stream.model.Categorical(perfect=False), np.tile(masses, (count, 1))


def encode_codes(prior, codes: torch.Tensor) -> bytes:
    """The integer codes (N, Z) as a payload: a header and one ANS stream."""
    import constriction

    codes = codes.cpu().long()
    count, latent = codes.shape
    low = int(codes.min())
    high = max(int(codes.max()), low + 1)  # constriction's categorical needs two symbols (all codes equal: one)
    model, tables = _model_and_tables(prior, low, high, count)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse((codes - low).flatten().numpy().astype(np.int32), model, tables)
    words = coder.get_compressed().astype("<u4")
    return HEADER.pack(latent, count, low, high) + words.tobytes()


def decode_codes(prior, payload: bytes, name="the file", legacy: bool = False) -> torch.Tensor:
    """The codes of a payload from ``encode_codes``, checked: sizes of this model, and the ANS stack empty
    at the end (``legacy``: the payload of an unchecked b"VAEZ" file, which begins with a version)."""
    import constriction

    from pyro_vae.inference.coding.container import damaged, first_line
    from pyro_vae.inference.memory import require_memory

    if legacy:
        if len(payload) < LEGACY_VERSION.size or LEGACY_VERSION.unpack_from(payload)[0] != 1:
            raise damaged(name, "its format version is not 1")
        payload = payload[LEGACY_VERSION.size:]
    if len(payload) < HEADER.size or (len(payload) - HEADER.size) % 4:
        raise damaged(name, f"its payload of {len(payload)} bytes is not a header and whole 32-bit words")
    latent, count, low, high = HEADER.unpack_from(payload)
    if latent != prior.latent_dim:
        raise UserError(f"{name} holds {latent}-dimensional codes; this run's model has {prior.latent_dim}: "
                        f"decompress it with the run that wrote it")
    if count < 1 or high <= low:
        raise damaged(name, f"it states {count} codes in [{low}, {high}]")
    require_memory(8 * (high - low + 1) * (latent + count * latent), f"the probability tables of {count} codes")
    words = np.frombuffer(payload[HEADER.size:], dtype="<u4").astype(np.uint32)
    if sys.byteorder == "big":
        words = words.byteswap()
    model, tables = _model_and_tables(prior, low, high, count)
    try:
        coder = constriction.stream.stack.AnsCoder(words)
        symbols = coder.decode(model, tables)
    except (ValueError, AssertionError) as err:
        raise damaged(name, f"the ANS decoder refused it ({first_line(err)})") from None
    if not coder.is_empty():
        raise damaged(name, "words are left on the ANS stack after the last code")
    return torch.from_numpy(symbols.astype(np.int64)).reshape(count, latent) + low
