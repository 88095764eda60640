"""The options of the ``vae`` commands and how they resolve into a ``RunConfig``.

A value comes from, last one winning: the defaults, the ``--family`` preset, the ``--config`` file, the
flags given on the command line. The config flags, their help and ``FLAG_FIELDS`` (which config fields
each flag sets) are made from the config dataclasses' fields; nothing about an option is written here.
"""
from __future__ import annotations

import argparse
import typing
from dataclasses import fields
from typing import Sequence

from pyro_vae.inference.config.sections import FAMILIES, RunConfig, apply_family, choice_names
from pyro_vae.inference.config.files import RUN_SECTION, merge, read_config_file
from pyro_vae.inference.config.recipes import read_recipe, recipe_names
from pyro_vae.inference.errors import UserError


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage is in ``--help``)."""

    def error(self, message: str):
        raise UserError(f"{message} (see '{self.prog} --help')")


def run_command(sub, name: str, handler, help: str, run_help: str = "run folder written by 'vae train'"):
    """A subcommand that reads a run folder: its parser, with the ``run`` argument and its handler set."""
    p = sub.add_parser(name, help=help)
    p.add_argument("run", help=run_help)
    p.set_defaults(handler=handler)
    return p


def add_train_options(p: argparse.ArgumentParser) -> None:
    """``vae train``'s flags (also those of ``vae config --dump``, which prints what train would use)."""
    add_run_options(p)
    p.add_argument("--out", default="runs/default", help="run folder to write (default: runs/default)")
    p.add_argument("--force", action="store_true", help="overwrite a run already in --out")
    p.add_argument("--resume", metavar="RUN", default=None,
                   help="continue RUN from its checkpoint exactly where it stopped (other options come from RUN)")
    p.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints (0: epoch ends only)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines (train.log is kept)")
    p.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=None,
                   help="TensorBoard events in RUN/tensorboard (default: when tensorboard is installed)")
    p.add_argument("--plots", action=argparse.BooleanOptionalAction, default=True,
                   help="curves, latent space, interpolations, neighbours (and manifold for 2-D codes) as PNG")
    p.add_argument("--nproc", type=int, default=1,
                   help="data-parallel processes on this machine (torchrun; gloo on CPU, NCCL on GPUs)")


def _flag_groups() -> dict[str, list]:
    """``--flag`` -> the config fields ``[(section, field), ...]`` it sets, in the sections' order."""
    groups: dict[str, list] = {}
    for section, cls in RunConfig.SECTIONS.items():
        for f in fields(cls):
            flag = f.metadata.get("negated") or f.metadata.get("flag") or "--" + f.name.replace("_", "-")
            groups.setdefault(flag, []).append((section, f))
    return groups


def _help(f) -> str:
    meta, text = f.metadata, f.metadata["help"]
    if meta.get("choices") is not None:
        text += f" (one of: {', '.join(choice_names(meta['choices']))})"
    if not meta.get("negated") and f.default not in (None, False):
        text += f" [default: {f.default}]"
    return text


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The flags of a RunConfig (data, model, guide, objective, training), shared by train, config, rd-sweep and
    rd-compare: made from the config fields (``pyro_vae.inference.config.sections.option``), one flag per field or group."""
    p.add_argument("--config", metavar="FILE", default=None,
                   help="YAML, TOML or JSON file of config sections (and a 'run' section of other options); "
                        "flags given here override it")
    p.add_argument("--family", default="vae", help=f"autoencoder family preset: sets prior, guide and objective "
                   f"(one of: {', '.join(FAMILIES)}; see the README) [default: vae]")
    p.add_argument("--recipe", metavar="NAME", default=None,
                   help=f"start from a paper's settings (one of: {', '.join(recipe_names())}; see the README's "
                        f"Recipes); --config and the flags given override it")
    for flag, group in _flag_groups().items():
        section, f = group[0]
        hints = typing.get_type_hints(RunConfig.SECTIONS[section])
        kind = hints[f.name]
        if kind is bool:
            p.add_argument(flag, action="store_true", help=_help(f))
            continue
        base = next((a for a in typing.get_args(kind) if a is not type(None)), kind)
        if typing.get_origin(base) is list:  # --image-size H W (a tuple of names: that many), --hierarchy UNITS ...
            names = f.metadata["metavar"]
            p.add_argument(flag, type=typing.get_args(base)[0], nargs="+" if isinstance(names, str) else len(names),
                           metavar=names, default=f.default, help=_help(f))
            continue
        metavar = "NAME" if f.metadata.get("choices") is not None else {int: "N", float: "X"}.get(base, "VALUE")
        p.add_argument(flag, type=base, default=f.default, help=_help(f), metavar=metavar)


FLAG_GROUPS = _flag_groups()
FLAG_FIELDS = {flag.lstrip("-").replace("-", "_"): [(section, f.name) for section, f in group]
               for flag, group in FLAG_GROUPS.items()}  # flag dest -> the (section, field) pairs it sets
NEGATED = {flag.lstrip("-").replace("-", "_") for flag, group in FLAG_GROUPS.items()
           if group[0][1].metadata.get("negated")}  # --sampled-kl sets analytic_kl = False


def given_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The dests of the flags actually written in ``argv`` (not filled in from defaults)."""
    for action in _all_actions(parser):
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def _all_actions(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if action.dest != "help":
            yield action
        for sub in (action.choices or {}).values() if isinstance(action, argparse._SubParsersAction) else ():
            yield from _all_actions(sub)


def apply_config_file(args: argparse.Namespace, given: set[str]) -> None:
    """Read ``--config``: keep its config sections in ``args.file_config``; its ``run`` section sets the
    command's other options that the command line did not give."""
    args.file_config, args.given = {}, given
    if not getattr(args, "config", None):
        return
    raw = read_config_file(args.config)
    for key, value in raw.pop(RUN_SECTION, {}).items():
        if key in FLAG_FIELDS or not hasattr(args, key) or key in ("command", "config"):
            raise UserError(f"config file {args.config}: run.{key} is not an option of 'vae {args.command}' "
                            f"(config fields go in their sections)")
        if key not in given:
            setattr(args, key, value)
    args.file_config = raw


def flag_values(args: argparse.Namespace) -> dict:
    """The config fields the flags given on the command line set, by section (not yet validated)."""
    flags: dict = {}
    for dest in FLAG_FIELDS:
        if dest in getattr(args, "given", FLAG_FIELDS):
            value = getattr(args, dest)
            for section, key in FLAG_FIELDS[dest]:
                flags.setdefault(section, {})[key] = (not value) if dest in NEGATED else value
    return flags


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Defaults, then the family preset, then the recipe, then the config file, then the flags given."""
    flags = flag_values(args)
    recipe = read_recipe(args.recipe) if getattr(args, "recipe", None) else {}
    raw = merge(merge(merge(apply_family({}, args.family), recipe), getattr(args, "file_config", {})), flags)
    return RunConfig.from_dict(raw)
