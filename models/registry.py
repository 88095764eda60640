"""A name -> class table, so that a component is chosen by one string.

Each swappable piece (likelihood, prior, guide, objective) is one small class
registered under a short name; configs and the command line refer to the name.
"""
from __future__ import annotations

from typing import Callable, Dict, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to classes: ``@LIKELIHOODS.register("bernoulli")``."""

    def __init__(self, kind: str):
        self.kind = kind
        self._table: Dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(cls: T) -> T:
            if name in self._table:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._table[name] = cls
            return cls

        return add

    def get(self, name: str) -> T:
        """The class registered as ``name`` (``-`` and ``_`` are the same: ``continuous-bernoulli``)."""
        try:
            return self._table[name.replace("-", "_") if isinstance(name, str) else name]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def in_order(self) -> list[str]:
        """The names in the order they were registered (``names`` sorts them)."""
        return list(self._table)

    def names(self) -> list[str]:
        return sorted(self._table)

    def __contains__(self, name: object) -> bool:
        return (name.replace("-", "_") if isinstance(name, str) else name) in self._table

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
