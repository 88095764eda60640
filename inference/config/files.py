"""Config files: a ``RunConfig`` and the run options of a command as YAML, TOML or JSON (as pythae's
``BaseConfig.from_json_file``, in three formats).

    data: {dataset: mnist-embedded}          # the sections of RunConfig, any subset of their keys
    model: {latent_dim: 2}
    train: {epochs: 20}
    run: {out: runs/two-d, checkpoint_every: 100}   # the command's other options, by their flag's name

``vae train --config run.yaml --epochs 30``: defaults, then the family preset, then the file, then the
flags given on the command line. ``vae config --dump`` prints the resolved result; every run folder
holds it as ``config.yaml``, so ``vae train --config RUN/config.yaml --out NEW`` retrains the run.
"""
from __future__ import annotations

import collections.abc
import json
import tomllib
from pathlib import Path
import yaml

from pyro_vae.inference.runs.files import atomic_write_text
from pyro_vae.inference.runs.paths import read_regular
from pyro_vae.inference.runs.json_checks import MAX_DEPTH, depth
from pyro_vae.inference.config.sections import RunConfig
from pyro_vae.inference.errors import UserError

FORMATS = {".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".json": "json"}
RUN_SECTION = "run"
MAX_CONFIG_BYTES = 1 << 20  # a config is a few hundred bytes


def _format(path: Path) -> str:
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UserError(f"config file {path} is neither YAML, TOML nor JSON; name it *.yaml, *.toml or *.json")
    return fmt


class _UniqueKeysLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key written twice in one mapping (PyYAML keeps the last without a word)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # <<: *base, whose keys the mapping may override
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, collections.abc.Hashable):  # refused by the loader itself
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is written twice (line "
                                                        f"{key_node.start_mark.line + 1})", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _unique_keys(pairs: list) -> dict:
    """A JSON object's pairs as a dict, refusing a key written twice (``json`` keeps the last)."""
    seen: set = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"key {key!r} is written twice")
        seen.add(key)
    return dict(pairs)


def read_config_file(path: Path) -> dict:
    """The file's mapping of sections (``run`` included), unvalidated; one-line errors for the unreadable."""
    path, fmt = Path(path), _format(path)
    data = read_regular(path, MAX_CONFIG_BYTES, follow=True)
    if data is None:
        raise UserError(f"no config file at {path}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"config file {path} is not UTF-8 text (byte {err.start})") from None
    too_deep = False
    try:
        raw = {"yaml": lambda t: yaml.load(t, Loader=_UniqueKeysLoader), "toml": tomllib.loads,
               "json": lambda t: json.loads(t, object_pairs_hook=_unique_keys)}[fmt](text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"config file {path} is not valid {fmt.upper()}: {str(err).splitlines()[0]}") from None
    except RecursionError:  # deeper than the parser's stack
        too_deep = True
    except ValueError as err:  # an integer of more than 4300 digits
        raise UserError(f"config file {path} is not valid {fmt.upper()}: {str(err).splitlines()[0][:120]}") from None
    if too_deep or depth(raw, MAX_DEPTH) > MAX_DEPTH:
        raise UserError(f"config file {path} nests more than {MAX_DEPTH} levels deep; a config nests two")
    if _shares_a_container(raw):  # a YAML alias of a list or table: a billion of them print for ever
        raise UserError(f"config file {path} repeats a list or table through a YAML alias (*name); write it out")
    raw = {} if raw is None else raw
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise UserError(f"config file {path} must map section names ({', '.join(RunConfig.SECTIONS)}, "
                        f"{RUN_SECTION}) to key: value tables")
    known = set(RunConfig.SECTIONS) | {RUN_SECTION}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UserError(f"config file {path} has unknown section {unknown[0]!r}; known: {', '.join(sorted(known))}")
    return raw


def _shares_a_container(raw) -> bool:
    """Whether one list or mapping stands in two places (only a YAML alias can do that)."""
    seen, todo = set(), [raw]
    while todo:
        v = todo.pop()
        if isinstance(v, (dict, list)):
            if id(v) in seen:
                return True
            seen.add(id(v))
            todo.extend(v.values() if isinstance(v, dict) else v)
    return False


def merge(base: dict, over: dict) -> dict:
    """Section by section: ``over``'s keys replace ``base``'s."""
    out = {section: dict(values) for section, values in base.items()}
    for section, values in over.items():
        out.setdefault(section, {}).update(values)
    return out


def dumps(raw: dict, fmt: str = "yaml") -> str:
    """``raw`` as the text of a config file (TOML has no null: a key whose value is None is left out,
    which reads back as its default, None)."""
    if fmt == "yaml":
        return yaml.safe_dump(raw, sort_keys=False, default_flow_style=False)
    if fmt == "toml":
        import tomli_w

        return tomli_w.dumps({s: {k: v for k, v in vals.items() if v is not None} for s, vals in raw.items()})
    if fmt == "json":
        return json.dumps(raw, indent=2) + "\n"
    raise UserError(f"unknown config format {fmt!r}; choose yaml, toml or json")


def write_config_file(path: Path, raw: dict) -> None:
    atomic_write_text(Path(path), dumps(raw, _format(path)))


def load_run_config(path: Path) -> RunConfig:
    """A config file's ``RunConfig`` (its ``run`` section ignored), validated."""
    raw = read_config_file(path)
    raw.pop(RUN_SECTION, None)
    return RunConfig.from_dict(raw)

