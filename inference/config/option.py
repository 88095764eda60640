"""``option``: a config field with everything its command-line flag needs (one place per option).

Kept apart from ``sections.py`` so that the components that own a small config (each objective's
``Config``) declare their knobs with it without importing the run config."""
from __future__ import annotations

from dataclasses import field
from typing import Any, Optional


def option(default: Any, help: str, *, flag: Optional[str] = None, choices: Any = None,
           negated: Optional[str] = None, metavar: Optional[tuple] = None) -> Any:
    """A config field and everything its command-line flag needs: ``help``; ``choices`` (a tuple, or a
    registry: names read when shown; such a field's value accepts ``-`` for ``_``); ``flag`` (default
    ``--field-name``); ``negated``: a boolean field set to False by this store-true flag instead; ``metavar``:
    the names of a list field's values (``("H", "W")``: the flag takes that many)."""
    return field(default=default, metadata={"help": help, "flag": flag, "choices": choices, "negated": negated,
                                            "metavar": metavar})


def choice_names(choices) -> list[str]:
    return list(choices.names() if hasattr(choices, "names") else choices)
