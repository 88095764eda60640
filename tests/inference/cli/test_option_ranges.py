"""Every option refuses a hostile value in one line naming it, before anything loads: the table ``CASES`` is made
from the option metadata (each RunConfig section's options, registered components' included, and each command's
``Options``), for the values a tester throws at a number, a name or a switch: another type, nan, +-infinity, a
negative number, zero, a number beyond 64 bits. A value that fits the declared type and bounds passes the check.
``CASES`` (id, where, option, input, the words of the answer) is what the docs' bad-input page can be made of."""
import argparse
import dataclasses
import functools
import json
import math
import typing
from typing import Any, NamedTuple, Optional

import pytest

from pyro_vae.inference.cli import coding_commands, experiment_commands, inspect_commands, run_commands  # noqa: F401
from pyro_vae.inference.cli.command import COMMANDS
from pyro_vae.inference.cli.main import main
from pyro_vae.inference.cli.options import check_options, flag_of
from pyro_vae.inference.config.sections import FAMILIES, RunConfig, apply_family
from pyro_vae.inference.errors import UserError
from pyro_vae.models.registry import SEED_MAX

from tests.helpers import refuse

HUGE = 2**70
HOSTILE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "negative": -1, "zero": 0, "huge": HUGE}
WRONG = {int: "x", float: "x", str: 5, bool: 1}  # a string for a number, a number for a name or a switch
CONFIG_TYPE = {int: "must be int", float: "must be float", str: "must be str", bool: "must be bool"}
COMMAND_TYPE = {int: "must be a whole number", float: "must be a number", str: "must be a string",
                bool: "must be true or false"}


class Case(NamedTuple):
    """One hostile value: ``where`` it is given (``section``: a RunConfig's, or a command's name), the ``option``
    (``train.seed``, ``--seed``), the ``input`` (a RunConfig dict, or the option's value), the ``said`` words of
    the one-line refusal (None: taken)."""

    id: str
    where: str
    option: str
    input: Any
    said: Optional[str]


def _base(kind):
    args = [a for a in typing.get_args(kind) if a is not type(None)] if typing.get_origin(kind) is typing.Union else []
    return args[0] if args else kind


def _bound_words(meta, value) -> Optional[str]:
    """What the metadata's bounds say of a number (or of a list's numbers), written out here on their own."""
    numbers = value if isinstance(value, list) else [value]
    if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
        return "must be a finite number"
    if any(isinstance(v, int) and not -2**63 <= v < 2**63 for v in numbers):
        return "must be a 64-bit integer"
    above, minimum, maximum = meta.get("above"), meta.get("minimum"), meta.get("maximum")
    if above is not None and any(v <= above for v in numbers):
        return "must be positive" if above == 0 else f"must be > {above:g}"
    if minimum is not None and any(v < minimum for v in numbers):
        return f"must be >= {minimum:g}"
    if maximum is not None and any(v > maximum for v in numbers):
        return f"must be <= {maximum}"
    return None


def _fits(kind, value) -> bool:
    if kind is bool or kind is str:
        return isinstance(value, kind)
    return isinstance(value, (int, float) if kind is float else int) and not isinstance(value, bool)


def _values(kind, meta):
    """(label, value, type words or None) for each hostile value of an option of type ``kind``."""
    base = _base(kind)
    if typing.get_origin(base) is list:
        item = typing.get_args(base)[0]
        size = len(meta["metavar"]) if isinstance(meta.get("metavar"), tuple) else 1
        yield "wrong type", WRONG[item] if item is not str else "x", "list"
        if item is str:
            yield "wrong item type", [5] * size, "item"
        for label, v in HOSTILE.items():
            yield label, [v] * size, None if _fits(item, v) else "item"
        return
    yield "wrong type", WRONG[base], "type"
    for label, v in HOSTILE.items():
        yield label, float(v) if base is float else v, None if _fits(base, v) else "type"  # a config file's 5: 5.0


@functools.lru_cache(maxsize=None)
def _context(section: str, name: str) -> str:
    """A RunConfig (as JSON text) in which option ``name`` of ``section`` applies: a component option with one of
    the components that declares it chosen (with a family preset and a data folder where those are needed)."""
    cls = RunConfig.SECTIONS[section]
    owners = [(key, owner) for key, registry in cls.COMPONENTS.items()
              for owner in cls.component_options().get(name, (None, None, []))[2] if owner in registry]
    for key, owner in owners or [(None, None)]:
        for family in FAMILIES:
            raw = apply_family({}, family)
            if key:
                raw.setdefault(section, {})[key] = owner
            raw.setdefault("data", {}).setdefault("data_dir", None)
            for data_dir in (None, "data"):
                raw["data"]["data_dir"] = data_dir
                try:
                    RunConfig.from_dict(raw)
                except UserError:
                    continue
                return json.dumps(raw)
    raise AssertionError(f"no config in which {section}.{name} applies validates")


# A value the declared bounds take that a section's own rule (``check_rules``) refuses, and its words.
RULES = {("data.test_fraction", "huge"): "data.test_fraction must be in (0, 1)",
         ("model.hierarchy", "negative"): "model.hierarchy must be the units of one or more layers below the top, all "
                                          "positive",
         ("model.hierarchy", "zero"): "model.hierarchy must be the units of one or more layers below the top, all positive"}


def _config_cases():
    for section, cls in RunConfig.SECTIONS.items():
        for name, (kind, f) in cls.options().items():
            for label, value, wrong in _values(kind, f.metadata):
                if wrong:
                    base = _base(kind)
                    item = typing.get_args(base)[0] if typing.get_origin(base) is list else None
                    said = f"must be a list of {item.__name__}" if item else CONFIG_TYPE[base]
                else:
                    said = _bound_words(f.metadata, value)
                said = f"{section}.{name} {said}" if said else RULES.get((f"{section}.{name}", label))
                yield Case(f"section-{section}.{name}-{label.replace(' ', '-')}", "section", f"{section}.{name}",
                           {section: {name: value}}, said)


def _command_cases():
    for command in COMMANDS.in_order():
        options = COMMANDS.get(command).Options
        if options is None:
            continue
        hints = typing.get_type_hints(options)
        for f in dataclasses.fields(options):
            flag = flag_of(f)
            flag = flag[-1] if isinstance(flag, tuple) else flag
            for label, value, wrong in _values(hints[f.name], f.metadata):
                base = _base(hints[f.name])
                if wrong == "list":
                    said = "must be a list"
                elif wrong == "item":
                    said = f"must be a list, each item {COMMAND_TYPE[typing.get_args(base)[0]][8:]}"
                elif wrong:
                    said = COMMAND_TYPE[base]
                else:
                    said = _bound_words(f.metadata, value)
                yield Case(f"{command}-{flag.lstrip('-')}-{label.replace(' ', '-')}", command, flag, value,
                           f"{flag} {said}" if said else None)


# What the table above does not reach: the bounds declared for a purpose, the device names, a 64-bit edge.
EXTRA = [
    Case("section-train.seed-beyond-numpy", "section", "train.seed", {"train": {"seed": SEED_MAX + 1}},
         f"train.seed must be <= {SEED_MAX}"),
    Case("section-train.seed-largest", "section", "train.seed", {"train": {"seed": SEED_MAX}}, None),
    Case("section-train.device-tpu", "section", "train.device", {"train": {"device": "tpu"}}, "unknown device 'tpu'"),
    Case("section-model.latent_dim-beyond-64-bits", "section", "model.latent_dim", {"model": {"latent_dim": 2**64}},
         "model.latent_dim must be a 64-bit integer"),
    Case("section-objective.beta-huge-float", "section", "objective.beta", {"objective": {"name": "beta", "beta": 10**400}},
         "objective.beta must be a finite number"),
    Case("evaluate-seed-beyond-numpy", "evaluate", "--seed", 2**32, f"--seed must be <= {SEED_MAX}"),
    Case("evaluate-device-tpu", "evaluate", "--device", "tpu", "--device must be cpu, cuda, cuda:N"),
    Case("sample-device-cuda-x", "sample", "--device", "cuda:x", "--device must be cpu, cuda, cuda:N"),
    Case("sample-device-cuda-1", "sample", "--device", "cuda:1", None),
    Case("sample-device-mps", "sample", "--device", "mps", None),
    Case("diagnose-draws-1", "diagnose", "--draws", 1, "--draws must be >= 4"),
    Case("diagnose-draws-4", "diagnose", "--draws", 4, None),
    Case("diagnose-guide-samples-1", "diagnose", "--guide-samples", 1, "--guide-samples must be >= 2"),
    Case("diagnose-split-valid", "diagnose", "--split", "valid", "--split: unknown split 'valid'"),
    Case("train-checkpoint-every-largest", "train", "--checkpoint-every", 2**63 - 1, None),
    Case("train-checkpoint-every-2**63", "train", "--checkpoint-every", 2**63, "--checkpoint-every must be a 64-bit"),
]

CASES = [*_config_cases(), *_command_cases(), *EXTRA]


def _command_field(case: Case) -> dataclasses.Field:
    options = COMMANDS.get(case.where).Options
    return next(f for f in dataclasses.fields(options) if case.option in (flag_of(f), *flag_of(f)))


def _answer(case: Case) -> Optional[str]:
    """The check's one line for ``case`` (None: taken); any other exception escapes."""
    try:
        if case.where == "section":
            (section, values), = case.input.items()
            name = next(iter(values))
            raw = json.loads(_context(section, name))
            raw.setdefault(section, {}).update(values)
            RunConfig.from_dict(raw)
        else:
            f = _command_field(case)
            check_options(argparse.Namespace(**{f.name: case.input}, given={f.name}), COMMANDS.get(case.where).Options)
    except UserError as err:
        return str(err)
    return None


def test_the_table_holds_every_option_of_every_section_and_command():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    options = {case.option for case in CASES}
    for section, cls in RunConfig.SECTIONS.items():
        assert {f"{section}.{name}" for name in cls.options()} <= options
    assert {"--seed", "--draws", "--guide-samples", "--limit", "--device", "--checkpoint-every", "--nproc"} <= options
    assert sum(case.said is None for case in CASES) > 20 and sum(case.said is not None for case in CASES) > 500


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_hostile_value_is_refused_in_one_line_naming_the_option(case):
    answer = _answer(case)
    if case.said is None:
        assert answer is None, f"{case.option} = {case.input!r} fits its declared type and bounds: {answer}"
        return
    assert answer is not None, f"{case.option} = {case.input!r} was taken"
    assert "\n" not in answer and case.said in answer, answer
    assert case.option.split(".")[-1].lstrip("-") in answer.replace("-", "_") or case.option in answer


# The tester's examples, through the command line: exit status 2, one line, no traceback, before anything loads.
END_TO_END = [
    (["train", "--seed", str(2**64)], "train.seed must be a 64-bit integer"),
    (["train", "--seed", "-1"], "train.seed must be >= 0"),
    (["train", "--device", "tpu"], "unknown device 'tpu'"),
    (["train", "--free-bits", "nan"], "objective.free_bits must be a finite number"),
    (["train", "--family", "contractive", "--contractive-weight", "nan"], "objective.contractive_weight must be a finite"),
    (["train", "--latent-dim", str(2**64)], "model.latent_dim must be a 64-bit integer"),
    (["train", "--lr", "inf"], "train.lr must be a finite number"),
    (["evaluate", "RUN", "--limit", "-100000"], "--limit must be positive, got -100000"),
    (["evaluate", "RUN", "--device", "tpu"], "--device must be cpu, cuda, cuda:N (GPU N), mps or auto, got 'tpu'"),
    (["evaluate", "RUN", "--seed", str(2**64)], "--seed must be a 64-bit integer"),
    (["sample", "RUN", "--seed", "-5"], "--seed must be >= 0, got -5"),
    (["diagnose", "RUN", "--draws", "1"], "--draws must be >= 4, got 1"),
    (["diagnose", "RUN", "--guide-samples", "1"], "--guide-samples must be >= 2, got 1"),
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ranges") / "run"
    assert main(["train", "--epochs", "1", "--latent-dim", "3", "--hidden-dim", "32", "--quiet", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("argv, said", END_TO_END, ids=[" ".join(argv) for argv, _ in END_TO_END])
def test_the_testers_examples_end_in_one_line(capsys, tmp_path, run_dir, argv, said):
    argv = [str(run_dir) if a == "RUN" else a for a in argv]
    if argv[0] == "train":
        argv += ["--out", str(tmp_path / "new")]
    assert said in refuse(capsys, argv)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("entry, said", [
    ("out: 5", "--out must be a string, got 5 (from the config file's run section"),
    ('checkpoint_every: "x"', "--checkpoint-every must be a whole number, got 'x'"),
    ('nproc: "2"', "--nproc must be a whole number, got '2'"),
    ("nproc: 0", "--nproc must be >= 1, got 0"),
    ("checkpoint_every: .nan", "--checkpoint-every must be a whole number, got nan"),
    ("tensorboard: 1", "--tensorboard must be true or false, got 1"),
])
def test_a_config_files_run_section_of_the_wrong_type_or_range(capsys, tmp_path, monkeypatch, entry, said):
    monkeypatch.chdir(tmp_path)  # (a run section's out: 5 would be the folder ./5)
    (tmp_path / "c.yaml").write_text(f"run:\n  {entry}\ntrain:\n  epochs: 1\n")
    assert said in refuse(capsys, ["train", "--config", "c.yaml"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


@pytest.mark.parametrize("entry, said", [
    ("train: {lr: .inf}", "train.lr must be a finite number (not nan or infinity), got inf"),
    ("objective: {free_bits: .nan}", "objective.free_bits must be a finite number (not nan or infinity), got nan"),
    (f"train: {{lr: {10**400}}}", "train.lr must be a finite number"),
    ("train: {seed: -3}", "train.seed must be >= 0, got -3"),
    ("model: {latent_dim: 1000.0}", "model.latent_dim must be int, got 1000.0"),
    ("data: {image_size: [28, 0]}", "data.image_size must be positive, got [28, 0]"),
])
def test_a_config_files_sections_out_of_range(capsys, tmp_path, entry, said):
    (tmp_path / "c.yaml").write_text(entry + "\n")
    assert said in refuse(capsys, ["train", "--config", tmp_path / "c.yaml", "--out", tmp_path / "new"])
    assert not (tmp_path / "new").exists()
