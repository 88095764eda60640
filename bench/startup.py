"""Benchmark: start-up time of the ``vae`` command against importing torch and pyro, in one run.

    python bench/startup.py                       # this checkout
    python bench/startup.py --also OLD_CHECKOUT   # and another checkout of the project, timed in the same run

Each command is a fresh Python process (``python -m pyro_vae.inference.cli --help``, ``... train --help`` and
``python -c "import torch, pyro"``), run ``--repeats`` times in turn; the medians and the ratios to the
import are printed and written as JSON.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from pyro_vae.inference.runs.files import write_json

COMMANDS = {"import torch, pyro": ["-c", "import torch, pyro"], "vae --help": ["-m", "pyro_vae.inference.cli", "--help"],
            "vae train --help": ["-m", "pyro_vae.inference.cli", "train", "--help"]}


def seconds(args: list[str], checkout: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=checkout, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--also", type=Path, default=None, help="another checkout to time in the same run")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", default="bench/results/startup.json")
    args = parser.parse_args()
    checkouts = {"this": Path.cwd()} | ({"other": args.also.resolve()} if args.also else {})
    times: dict = {(c, name): [] for c in checkouts for name in COMMANDS}
    for _ in range(args.repeats):  # interleaved, so drift in the machine's load hits every command alike
        for c, path in checkouts.items():
            for name, command in COMMANDS.items():
                times[(c, name)].append(seconds(command, path))
    rows = []
    for c in checkouts:
        base = statistics.median(times[(c, "import torch, pyro")])
        for name in COMMANDS:
            median = statistics.median(times[(c, name)])
            rows.append({"checkout": c, "command": name, "seconds": median, "vs_import": median / base})
            print(f"{c:6s} {name:20s} {median:6.2f} s  {median / base:5.2f}x the import")
    write_json(Path(args.json), {"repeats": args.repeats, "rows": rows})
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
