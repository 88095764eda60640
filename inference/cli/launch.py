"""Launching ``vae`` as a data-parallel job: ``torchrun`` on this machine, with one-line failures."""
from __future__ import annotations

import os
import subprocess
import sys


def launch(nproc: int, argv: list[str]) -> int:
    """``vae ARGV`` in ``nproc`` processes on this machine (``torchrun --standalone``); its exit status."""
    command = [sys.executable, "-c", "from pyro_vae.inference.cli.launch import torchrun; torchrun()", "--standalone",
               f"--nproc-per-node={nproc}", "-m", "pyro_vae.inference.cli", *argv]
    threads = max(1, (os.cpu_count() or 1) // nproc)  # each process its share of the cores
    return subprocess.call(command, env={"OMP_NUM_THREADS": str(threads), **os.environ})


def torchrun() -> None:
    """``torchrun`` (``torch.distributed.run``) on ``sys.argv``; a failed worker ends it with one line
    naming the first failure instead of the launcher's traceback."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main

    try:
        main(sys.argv[1:])
    except SignalException as stopped:  # Ctrl-C or a scheduler's SIGTERM: the workers got it too
        print(f"vae: the job was stopped by {stopped.sigval.name}", file=sys.stderr)
        sys.exit(130)
    except ChildFailedError as failed:
        rank, failure = failed.get_first_failure()
        how = f"signal {failure.signal_name()}" if failure.exitcode < 0 else f"exit status {failure.exitcode}"
        print(f"vae: worker rank {rank} (pid {failure.pid}) ended first, by {how}", file=sys.stderr)
        sys.exit(1)


def without_option(argv: list[str], name: str) -> list[str]:
    """``argv`` less ``name VALUE`` and ``name=VALUE``."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out
