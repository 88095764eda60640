"""A config section: its own fields, and the options of the components it names, as one flat table.

A section (``ModelConfig``, ``GuideConfig``, ...) declares its own fields with ``option(...)``; the
components it chooses by name (``COMPONENTS``: the field that holds the name -> its registry) declare
theirs in their own ``Config`` (``pyro_vae.models.registry.declared_options``). Both are keys of the
section: ``ModelConfig(prior="mog", prior_components=5)``, ``{"model": {"prior_components": 5}}`` in
``config.json``, ``--prior-components 5``. A component registered later (a user's prior) brings its options
with it. Values are checked for type when read and for bounds (``option(..., above=0)``) by ``validate``.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import MISSING, fields
from typing import Any, ClassVar

from pyro_vae.models.registry import Registry, bound_problem, declared_options

from pyro_vae.inference.errors import ConfigError


def _yaml_hint(base: type, value: Any) -> str:
    """YAML 1.1 reads ``1e-3`` as text (a number with an exponent needs a dot and a sign there: ``1.0e-3``):
    say how to write the number it meant."""
    if base not in (int, float) or not isinstance(value, str) or "e" not in value.lower():
        return ""
    try:
        number = float(value)
    except ValueError:
        return ""
    if not math.isfinite(number):
        return ""
    meant = int(number) if base is int and number.is_integer() else number
    return f" (YAML 1.1 reads {value} as text: an exponent needs a dot and a sign, 1.0e-3; write {meant!r})"


def _check_type(where: str, name: str, value: Any, annotation: Any) -> Any:
    optional = typing.get_origin(annotation) is typing.Union and type(None) in typing.get_args(annotation)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where}.{name} must not be null")
    base = next(a for a in typing.get_args(annotation) if a is not type(None)) if optional else annotation
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise ConfigError(f"{where}.{name} must be a finite number (not nan or infinity), got {value}") from None
    if base in (int, float, str, bool) and (not isinstance(value, base) or (base is int and isinstance(value, bool))):
        raise ConfigError(f"{where}.{name} must be {base.__name__}, got {value!r}{_yaml_hint(base, value)}")
    if typing.get_origin(base) is list:
        item = typing.get_args(base)[0]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, item) and not isinstance(v, bool)
                                                           for v in value):
            raise ConfigError(f"{where}.{name} must be a list of {item.__name__}, got {value!r}")
        return list(value)
    return value


def one_of(what: str, value: str, choices) -> None:
    """Refuse a name that is not among ``choices`` (a tuple or a registry), listing them."""
    if value not in choices:
        raise ConfigError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default


class Section:
    """The base of the config sections: a flat table of the section's own fields and its components' options,
    a JSON round trip with unknown-key and type checks, and the bound checks of every option."""

    SECTION: ClassVar[str] = ""
    COMPONENTS: ClassVar[dict[str, Registry]] = {}

    def __init__(self, **values):
        table = self.options()
        unknown = sorted(set(values) - set(table))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no option {unknown[0]!r}")
        for name, (_, f) in table.items():
            object.__setattr__(self, name, values[name] if name in values else _default(f))

    def __getattr__(self, name: str) -> Any:  # an option of a component registered after this config was made
        if name.startswith("_"):
            raise AttributeError(name)
        entry = type(self).options().get(name)
        if entry is None:
            raise AttributeError(f"{type(self).__name__} has no option {name!r}")
        return _default(entry[1])

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.to_dict().items())})"

    @classmethod
    def own_fields(cls) -> dict[str, tuple[Any, dataclasses.Field]]:
        """The section's own fields (not its components' options): name -> (type, field)."""
        hints = typing.get_type_hints(cls)
        return {f.name: (hints[f.name], f) for f in fields(cls)}  # type: ignore[arg-type]  # each section is a dataclass

    @classmethod
    def component_options(cls) -> dict[str, tuple[Any, dataclasses.Field, list[str]]]:
        """The options the registered components of this section declare: name -> (type, field, declared by)."""
        found: dict = {}
        for registry in cls.COMPONENTS.values():
            found.update(declared_options(registry))
        return found

    @classmethod
    def options(cls) -> dict[str, tuple[Any, dataclasses.Field]]:
        """Every key of the section: its own fields, then its components' options (what the flags are made of)."""
        table = cls.own_fields()
        for name, (kind, f, _) in cls.component_options().items():
            if name in table:
                raise TypeError(f"a component option {name!r} has the name of a {cls.__name__} field")
            table[name] = (kind, f)
        return table

    def to_dict(self) -> dict:
        """The own fields, and the options of the library's components and of the chosen ones (so that a run's
        ``config.json`` names no option of a component it does not use that another process may lack)."""
        chosen = {getattr(self, key) for key in self.COMPONENTS}
        out = {name: getattr(self, name) for name in self.own_fields()}
        for registry in self.COMPONENTS.values():
            for name, (_, _, owners) in declared_options(registry).items():
                if any(owner in chosen or registry.get(owner).__module__.startswith("pyro_vae.") for owner in owners):
                    out[name] = getattr(self, name)
        return {k: list(v) if isinstance(v, list) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, raw: Any, where: str = ""):
        """The section ``raw`` describes, its keys and their types checked (bounds: ``validate``)."""
        where = where or cls.SECTION or cls.__name__
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} must be a JSON object, got {type(raw).__name__}")
        table = cls.options()
        unknown = sorted(set(raw) - set(table))
        if unknown:
            raise ConfigError(f"{where} has unknown key {unknown[0]!r}; known keys: {', '.join(sorted(table))}")
        values = {k: _check_type(where, k, v, table[k][0]) for k, v in raw.items()}
        values = {k: table[k][1].metadata["choices"].canonical(v)
                  if hasattr(table[k][1].metadata.get("choices"), "canonical") and isinstance(v, str) else v
                  for k, v in values.items()}
        return cls(**values)

    def validate(self):
        """Every option's declared choices and bounds, then the section's own rules (``check_rules``); ``self``."""
        where = self.SECTION or type(self).__name__
        for name, (_, f) in self.options().items():
            value, choices = getattr(self, name), f.metadata.get("choices")
            if choices is not None and isinstance(value, str):
                one_of(getattr(choices, "kind", name.replace("_", " ")), value, choices)
            problem = bound_problem(f, value)
            if problem:
                raise ConfigError(f"{where}.{name} {problem}, got {value!r}")
        self.check_rules()
        return self

    def check_rules(self) -> None:
        """The section's own rules across options, run last by ``validate`` (nothing here; a section overrides it)."""
        pass

    def copy(self):
        """A new section with the same values (lists copied too)."""
        values = {name: getattr(self, name) for name in self.options()}
        return type(self)(**{k: list(v) if isinstance(v, list) else v for k, v in values.items()})
