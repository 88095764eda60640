"""Execute one MyST-NB tutorial outside Sphinx, as the build does (a fresh kernel, a temporary working folder):
``python docs/_ext/run_tutorial.py docs/tutorials/01-train-evaluate-sample.md [--save OUT.ipynb]``.
Prints each cell's time and exits 1 on the first failing cell, with its traceback."""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from myst_nb.core.read import read_myst_markdown_notebook
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def execute(path: Path, save: Path | None = None, timeout: int = 600) -> float:
    """Run every code cell of the tutorial at ``path`` in a fresh kernel; the total seconds."""
    notebook = read_myst_markdown_notebook(path.read_text(), path=path)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": work}})
        with client.setup_kernel():
            for index, cell in enumerate(notebook.cells):
                if cell.cell_type != "code":
                    continue
                began = time.perf_counter()
                try:
                    client.execute_cell(cell, index)
                finally:
                    first = cell.source.splitlines()[0][:70] if cell.source else ""
                    print(f"cell {index:3d}: {time.perf_counter() - began:6.1f} s  {first}")
    if save:
        nbformat.write(notebook, save)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--save", type=Path)
    args = parser.parse_args()
    try:
        total = execute(args.path, args.save)
    except CellExecutionError as failed:
        print(failed, file=sys.stderr)
        return 1
    print(f"{args.path}: {total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
