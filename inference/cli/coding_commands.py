"""vae compress and decompress: test images to bytes and back with a trained run."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pyro_vae.models.registry import option

from pyro_vae.inference.cli.command import COMMANDS, Command
from pyro_vae.inference.deprecation import moved_names
from pyro_vae.inference.runs.layout import output_file_problem


@COMMANDS.register("compress")
class CompressCommand(Command):
    help = "rate-distortion autoencoder: test images to bytes (ANS coding)"
    reads_run = True

    @dataclass
    class Options:
        test_images: int = option(100, "how many test images to code", above=0)
        start: int = option(0, "first test image", minimum=0)
        lossless: bool = option(False, "a VAE (bernoulli, normal prior, diagonal_normal guide): bits-back ANS, "
                                "exact images")
        output: Optional[str] = option(None, "file to write", flag=("-o", "--output"), required=True,
                                        check=output_file_problem)

    def run(self, args) -> int:
        from pyro_vae.inference.coding.run_coding import compress_run
        from pyro_vae.inference.runs.run import load_run

        run = load_run(Path(args.run))
        args.hold(run.params())  # the trained pyro.params for every method of the run's programs
        done = compress_run(run, Path(args.output), args.test_images, args.start, args.lossless)
        print(f"wrote {done.size} bytes for {done.images} images to {args.output}: {done.bits_per_image:.1f} bits per "
              f"image ({done.detail})")
        return 0


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
        output: Optional[str] = option(None, "PNG to write", flag=("-o", "--output"), required=True,
                                        check=output_file_problem)

    def run(self, args) -> int:
        from pyro_vae.inference.coding import container
        from pyro_vae.inference.coding.run_coding import decompress
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


__getattr__ = moved_names(__name__, {"decompress": "pyro_vae.inference.coding.run_coding"})
