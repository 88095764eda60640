"""The results pages (Markdown tables), made from ``bench/results/*.json``."""
from __future__ import annotations


def pages() -> dict[str, str]:
    return {}
