"""The command, component and refusal references (Markdown), made from the library's own tables."""
from __future__ import annotations


def pages() -> dict[str, str]:
    return {}
