"""A trained run's test images to bytes and back (``vae compress``, ``vae decompress``): the codes of a
rate-distortion autoencoder by its entropy model, or the images themselves by bits-back coding, in the
checked file of ``pyro_vae.inference.coding.container``."""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from pyro_vae.inference.coding import container
from pyro_vae.inference.coding.bits_back import BitsBackCoder, decode_lossless, encode_lossless
from pyro_vae.inference.coding.entropy_coding import (decode_codes, encode_codes, model_rate_bits,
                                                      require_entropy_model)
from pyro_vae.inference.errors import UserError
from pyro_vae.inference.runs.files import atomic_write


@dataclass
class Compressed:
    """What ``compress_run`` wrote: ``size`` bytes for ``images`` images; ``detail``: the rate it promised."""

    size: int
    images: int
    detail: str

    @property
    def bits_per_image(self) -> float:
        return 8 * self.size / self.images


def compress_run(run, output: Path, test_images: int = 100, start: int = 0, lossless: bool = False) -> Compressed:
    """Code ``test_images`` test images of ``run`` from ``start`` into ``output``: their quantized codes under the
    entropy model (a rate-distortion autoencoder), or with ``lossless`` the exact images by bits-back ANS (a VAE)."""
    if test_images <= 0 or start < 0:
        raise UserError("--test-images must be positive and --start >= 0")
    x = run.data.test_x[start: start + test_images]
    if x.shape[0] == 0:
        raise UserError(f"--start {start} is past the {run.data.test_x.shape[0]} test images")
    with run.params():
        if lossless:
            payload, result = encode_lossless(BitsBackCoder(run.model, run.guide), x)
            kind = container.LOSSLESS
            promised = -run.evaluate().elbo / math.log(2)
            detail = f"net {result.net_bits_per_image:.1f} bits per image by bits-back (test -ELBO: {promised:.1f} bits)"
        else:
            require_entropy_model(run.model, run.guide)
            codes = run.guide.quantized_code(x)
            payload, kind = encode_codes(run.model.prior, codes), container.CODES
            rate = float(model_rate_bits(run.model.prior, codes).mean())
            detail = f"the entropy model's rate: {rate:.1f} bits per image"
        data = container.pack(kind, run.fingerprint(), payload)
    def write(f) -> None:
        f.write(data)

    atomic_write(Path(output), write)
    return Compressed(len(data), x.shape[0], detail)


def decompress(run, path: Path, fingerprint: Optional[bytes] = None) -> tuple[int, torch.Tensor]:
    """``(kind, tensor)``: the images (``container.LOSSLESS``) or codes (``container.CODES``) of a file from
    ``vae compress``, after every check of ``pyro_vae.inference.coding.container`` and the decoder's own; a damaged,
    truncated, foreign or random file raises ``UserError`` before anything is written. ``fingerprint``: the
    run's, if already computed (``Run.fingerprint``)."""
    packed = container.read_file(path, fingerprint or run.fingerprint())
    with run.params():
        if packed.kind == container.LOSSLESS:
            decoded = decode_lossless(run.model, run.guide, packed.payload, run.data.event_shape, name=path)
        else:
            require_entropy_model(run.model, run.guide)
            decoded = decode_codes(run.model.prior, packed.payload, name=path, legacy=not packed.checked)
    if not packed.checked:  # once decoded: a refusal stays the one line it ends in
        print(f"vae: notice: {path} is in the unchecked format of earlier versions (no checksum, no run "
              f"fingerprint); its decoding cannot be verified", file=sys.stderr)
    return packed.kind, decoded
