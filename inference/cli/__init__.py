"""The ``vae`` command line: one module per command group, options made from the config dataclasses."""
from pyro_vae.inference.cli.main import main

__all__ = ["main"]
