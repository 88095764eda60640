"""The ``vae`` command line: one module per command group, options made from the config dataclasses.

``main`` is the ``vae`` script's entry point (``pyro_vae.inference.cli:main``). Importing it loads nothing heavy:
it puts the signal handlers in place (``pyro_vae.inference.cli.entry``) before the commands import torch and Pyro.
"""
from pyro_vae.inference.cli.main import main

__all__ = ["main"]
