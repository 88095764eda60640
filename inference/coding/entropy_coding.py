"""Real entropy coding with a trained model, through ``constriction``'s ANS coder.

Lossy (the rate-distortion autoencoder): codes round(g_a(x)) coded dimension by dimension with the
entropy model's integer masses (``FactorizedEntropyPrior.integer_masses``); the file's size is
checked against the model's rate -sum log2 p~(code). File layout (little-endian):

    b"VAEZ" | uint32 version | uint32 Z | uint32 N | int32 low | int32 high | uint32 words...

Decoding rebuilds the same probability tables from the same weights, so decode(encode(codes)) is
exact. Lossless bits-back coding with the VAE lives in ``inference.coding.bits_back``.
"""
from __future__ import annotations

import struct
import sys

import numpy as np
import torch

from inference.errors import UserError

MAGIC, VERSION = b"VAEZ", 1
HEADER = struct.Struct("<4sIIIii")


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
    """The integer codes (N, Z) as bytes: a header and one ANS stream."""
    import constriction

    codes = codes.cpu().long()
    count, latent = codes.shape
    low = int(codes.min())
    high = max(int(codes.max()), low + 1)  # constriction's categorical needs two symbols (all codes equal: one)
    model, tables = _model_and_tables(prior, low, high, count)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse((codes - low).flatten().numpy().astype(np.int32), model, tables)
    words = coder.get_compressed().astype("<u4")
    return HEADER.pack(MAGIC, VERSION, latent, count, low, high) + words.tobytes()


def decode_codes(prior, data: bytes) -> torch.Tensor:
    import constriction

    if len(data) < HEADER.size or data[:4] != MAGIC:
        raise UserError("not a file written by 'vae compress' (bad magic number)")
    _, version, latent, count, low, high = HEADER.unpack_from(data)
    if version != VERSION or latent != prior.latent_dim:
        raise UserError(f"the file holds {latent}-dimensional codes (format {version}); this run's model has "
                        f"{prior.latent_dim}: decompress with the run that compressed it")
    words = np.frombuffer(data[HEADER.size:], dtype="<u4").astype(np.uint32)
    if sys.byteorder == "big":
        words = words.byteswap()
    model, tables = _model_and_tables(prior, low, high, count)
    symbols = constriction.stream.stack.AnsCoder(words).decode(model, tables)
    return torch.from_numpy(symbols.astype(np.int64)).reshape(count, latent) + low
