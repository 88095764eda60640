"""One way to extend every part: a name -> class table, and the options a class declares.

Each swappable piece (likelihood, prior, guide, objective, engine, dataset loader, KL schedule) is one
small class registered under a short name; configs and the command line refer to the name. A class with
options declares them in its own small ``Config`` dataclass of ``option(...)`` fields (as pythae's
``BetaVAEConfig``) and builds itself with ``from_config``; the config keys, the ``vae`` flags and their help
are made from those fields (``pyro_vae.inference.config``), so an option is written in one place.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import typing
from typing import Any, Callable, Dict, Generic, Iterator, Optional, TypeVar

T = TypeVar("T")


def option(default: Any, help: str, *, flag: Any = None, choices: Any = None,
           negated: Optional[str] = None, metavar: Any = None, above: Optional[float] = None,
           minimum: Optional[float] = None, maximum: Optional[float] = None, check: Optional[Callable] = None,
           paired: bool = False, required: bool = False) -> Any:
    """A config field and everything its command-line flag needs: ``help`` (empty: a hidden flag); ``choices``
    (``Choices``, or a registry: names read when shown; such a field's value accepts ``-`` for ``_``); ``flag``
    (default ``--field-name``; a tuple for aliases: ``("-o", "--output")``); ``negated``: a boolean field set to
    False by this store-true flag instead; ``paired``: a boolean with ``--flag`` and ``--no-flag``;
    ``metavar``: the names of a list field's values (``("H", "W")``: the flag takes that many);
    ``above``/``minimum``/``maximum``: the value must be > ``above`` / >= ``minimum`` / <= ``maximum`` (checked in
    one line, as every number's being finite and within 64 bits: ``bound_problem``); ``check``: a function of the
    value that says why it is refused (None: taken), for what bounds cannot say (``device_problem``);
    ``required``: a command option that must be given."""
    return dataclasses.field(default=default, metadata={"help": help, "flag": flag, "choices": choices,
                                                        "negated": negated, "metavar": metavar, "above": above,
                                                        "minimum": minimum, "maximum": maximum, "check": check,
                                                        "paired": paired, "required": required})


# The largest seed: Pyro's set_rng_seed hands it to numpy's legacy seeding (below 2**32; a data-parallel rank's
# ``seed + 7919 * rank + steps`` is taken modulo 2**32).
SEED_MAX = 2**32 - 1
INT64 = (-2**63, 2**63 - 1)  # what torch and numpy take as an integer


class Choices(tuple):
    """A fixed set of names an option takes, and what they are (for the one-line refusal of another):
    ``Choices("binarization", ("auto", "dynamic", "static", "none"))``."""

    kind: str

    def __new__(cls, kind: str, names):
        obj = super().__new__(cls, names)
        obj.kind = kind
        return obj


def choice_names(choices) -> list[str]:
    """The names a ``Choices`` or a registry holds, as a list (a registry's sorted)."""
    return list(choices.names() if hasattr(choices, "names") else choices)


def accepted(cls, **options) -> dict:
    """The ``options`` that ``cls``'s constructor names (all of them when it takes ``**kwargs``)."""
    params = inspect.signature(cls).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return options
    names = {p.name for p in params}
    return {k: v for k, v in options.items() if k in names}


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def bound_problem(f: dataclasses.Field, value: Any) -> Optional[str]:
    """Why ``value`` is refused by what ``option(...)`` declared for ``f`` (None: taken): every number finite (no
    nan or infinity) and an integer within 64 bits; then the bounds ``above``, ``minimum``, ``maximum`` (for a list,
    of each item) and the field's ``check``."""
    meta = f.metadata
    if value is None:
        return None
    values = value if isinstance(value, (list, tuple)) else [value]
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
        return "must be a finite number (not nan or infinity)"
    if any(isinstance(v, int) and not INT64[0] <= v <= INT64[1] for v in numbers):
        return "must be a 64-bit integer (between -2**63 and 2**63 - 1)"
    above, minimum, maximum = meta.get("above"), meta.get("minimum"), meta.get("maximum")
    if above is not None and not all(v > above for v in numbers):
        return "must be positive" if above == 0 else f"must be > {_number(above)}"
    if minimum is not None and not all(v >= minimum for v in numbers):
        return f"must be >= {_number(minimum)}"
    if maximum is not None and not all(v <= maximum for v in numbers):
        return f"must be <= {_number(maximum)}"
    check = meta.get("check")
    return check(value) if check is not None else None


class Registry(Generic[T]):
    """Maps names to classes: ``@LIKELIHOODS.register("bernoulli")``. ``-`` and ``_`` in a name are the same
    (``continuous-bernoulli``); a name keeps the spelling it was registered with (``mnist-embedded``)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._table: Dict[str, tuple[str, Any]] = {}  # normalized name -> (spelling, class or "module:Class")

    @staticmethod
    def _key(name) -> Any:
        return name.replace("-", "_") if isinstance(name, str) else name

    def register(self, name: str, replace: bool = False) -> Callable[[T], T]:
        """A decorator that registers a class as ``name``: ``@LIKELIHOODS.register("bernoulli")``.

        Parameters
        ----------
        name : str
            The name configs and flags use (``-`` and ``_`` are the same when it is looked up).
        replace : bool
            Register over an existing entry of that name (else a ``ValueError``).

        Returns
        -------
        callable
            The decorator, which returns the class unchanged.
        """
        def add(cls: T) -> T:
            if self._key(name) in self._table and not replace:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._table[self._key(name)] = (name, cls)
            return cls

        return add

    def register_lazily(self, name: str, where: str) -> None:
        """Register ``name`` for the class ``where`` names (``"package.module:Class"``), imported at its first
        ``get``: the name is a valid choice before its module (and what it imports) is loaded."""
        if self._key(name) in self._table:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._table[self._key(name)] = (name, where)

    def unregister(self, name: str) -> T:
        """Remove ``name`` (a test's toy component, a plugin unloaded) and return its class."""
        return self._table.pop(self._key(name))[1]

    def get(self, name: str) -> T:
        """The class registered as ``name``."""
        try:
            spelling, cls = self._table[self._key(name)]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None
        if isinstance(cls, str):  # registered lazily: its module is imported now, and the class kept
            module, attr = cls.split(":")
            cls = getattr(importlib.import_module(module), attr)
            self._table[self._key(name)] = (spelling, cls)
        return cls

    __getitem__ = get

    def canonical(self, name: str) -> str:
        """``name`` as it was registered (``continuous-bernoulli`` -> ``continuous_bernoulli``); unknown: as given."""
        entry = self._table.get(self._key(name))
        return entry[0] if entry else name

    def in_order(self) -> list[str]:
        """The names in the order they were registered (``names`` sorts them)."""
        return [name for name, _ in self._table.values()]

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self.in_order())

    def items(self) -> list[tuple[str, T]]:
        """(name, class) pairs in registration order, each lazily registered class imported."""
        return [(name, self.get(name)) for name in self.in_order()]

    def __contains__(self, name: object) -> bool:
        return self._key(name) in self._table

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._table)


def declared_options(registry: Registry) -> dict[str, tuple[Any, dataclasses.Field, list[str]]]:
    """Every option the classes of ``registry`` declare in their ``Config``, each once: name -> (type, field,
    the names of the classes that declare it). An option two classes share (``num_particles``,
    ``prior_components``) must be declared alike by both."""
    found: dict = {}
    for name in registry.in_order():
        config = getattr(registry.get(name), "Config", None)
        if config is None:
            continue
        hints = typing.get_type_hints(config)
        for f in dataclasses.fields(config):
            if f.name in found:
                known = found[f.name][1]
                if (known.default, dict(known.metadata)) != (f.default, dict(f.metadata)):
                    raise TypeError(f"{registry.kind} {name!r} declares option {f.name!r} unlike "
                                    f"{registry.kind} {found[f.name][2][0]!r} does")
                found[f.name][2].append(name)
                continue
            found[f.name] = (hints[f.name], f, [name])
    return found
