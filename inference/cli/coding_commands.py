"""vae compress and decompress: test images to bytes and back with a trained run."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pyro_vae.models.registry import option

from pyro_vae.inference.cli.command import COMMANDS, Command
from pyro_vae.inference.errors import UserError


@COMMANDS.register("compress")
class CompressCommand(Command):
    help = "rate-distortion autoencoder: test images to bytes (ANS coding)"
    reads_run = True

    @dataclass
    class Options:
        test_images: int = option(100, "how many test images to code")
        start: int = option(0, "first test image")
        lossless: bool = option(False, "a VAE (bernoulli, normal prior, diagonal_normal guide): bits-back ANS, "
                                "exact images")
        output: Optional[str] = option(None, "file to write", flag=("-o", "--output"), required=True)

    def run(self, args) -> int:
        from pyro_vae.inference.coding import container
        from pyro_vae.inference.coding.bits_back import BitsBackCoder, encode_lossless
        from pyro_vae.inference.coding.entropy_coding import encode_codes, model_rate_bits, require_entropy_model
        from pyro_vae.inference.runs.files import atomic_write
        from pyro_vae.inference.runs.run import load_run

        if args.test_images <= 0 or args.start < 0:
            raise UserError("--test-images must be positive and --start >= 0")
        run = load_run(Path(args.run))
        args.hold(run.params())  # the trained pyro.params for every method of the run's programs
        x = run.data.test_x[args.start: args.start + args.test_images]
        if x.shape[0] == 0:
            raise UserError(f"--start {args.start} is past the {run.data.test_x.shape[0]} test images")
        if args.lossless:
            payload, result = encode_lossless(BitsBackCoder(run.model, run.guide), x)
            kind = container.LOSSLESS
            promised = -run.evaluate().elbo / 0.6931471805599453
            detail = f"net {result.net_bits_per_image:.1f} bits per image by bits-back (test -ELBO: {promised:.1f} bits)"
        else:
            require_entropy_model(run.model, run.guide)
            codes = run.guide.quantized_code(x)
            payload, kind = encode_codes(run.model.prior, codes), container.CODES
            detail = f"the entropy model's rate: {float(model_rate_bits(run.model.prior, codes).mean()):.1f} bits per image"
        data = container.pack(kind, run.fingerprint(), payload)
        atomic_write(Path(args.output), lambda f: f.write(data))
        print(f"wrote {len(data)} bytes for {x.shape[0]} images to {args.output}: "
              f"{8 * len(data) / x.shape[0]:.1f} bits per image ({detail})")
        return 0


def decompress(run, path: Path, fingerprint: Optional[bytes] = None):
    """``(kind, tensor)``: the images (``container.LOSSLESS``) or codes (``container.CODES``) of a file from
    ``vae compress``, after every check of ``pyro_vae.inference.coding.container`` and the decoder's own; a damaged,
    truncated, foreign or random file raises ``UserError`` before anything is written. ``fingerprint``: the
    run's, if already computed (``Run.fingerprint``)."""
    from pyro_vae.inference.coding import container
    from pyro_vae.inference.coding.bits_back import decode_lossless
    from pyro_vae.inference.coding.entropy_coding import decode_codes, require_entropy_model

    packed = container.read_file(path, fingerprint or run.fingerprint())
    if not packed.checked:
        print(f"vae: notice: {path} is in the unchecked format of earlier versions (no checksum, no run "
              f"fingerprint); its decoding cannot be verified", file=sys.stderr)
    if packed.kind == container.LOSSLESS:
        return packed.kind, decode_lossless(run.model, run.guide, packed.payload, run.data.event_shape, name=path)
    require_entropy_model(run.model, run.guide)
    return packed.kind, decode_codes(run.model.prior, packed.payload, name=path, legacy=not packed.checked)


@COMMANDS.register("decompress")
class DecompressCommand(Command):
    help = "bytes from 'vae compress' back to images (a PNG grid; arrays: a heat map and a CSV)"
    reads_run = True
    run_help = "the run folder the file was compressed with"

    def add_arguments(self, p) -> None:
        super().add_arguments(p)
        p.add_argument("file", help="file written by 'vae compress'")

    @dataclass
    class Options:
        output: Optional[str] = option(None, "PNG to write", flag=("-o", "--output"), required=True)

    def run(self, args) -> int:
        from pyro_vae.inference.coding import container
        from pyro_vae.inference.report.images import save_grid
        from pyro_vae.inference.report.outputs import save_decoded_codes
        from pyro_vae.inference.runs.run import load_run

        run = load_run(Path(args.run))

        args.hold(run.params())  # the trained pyro.params for every method of the run's programs
        path = Path(args.file)
        kind, decoded = decompress(run, path)
        if kind == container.LOSSLESS:
            save_grid(decoded, Path(args.output), nrow=int(max(1, decoded.shape[0] ** 0.5)))
        else:  # E[x | code]: an image grid, or for arrays a heat map and a CSV, in the data's own units
            save_decoded_codes(run, decoded, Path(args.output), what="decoded E[x | code]")
        print(f"decoded {decoded.shape[0]} images from {args.file} into {args.output}")
        return 0
