"""The command, component and refusal references (Markdown), made from the library's own tables: the parser
``vae`` builds, the registries, and the refusal tables the tests run (``tests/inference/cli/test_bad_input.py``,
``test_option_ranges.py``, ``test_output_paths.py``, ``tests/inference/data/test_own_data_bad_input.py``,
``tests/inference/runs/test_run_folder_damage.py``, ``tests/e2e/test_signals.py``)."""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
import tempfile
from pathlib import Path

from pyro_vae.models.registry import declared_options



def cell(text) -> str:
    """Text for one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def code(text) -> str:
    text = str(text)
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}" if text else ""


def summary(obj) -> str:
    """The first sentence of ``obj``'s own docstring."""
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    first = inspect.cleandoc(doc or "").split("\n\n")[0]
    return " ".join(first.split())


# ---- the command line ---------------------------------------------------------------------------------------

def _value(action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    if isinstance(action.metavar, tuple):
        return " ".join(action.metavar)
    if action.choices is not None and not isinstance(action.choices, dict):
        return "{" + ",".join(map(str, action.choices)) + "}"
    return action.metavar or action.dest.upper()


def command_section(name: str, parser: argparse.ArgumentParser, config_keys: dict) -> str:
    lines = [f"(vae-{name})=", f"## `vae {name}`", "", cell(parser.description or ""), "", "```text",
             parser.format_usage().strip().replace("usage: ", ""), "```", "",
             "| argument | value | config key | what it does |", "| --- | --- | --- | --- |"]
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue
        names = ", ".join(action.option_strings) or action.dest.upper()
        keys = config_keys.get(action.dest, "") if action.option_strings else ""
        lines.append(f"| {code(names)} | {code(_value(action))} | {code(keys)} | {cell(action.help or '')} |")
    return "\n".join(lines) + "\n"


def cli_page() -> str:
    from pyro_vae.inference.cli.main import build_parser
    from pyro_vae.inference.cli.options import flag_fields

    config_keys = {dest: ", ".join(f"{section}.{name}" for section, name in pairs)
                   for dest, pairs in flag_fields().items()}
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in sub._choices_actions}
    out = ["# Command line reference", "",
           "Generated from the parser `vae` builds (`pyro_vae.inference.cli.main.build_parser`), so it lists every "
           "command and flag of this version. The *config key* is the `config.json` / `--config` key a flag sets "
           "(`vae config --dump` prints them all). Bad values are refused in one line with exit status 2: see "
           "[bad input](bad-input.md).", "", "```text", parser.format_usage().strip().replace("usage: ", ""), "```",
           "", "| command | what it does |", "| --- | --- |"]
    out += [f"| [`vae {name}`](#vae-{name}) | {cell(helps.get(name, ''))} |" for name in sub.choices]
    out.append("")
    out += [command_section(name, p, config_keys) for name, p in sub.choices.items()]
    return "\n".join(out)


# ---- the components -----------------------------------------------------------------------------------------

def _registries() -> list:
    from pyro_vae.guides import GUIDES
    from pyro_vae.inference.data.loaders import DATASETS
    from pyro_vae.inference.objectives import OBJECTIVES
    from pyro_vae.inference.objectives.schedules import SCHEDULES
    from pyro_vae.inference.training.engines import ENGINES
    from pyro_vae.models import LIKELIHOODS, PRIORS

    return [("Likelihoods", "p(x | z)", LIKELIHOODS, "--likelihood", "model.likelihood"),
            ("Priors", "p(z)", PRIORS, "--prior", "model.prior"),
            ("Guides", "q(z | x)", GUIDES, "--guide", "guide.guide"),
            ("Objectives", "what SVI minimizes", OBJECTIVES, "--objective", "objective.name"),
            ("KL schedules", "the weight of the KL term over the steps", SCHEDULES, "--kl-schedule",
             "objective.kl_schedule"),
            ("Engines", "how one SVI step runs", ENGINES, "--compile", "train.compile"),
            ("Datasets", "where the data comes from", DATASETS, "--dataset", "data.dataset")]


def _qualname(cls) -> str:
    module = cls.__module__
    for package in ("pyro_vae.models", "pyro_vae.guides"):
        if module.startswith(package + ".") and getattr(importlib.import_module(package), cls.__name__, None) is cls:
            return f"{package}.{cls.__name__}"
    return f"{module}.{cls.__name__}"


def components_page() -> str:
    from pyro_vae.inference.cli.options import flag_of

    out = ["# Components", "",
           "Generated from the registries: every name `vae train` and a config accept, the class it builds and its "
           "options (declared in the class's own `Config`; the flag sets the config key of the same name). "
           "[Extending the toolkit](../contributing.md) shows how to register your own.", ""]
    for title, what, registry, flag, key in _registries():
        out += [f"## {title}: {what}", "", f"Chosen by `{flag} NAME` (config key `{key}`).", "",
                "| name | class | what it is | options |", "| --- | --- | --- | --- |"]
        for name in registry.in_order():
            cls = registry.get(name)
            config = getattr(cls, "Config", None)
            opts = ", ".join(code(flag_of(f)) for f in dataclasses.fields(config)) if config else ""
            out.append(f"| `{name}` | {{py:class}}`~{_qualname(cls)}` | {cell(summary(cls))} | {opts} |")
        options = declared_options(registry)
        if options:
            out += ["", "| option | default | used by | what it sets |", "| --- | --- | --- | --- |"]
            for field_name, (_, f, users) in options.items():
                out.append(f"| {code(flag_of(f))} | {code(json.dumps(f.default))} | "
                           f"{', '.join(code(u) for u in users)} | {cell(f.metadata['help'])} |")
        out.append("")
    out += recipes_section()
    return "\n".join(out)


def recipes_section() -> list[str]:
    """The recipes: each config file's opening comment (which paper, what differs) and its settings."""
    from pyro_vae.inference.config.recipes import read_recipe, recipe_names, recipe_path

    out = ["## Recipes: papers' models as config files", "",
           "Chosen by `--recipe NAME` (then `--config`, then the flags given, override it); "
           "`vae config --dump --recipe NAME` prints it resolved. Each is `inference/config/recipes/NAME.yaml`.", "",
           "| recipe | the paper, and what differs | settings |", "| --- | --- | --- |"]
    for name in recipe_names():
        comment = " ".join(line.lstrip("# ").strip() for line in recipe_path(name).read_text().splitlines()
                           if line.startswith("#"))
        settings = "; ".join(f"{section}: " + ", ".join(f"{k} {v}" for k, v in values.items())
                             for section, values in read_recipe(name).items() if isinstance(values, dict))
        out.append(f"| `{name}` | {cell(comment)} | {cell(settings)} |")
    return out + [""]


# ---- bad input ----------------------------------------------------------------------------------------------

def _train_input(case) -> str:
    if case.flags is not None:
        return code("vae train " + " ".join(map(str, case.flags)))
    return "config " + code(json.dumps(case.config))


def refusals_page() -> str:
    from tests.inference.cli import test_bad_input as cli_cases
    from tests.inference.data import test_own_data_bad_input as data_cases

    rows = [(c.id, _train_input(c), c.message + (f" … {c.more}" if c.more else "")) for c in cli_cases.TRAIN_CASES]
    rows += [(case, f"`vae train --dataset idx --data-dir DIR`: {cell(summary(damage))}", message)
             for case, damage, message in cli_cases.DATA_CASES]
    rows += [(case, code("vae compare-em " + " ".join(args)), message) for case, args, message in cli_cases.COMPARE_EM_CASES]
    with tempfile.TemporaryDirectory() as tmp:
        for case in data_cases.CASES:
            folder = Path(tmp) / case.__name__
            folder.mkdir()
            _, message = case(folder)
            rows.append((case.__name__.strip("_"), cell(summary(case)), message))
    rows += [(r.id, r.input, r.message) for r in cli_cases.OTHER_REFUSALS]
    out = ["# Bad input", "",
           "Generated from the refusal tables the tests run (`tests/inference/cli/test_bad_input.py`, "
           "`tests/inference/data/test_own_data_bad_input.py`): each input below ends in one line, "
           "`vae: error: ...`, naming the problem and the fix, with exit status 2, no traceback, and nothing on "
           "disk lost (a refused `vae train` leaves `--out` and the data folder as they were). From Python the "
           "same refusals raise `pyro_vae.inference.UserError` with the same line.", "",
           "A NaN or Inf in a gradient stops training before the update, naming the step, the term "
           "(reconstruction or KL) and the last good checkpoint (`--clip-norm` clips gradients, `--min-scale` "
           "floors the guide's scales).", "",
           "Config validation and the IDX reader are also fuzzed with hypothesis "
           "(`tests/inference/config/`, `tests/inference/data/`).", "",
           f"{len(rows)} refusals:", "", "| case | input | the one-line answer contains |", "| --- | --- | --- |"]
    out += [f"| `{case}` | {what} | {cell(message)} |" for case, what, message in rows]
    return "\n".join(out + ["", *hostile_options(), "", *output_paths(), "", *damaged_run_folders(), "", *signals()]) + "\n"


def hostile_options() -> list[str]:
    """The option table of ``tests/inference/cli/test_option_ranges.py``, one row per option: the hostile values
    it refuses (before anything loads) and the words of one refusal."""
    from tests.inference.cli import test_option_ranges as ranges

    rows: dict = {}
    for case in ranges.CASES:
        row = rows.setdefault((case.where, case.option), {"refused": [], "taken": [], "said": None})
        prefix = f"{case.where}-{case.option.lstrip('-')}-"
        label = case.id[len(prefix):] if case.id.startswith(prefix) else case.id
        row["refused" if case.said else "taken"].append(label)
        rank = ("negative", "zero", "nan", "huge").index(label) if label in ("negative", "zero", "nan", "huge") else 9
        if case.said and rank < row.get("rank", 10):  # a bound's words where there is one, rather than the type's
            row["said"], row["rank"] = case.said, rank
    out = ["## Hostile option values", "",
           f"Generated from `tests/inference/cli/test_option_ranges.py` ({len(ranges.CASES)} cases): every option of "
           "every config section (a registered component's included) and of every command, given another type, "
           "nan, ±infinity, a negative number, zero and a number beyond 64 bits, in a config file or on the command "
           "line. Each value the option's declared type and bounds refuse ends in one line naming the option, "
           "before anything loads; each one they take passes. The bounds are declared once, in the option's "
           "metadata (`option(..., above=, minimum=, maximum=, check=)`), which the flags and their help are "
           "made from, so a new option cannot skip them.", "",
           "| where | option | refused | taken | one refusal says |", "| --- | --- | --- | --- | --- |"]
    for (where, option), row in rows.items():
        out.append(f"| {code('config' if where == 'section' else 'vae ' + where)} | {code(option)} | "
                   f"{cell(', '.join(row['refused']))} | {cell(', '.join(row['taken']))} | {cell(row['said'] or '')} |")
    return out


def output_paths() -> list[str]:
    """The output-path table of ``tests/inference/cli/test_output_paths.py``."""
    from tests.inference.cli import test_output_paths as paths

    out = ["## Outputs that writing would replace", "",
           "Generated from `tests/inference/cli/test_output_paths.py`: every output option (declared by its "
           "`check`) refuses these before anything loads, in one line naming the flag, and leaves the thing named "
           "as it was. A link to a folder given as an output folder is written into, never replaced.", "",
           "| command | option | kind | refused |", "| --- | --- | --- | --- |"]
    for command, flag, kind in paths.OUTPUTS:
        refused = [h.id for h in paths.HOSTILE if kind in h.refused_for]
        out.append(f"| {code('vae ' + command)} | {code(flag)} | {kind} | {', '.join(refused)} |")
    return out


def signals() -> list[str]:
    """What ``tests/e2e/test_signals.py`` sends, and when."""
    from tests.e2e import test_signals

    return ["## Signals", "",
            "Tested by `tests/e2e/test_signals.py` on the installed `vae` script and `python -m`: SIGINT or SIGTERM "
            "while torch loads, while `vae report`, `vae evaluate` and `vae compress` read a run, and during training "
            "(then again as it exits) end with one line and no traceback: "
            + ", ".join(f"`{said}` (exit status {test_signals.STATUS[sig]})" for sig, said in test_signals.SAID.items())
            + "; a training run says what was saved and `vae train --resume RUN`. A second signal while the first is "
            "being handled ends the process at once with the same status (during training: the step in progress is "
            "not saved). No temporary file is left; one a killed writer left is removed by the next writer."]


def damaged_run_folders() -> list[str]:
    """The run-folder table of ``tests/inference/runs/test_run_folder_damage.py``: each file, each damage, the
    commands that read it, refused or (where the table says so) taken."""
    from tests.inference.runs import test_run_folder_damage as damage

    out = ["## A damaged run folder", "",
           "Generated from `tests/inference/runs/test_run_folder_damage.py`, which damages each file of a run folder "
           "each way and runs each command that reads it: a refusal is one line naming the file (`vae: error: "
           "RUN/FILE is damaged: ...; how to get a good one back`), exit status 2, no traceback, and every file of "
           "the folder, and a link's target outside it, byte-identical afterwards. A link, pipe or device anywhere "
           "in a run folder (its lock files included) is refused by every command that reads or writes it (nothing "
           "is read, written or deleted through it); `vae diagnose` writes a new `diagnostics/` beside the old one "
           "and swaps it in whole; a temporary left by a killed writer is removed by the folder's next writer "
           "(`vae train`, `--resume`, `--force`).", "",
           "| file | read by | " + " | ".join(d.id for d in damage.DAMAGES) + " |",
           "| --- | --- |" + " --- |" * len(damage.DAMAGES)]
    for name, commands in damage.READERS.items():
        cells = [("n/a" if d.json_only and name not in damage.JSON_FILES else
                  f"taken ({damage.ACCEPTED[name, d.id]})" if (name, d.id) in damage.ACCEPTED else "refused")
                 for d in damage.DAMAGES]
        out.append(f"| {code(name)} | {', '.join(code(damage.NAMES[c]) for c in commands)} | "
                   + " | ".join(cells) + " |")
    return out


def run_folder_files() -> str:
    """The files of a run folder, from the docstring of ``runs/layout.py`` (the module that names them all)."""
    from pyro_vae.inference.runs import layout

    rows: list[list[str]] = []
    for line in inspect.cleandoc(inspect.cleandoc(layout.__doc__).split("\n\n")[1]).splitlines():
        name, _, what = line.strip().partition("  ")
        if line.startswith(" "):  # a continued description
            rows[-1][1] += " " + line.strip()
        else:
            rows.append([name.strip(), what.strip()])
    rows = [f"| {code(name)} | {cell(what.replace('``', '`'))} |" for name, what in rows]
    return "\n".join(["| file | holds |", "| --- | --- |", *rows]) + "\n"


def pages() -> dict[str, str]:
    return {"cli.md": cli_page(), "components.md": components_page(), "bad-input.md": refusals_page(),
            "run-folder-files.md": run_folder_files()}
