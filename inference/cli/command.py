"""A ``vae`` subcommand: one small class, registered by name in ``COMMANDS``.

A command declares its flags in its own ``Options`` dataclass of ``option(...)`` fields (as the config
sections and the components do: the flag, its help, type, default and bounds in one place), whether it reads
a run folder (``reads_run``: the ``RUN`` argument) and the run config's flags (``run_config``), and its
``run(args)``: the handler parses nothing itself, calls the library function that does the work and prints.
A subclass with a larger ``Options`` registered over a command (``COMMANDS.register(name, replace=True)``)
adds a flag to it.
"""
from __future__ import annotations

import argparse
from typing import Optional

from pyro_vae.models.registry import Registry

from pyro_vae.inference.cli.options import add_options, add_run_options, check_options

COMMANDS: Registry = Registry("command")


class Command:
    """The base of the commands: ``help`` (its line in ``vae --help``), ``Options``, ``run(args) -> int``."""

    help = ""
    description: Optional[str] = None
    Options: Optional[type] = None
    reads_run = False
    run_help = "run folder written by 'vae train'"
    run_config = False  # takes the RunConfig flags (--latent-dim, --prior, ...) and --config, --family, --recipe
    defaults: dict = {}

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        if self.reads_run:
            p.add_argument("run", help=self.run_help)
        if self.run_config:
            add_run_options(p)
        if self.Options is not None:
            add_options(p, self.Options)
        p.set_defaults(**self.defaults)

    def __call__(self, args: argparse.Namespace) -> int:
        if self.Options is not None:
            check_options(args, self.Options)
        return self.run(args)

    def run(self, args: argparse.Namespace) -> int:
        raise NotImplementedError


def add_commands(sub) -> None:
    """Every registered command's parser, with its handler, in the order they were registered."""
    for name in COMMANDS.in_order():
        command = COMMANDS.get(name)()
        p = sub.add_parser(name, help=command.help, description=command.description)
        command.add_arguments(p)
        p.set_defaults(handler=command)
