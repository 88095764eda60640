"""The options of the ``vae`` commands and how they resolve into a ``RunConfig``.

A value comes from, last one winning: the defaults, the ``--family`` preset, the ``--config`` file, the
flags given on the command line. The config flags, their help and ``flag_fields()`` (which config fields
each flag sets) are made from the config sections' options (their own fields and their registered
components' ``Config`` fields, read when the parser is built); nothing about an option is written here.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Sequence

from pyro_vae.inference.config.sections import FAMILIES, RunConfig, apply_family, choice_names
from pyro_vae.inference.config.files import RUN_SECTION, merge, read_config_file
from pyro_vae.inference.config.recipes import read_recipe, recipe_names
from pyro_vae.inference.errors import UserError
from pyro_vae.models.registry import bound_problem


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage is in ``--help``)."""

    def error(self, message: str):
        raise UserError(f"{message} (see '{self.prog} --help')")


def flag_of(f) -> str:
    """The flag of an ``option`` field: ``negated``, ``flag``, or ``--field-name``."""
    return f.metadata.get("negated") or f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _flag_groups() -> dict[str, list]:
    """``--flag`` -> the config options ``[(section, field, type), ...]`` it sets, in the sections' order."""
    groups: dict[str, list] = {}
    for section, cls in RunConfig.SECTIONS.items():
        for kind, f in cls.options().values():
            groups.setdefault(flag_of(f), []).append((section, f, kind))
    return groups


def _help(f) -> str:
    meta, text = f.metadata, f.metadata["help"]
    if meta.get("choices") is not None and type(meta["choices"]) is not tuple:
        text += f" (one of: {', '.join(choice_names(meta['choices']))})"
    if not meta.get("negated") and not meta.get("paired") and f.default is not None and f.default is not False:
        text += f" [default: {f.default}]"
    return text


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The flags of a RunConfig (data, model, guide, objective, training), shared by train, config, rd-sweep and
    rd-compare: made from the config fields (``pyro_vae.inference.config.sections.option``), one flag per field or group."""
    p.add_argument("--config", metavar="FILE", default=None,
                   help="YAML, TOML or JSON file of config sections (and a 'run' section of other options); "
                        "flags given here override it")
    p.add_argument("--family", default="vae", help=f"autoencoder family preset: sets prior, guide and objective "
                   f"(one of: {', '.join(FAMILIES)}; see docs/guide/families.md) [default: vae]")
    p.add_argument("--recipe", metavar="NAME", default=None,
                   help=f"start from a paper's settings (one of: {', '.join(recipe_names())}; see "
                        f"docs/reference/components.md); --config and the flags given override it")
    add_option_flags(p, [(flag, group[0][1], group[0][2]) for flag, group in _flag_groups().items()])


def add_option_flags(p: argparse.ArgumentParser, options) -> None:
    """One flag per ``(flag, field, type)`` of an ``option``: a store-true flag for a bool (``--x/--no-x`` when
    ``paired``), ``nargs`` for a list, else a value; plain-tuple choices, ``required`` and a hidden flag (empty
    help) as the field says."""
    for flag, f, kind in options:
        meta = f.metadata
        names = flag if isinstance(flag, tuple) else (flag,)
        extra = {"required": True} if meta.get("required") else {}
        help_text = _help(f) if meta["help"] else argparse.SUPPRESS
        optional = typing.get_origin(kind) is typing.Union
        base = next(a for a in typing.get_args(kind) if a is not type(None)) if optional else kind
        if base is bool:
            action = argparse.BooleanOptionalAction if meta.get("paired") else "store_true"
            default = False if meta.get("negated") else f.default  # a negated flag's absence sets nothing
            p.add_argument(*names, action=action, default=default, help=help_text)
            continue
        if typing.get_origin(base) is list:  # --image-size H W (a tuple of names: that many), --hierarchy UNITS ...
            metavar = meta["metavar"]
            p.add_argument(*names, type=typing.get_args(base)[0], nargs="+" if isinstance(metavar, str) else len(metavar),
                           metavar=metavar, default=f.default, help=help_text, **extra)
            continue
        if type(meta.get("choices")) is tuple:  # a command's fixed choices: argparse refuses another value
            extra["choices"] = meta["choices"]
        metavar = meta.get("metavar") or ("NAME" if meta.get("choices") is not None and "choices" not in extra
                                          else {int: "N", float: "X"}.get(base, None if "choices" in extra else "VALUE"))
        p.add_argument(*names, type=base, default=f.default, help=help_text, metavar=metavar, **extra)


def add_options(p: argparse.ArgumentParser, options_cls) -> None:
    """The flags of a command's ``Options`` dataclass, one per ``option`` field."""
    hints = typing.get_type_hints(options_cls)
    add_option_flags(p, [(flag_of(f), f, hints[f.name]) for f in dataclasses.fields(options_cls)])


def same_option(section_cls, name: str):
    """A command's option declared as the config section's ``name`` is (``vae compare-em --dataset``)."""
    f = section_cls.options()[name][1]
    return dataclasses.field(default=f.default, metadata=f.metadata)


TYPE_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}


def type_problem(kind, value) -> typing.Optional[str]:
    """Why ``value`` is not of the declared type ``kind`` (a config file's ``run`` section is not parsed by the
    flags: ``force: "no"`` is a string, not false), or None. A bool is not taken for a number, nor a number for a
    bool."""
    allowed = typing.get_args(kind) if typing.get_origin(kind) is typing.Union else (kind,)
    if value is None and type(None) in allowed:
        return None
    if value == "" and str in allowed:  # --out '' would be the current folder: never what was meant
        return "must not be empty"
    for t in allowed:
        if t is bool and isinstance(value, bool) or t is str and isinstance(value, str):
            return None
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return None
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return None
        if typing.get_origin(t) is list and isinstance(value, (list, tuple)):
            item = typing.get_args(t)[0]
            wrong = item in TYPE_NAMES and any(type_problem(item, v) for v in value)
            return f"must be a list, each item {TYPE_NAMES[item]}" if wrong else None
        if t not in (bool, str, int, float, type(None)) and typing.get_origin(t) is not list:
            return None  # a type this check does not know: left to the command
    return "must be " + " or ".join(TYPE_NAMES.get(t, "a list" if typing.get_origin(t) is list else "none")
                                    for t in allowed if t is not type(None))


def check_options(args: argparse.Namespace, options_cls) -> None:
    """Each value of a command's ``Options`` of its declared type, among its declared choices and within its
    declared bounds (``bound_problem``), or one line naming the flag."""
    hints = typing.get_type_hints(options_cls)
    for f in dataclasses.fields(options_cls):
        value = getattr(args, f.name, f.default)
        flag = flag_of(f)
        flag = flag[-1] if isinstance(flag, tuple) else flag
        where = "" if f.name in getattr(args, "given", {f.name}) else \
            " (from the config file's run section, which takes the flag's values)"
        problem = type_problem(hints[f.name], value) if value is not f.default else None  # (defaults are its own)
        choices = f.metadata.get("choices")
        names = [value] if isinstance(value, str) else value if isinstance(value, (list, tuple)) else []
        unknown = next((v for v in names if isinstance(v, str) and v not in choices), None) if choices else None
        if not problem and unknown is not None:  # (argparse checks a flag's plain choices, not the run section's)
            kind = getattr(choices, "kind", flag.lstrip("-").replace("-", " "))
            raise UserError(f"{flag}: unknown {kind} {unknown!r}; choose one of: {', '.join(choice_names(choices))}"
                            f"{where}")
        problem = problem or (bound_problem(f, value) if value is not f.default else None)  # (a default's output
        if problem:  # folder is checked when it is used: 'vae train --resume RUN' never writes ./runs/default)
            raise UserError(f"{flag} {problem}, got {value!r}{where}")


def flag_fields() -> dict[str, list]:
    """Flag dest -> the (section, option) pairs it sets (read now: components registered since count)."""
    return {flag.lstrip("-").replace("-", "_"): [(section, f.name) for section, f, _ in group]
            for flag, group in _flag_groups().items()}


def negated_flags() -> set[str]:
    """The dests of the flags that set their option to False (``--sampled-kl``: ``analytic_kl = False``)."""
    return {flag.lstrip("-").replace("-", "_") for flag, group in _flag_groups().items()
            if group[0][1].metadata.get("negated")}


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
    fields_by_flag = flag_fields()
    for key, value in raw.pop(RUN_SECTION, {}).items():
        if key in fields_by_flag or not hasattr(args, key) or key in ("command", "config"):
            raise UserError(f"config file {args.config}: run.{key} is not an option of 'vae {args.command}' "
                            f"(config fields go in their sections)")
        if key not in given:
            setattr(args, key, value)
    args.file_config = raw


def flag_values(args: argparse.Namespace) -> dict:
    """The config fields the flags given on the command line set, by section (not yet validated)."""
    flags: dict = {}
    fields_by_flag, negated = flag_fields(), negated_flags()
    for dest in fields_by_flag:
        if dest in getattr(args, "given", fields_by_flag) and hasattr(args, dest):
            value = getattr(args, dest)
            for section, key in fields_by_flag[dest]:
                flags.setdefault(section, {})[key] = (not value) if dest in negated else value
    return flags


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Defaults, then the family preset, then the recipe, then the config file, then the flags given."""
    flags = flag_values(args)
    recipe = read_recipe(args.recipe) if getattr(args, "recipe", None) else {}
    raw = merge(merge(merge(apply_family({}, args.family), recipe), getattr(args, "file_config", {})), flags)
    return RunConfig.from_dict(raw)
