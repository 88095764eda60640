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

import json
import tomllib
from pathlib import Path
import yaml

from pyro_vae.inference.runs.files import atomic_write_text
from pyro_vae.inference.config.sections import RunConfig
from pyro_vae.inference.errors import UserError

FORMATS = {".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".json": "json"}
RUN_SECTION = "run"


def _format(path: Path) -> str:
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UserError(f"config file {path} is neither YAML, TOML nor JSON; name it *.yaml, *.toml or *.json")
    return fmt


def read_config_file(path: Path) -> dict:
    """The file's mapping of sections (``run`` included), unvalidated; one-line errors for the unreadable."""
    path, fmt = Path(path), _format(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"no config file at {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read config file {path}: {err}") from None
    try:
        raw = {"yaml": yaml.safe_load, "toml": tomllib.loads, "json": json.loads}[fmt](text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"config file {path} is not valid {fmt.upper()}: {str(err).splitlines()[0]}") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise UserError(f"config file {path} must map section names ({', '.join(RunConfig.SECTIONS)}, "
                        f"{RUN_SECTION}) to key: value tables")
    known = set(RunConfig.SECTIONS) | {RUN_SECTION}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UserError(f"config file {path} has unknown section {unknown[0]!r}; known: {', '.join(sorted(known))}")
    return raw


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

