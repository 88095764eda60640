"""Sphinx extension: write the generated reference pages before Sphinx reads any page.

``_generated/*.md`` are made from the library's own tables, so they cannot drift from the code: every ``vae``
command and flag from the parser (``cli.build_parser``), the components from the registries, the bad-input
table from the refusal table the tests check (``tests/inference/cli/test_bad_input.py``), and the results from
``bench/results/*.json``. A page writes a file only when its text changed, so an unchanged page is not read again.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sphinx.application import Sphinx

import reference_pages
import results_pages

GENERATED = Path(__file__).resolve().parents[1] / "_generated"


def write_if_changed(path: Path, text: str) -> None:
    if path.exists() and path.read_text() == text:
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")  # two builds never share it
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_pages(app: Sphinx) -> None:
    GENERATED.mkdir(exist_ok=True)
    pages = {**reference_pages.pages(), **results_pages.pages()}
    for name, text in pages.items():
        write_if_changed(GENERATED / name, text)


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", write_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
