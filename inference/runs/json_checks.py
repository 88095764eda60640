"""JSON checked before use: UTF-8, nested at most ``MAX_DEPTH`` deep (``parse_json``), and of a schema
(``problem``). The run folder's files and their schemas are in ``pyro_vae.inference.runs.layout``.

A schema is a Python value: ``int``, ``float`` (a number), ``str``, ``bool``, ``ANY`` (any JSON value),
``Maybe(s)`` (null or ``s``), ``[s]`` (a list of ``s``) and ``Obj(required, optional, rest)`` (an object:
these keys, these others if present, and any further key of schema ``rest``, none if ``rest`` is None).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from pyro_vae.inference.errors import UserError

MAX_JSON_BYTES = 64 << 20  # the largest diagnostics summary (10^4 points) is a few MB
MAX_DEPTH = 32  # the deepest file the toolkit writes nests 6 levels
ANY = object()


@dataclass(frozen=True)
class Maybe:
    """null, or a value of ``schema``."""
    schema: Any


@dataclass(frozen=True)
class Obj:
    """An object with the ``required`` keys, the ``optional`` ones if present, further keys only of ``rest``."""
    required: dict = field(default_factory=dict)
    optional: dict = field(default_factory=dict)
    rest: Any = None


def problem(value, schema, where: str = "") -> Optional[str]:
    """Why ``value`` is not of ``schema`` (naming the key), or None."""
    at = f" at {where}" if where else ""
    if schema is ANY:
        return None
    if isinstance(schema, Maybe):
        return None if value is None else problem(value, schema.schema, where)
    if isinstance(schema, tuple):
        return None if any(problem(value, s) is None for s in schema) else \
            f"{_kind(value)}{at}, where {' or '.join(map(_name, schema))} belongs"
    if isinstance(schema, list):
        if not isinstance(value, list):
            return f"{_kind(value)}{at}, where a list belongs"
        return next((p for i, v in enumerate(value) if (p := problem(v, schema[0], f"{where}[{i}]"))), None)
    if isinstance(schema, Obj):
        if not isinstance(value, dict):
            return f"{_kind(value)}{at}, where an object belongs"
        missing = next((key for key in schema.required if key not in value), None)
        if missing is not None:
            return f"no {missing!r}{at}"
        for key, v in value.items():
            inner = schema.required.get(key, schema.optional.get(key, schema.rest))
            if inner is None:
                return f"an unknown key {key!r}{at}"
            found = problem(v, inner, f"{where}.{key}" if where else key)
            if found:
                return found
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) if schema is float else \
        isinstance(value, int) and not isinstance(value, bool) if schema is int else isinstance(value, schema)
    return None if ok else f"{_kind(value)}{at}, where {_name(schema)} belongs"


def _name(schema) -> str:
    return {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}.get(schema, "a value")


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return "a list" if isinstance(value, list) else "an object"


def depth(value, limit: int = 1 << 30) -> int:
    """How deeply ``value`` nests lists and objects (a number or string: 0); more than ``limit`` once it finds
    that much (then it stops). Each object is walked once, so YAML aliases shared a billion times cost nothing; an
    object inside itself (a self-referencing alias) nests endlessly: more than ``limit``."""
    heights: dict[int, int] = {}
    inside: set[int] = set()
    todo = [(value, False)]
    while todo:
        v, leaving = todo.pop()
        if not isinstance(v, (dict, list)):
            continue
        children = [c for c in (v.values() if isinstance(v, dict) else v) if isinstance(c, (dict, list))]
        if leaving:
            inside.discard(id(v))
            heights[id(v)] = 1 + max((heights[id(c)] for c in children), default=0)
            if heights[id(v)] > limit:
                return heights[id(v)]
        elif id(v) in inside:
            return limit + 1
        elif id(v) not in heights:
            inside.add(id(v))
            todo.append((v, True))
            todo.extend((c, False) for c in children)
    return heights.get(id(value), 0)


def parse_json(text: bytes, path: Path):
    """``text`` as JSON: UTF-8 and nested at most ``MAX_DEPTH`` deep, else one line naming ``path``."""
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{path} is damaged: it is not UTF-8 text (byte {err.start})") from None
    try:
        value = json.loads(decoded)
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is damaged: not JSON ({err.msg}, line {err.lineno} column {err.colno})") from None
    except RecursionError:
        value = None  # nested deeper than the decoder's stack: deeper than MAX_DEPTH
    except ValueError as err:  # an integer of more than 4300 digits
        raise UserError(f"{path} is damaged: {str(err).splitlines()[0][:120]}") from None
    if value is None and decoded.strip() != "null" or depth(value, MAX_DEPTH) > MAX_DEPTH:
        raise UserError(f"{path} is damaged: it nests more than {MAX_DEPTH} levels deep")
    return value
