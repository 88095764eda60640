"""One writer per run folder, and readers that see a consistent snapshot of it.

A writer (``vae train``, ``--resume``, ``--force``, ``rd-sweep``) holds an exclusive ``flock`` on
``RUN/run.lock`` for as long as it writes; the kernel drops the lock when the process ends however it
ends, so a ``kill -9`` never leaves a stale lock. The holder writes its pid and command line into the
file, and a second writer is refused in one line naming them.

Readers (``evaluate``, ``sample``, ``report``, ``diagnose``, ``compress``) need the config and the weights
of the same epoch. The writer replaces the files of a snapshot (config at the start; metrics, weights and
checkpoint at each epoch end) while holding ``RUN/snapshot.lock`` exclusively, for milliseconds; a reader
loads them holding it shared, waiting up to ``SNAPSHOT_WAIT`` seconds for a writer to finish.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Iterator, Optional

from pyro_vae.inference.errors import UserError
from pyro_vae.inference.runs.files import remove_stray_temporaries
from pyro_vae.inference.runs.paths import open_regular
from pyro_vae.inference.runs.layout import LOCK_FILES, SNAPSHOT_LOCK  # noqa: F401  (LOCK_FILES: read by callers)
from pyro_vae.inference.runs.layout import RUN_LOCK as LOCK

SNAPSHOT_WAIT = 30.0  # seconds a reader waits for a writer to finish replacing a snapshot
PROBE_WAIT = 0.5  # seconds a new writer retries a lock held shared by another process's probe

_held: dict[str, list] = {}  # resolved folder -> [fd, depth]: this process's writer locks (re-entrant)


def command_line() -> str:
    """This process's command as the user typed it: ``vae train --out runs/a`` (not the interpreter's path)."""
    argv = list(sys.argv) or ["python"]
    first = Path(argv[0]).name
    if first in ("__main__.py", "vae") or argv[0].endswith("inference/cli/__main__.py"):
        first = "vae"
    elif first == "-c":
        first = "python -c"
    return " ".join([first, shlex.join(argv[1:])]).strip()


def holder(folder: Path) -> str:
    """Who holds ``folder``'s writer lock, from what it wrote into the lock file: ``process 123 (vae train ...)``."""
    try:
        fd = open_regular(Path(folder) / LOCK)
    except UserError:
        fd = None
    text = "" if fd is None else os.fdopen(fd, "rb").read(4096).decode("utf-8", "replace")
    pid, _, command = text.partition("\n")
    if not pid.strip().isdigit():
        return "another process"
    command = command.strip()
    return f"process {pid.strip()}" + (f" ({command})" if command else "")


def writer_active(folder: Path) -> Optional[str]:
    """The holder of ``folder``'s writer lock (``holder``) if one is held now, else None. Takes nothing."""
    path = Path(folder) / LOCK
    if not path.is_file() or str(Path(folder).resolve()) in _held:
        return None
    try:
        fd = open_regular(path)
    except UserError:
        return None
    if fd is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return holder(folder)
    finally:
        os.close(fd)  # closing drops a lock taken just now


def _refusal(folder: Path, remedy: str, who: Optional[str] = None) -> UserError:
    return UserError(f"run folder {folder} is in use: {who or holder(folder)} is writing it; {remedy}")


def refuse_if_writing(folder: Path, remedy: str = "wait for it to end or choose another --out") -> None:
    """Refuse, naming the holder, a folder another process is writing now (takes nothing)."""
    who = writer_active(folder)
    if who:
        raise _refusal(folder, remedy, who)


def _forget_in_child() -> None:
    """In a forked child (an image-decoding pool), close the inherited lock descriptors: the lock then dies
    with the writer, never with an orphaned worker."""
    for fd, _ in _held.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_forget_in_child)


def _acquire(folder: Path) -> Optional[int]:
    """An exclusive lock on ``folder/run.lock`` (the file as it is now at that path), or None if another
    process holds it. A probe (``writer_active``) holds it shared for microseconds: retried briefly."""
    path = folder / LOCK
    deadline = time.monotonic() + PROBE_WAIT
    while True:
        fd = open_regular(path, os.O_RDWR | os.O_CREAT)  # never through a link, nor a pipe or device in its place
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() > deadline:
                return None
            time.sleep(0.01)
            continue
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the file was removed (a writer that created the folder gave it back): take the new one


@contextlib.contextmanager
def writing(folder: Path, remedy: str = "wait for it to end or choose another --out") -> Iterator[Path]:
    """Hold ``folder``'s writer lock inside the block (creating the folder if need be; a folder this call
    created and nothing but the lock files went into is removed again at the end). A lock another process
    holds is refused at once with ``remedy``; this process's own lock is re-entrant."""
    folder = Path(folder)
    key = str(folder.resolve())
    if key in _held:
        _held[key][1] += 1
        try:
            yield folder
        finally:
            _held[key][1] -= 1
        return
    if folder.exists() and not folder.is_dir():
        raise UserError(f"output path {folder} exists and is not a folder; choose another --out")
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create output folder {folder}: {err.strerror}; choose another --out") from None
    fd = _acquire(folder)
    if fd is None:
        raise _refusal(folder, remedy)
    _held[key] = [fd, 1]
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n{command_line()}\n".encode("utf-8", "surrogateescape"), 0)
        os.close(open_regular(folder / SNAPSHOT_LOCK, os.O_RDONLY | os.O_CREAT))  # readers lock it from now on
        remove_stray_temporaries(folder)  # of a writer killed, or stopped by a full disk, before this one
        yield folder
    finally:
        del _held[key]
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # an ended writer leaves no name behind (a killed one leaves a name but no lock)
            if created and set(os.listdir(folder)) <= set(LOCK_FILES):  # removed while still locked
                for name in LOCK_FILES:
                    (folder / name).unlink(missing_ok=True)
                folder.rmdir()
        os.close(fd)


def stamp(path: Path) -> Optional[tuple]:
    """What tells one writing of a file from another: inode, size and modification time (an atomic replace, as
    every run-folder file is written, changes them); None if there is no file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


@contextlib.contextmanager
def adding_to(folder: Path, marker: Path, marked: Optional[tuple]) -> Iterator[None]:
    """Inside the block a reader writes its result (an evaluation, samples, diagnostics, a report) into
    ``folder``: under the shared snapshot lock, so that a retrain cannot clear the folder meanwhile, and only
    if ``marker`` (the run's config file) is still the one read (``marked``, its ``stamp`` then), so that no
    result of one run lands beside another's config."""
    with snapshot(folder):
        if stamp(marker) != marked:
            raise UserError(f"run folder {folder} was trained anew while this command ran (its {marker.name} was "
                            f"replaced); nothing was written into it: run the command again")
        yield


@contextlib.contextmanager
def snapshot(folder: Path, write: bool = False, wait: float = SNAPSHOT_WAIT) -> Iterator[None]:
    """Inside the block, nobody else replaces ``folder``'s snapshot. ``write``: this process (the writer)
    replaces it, waiting for readers as long as they read; otherwise it reads it, waiting up to ``wait``
    seconds for the writer. A folder without ``snapshot.lock`` has had no writer since it was made (a writer
    creates the file before it writes anything): nothing to wait for."""
    fd = open_regular(Path(folder) / SNAPSHOT_LOCK, os.O_RDONLY | (os.O_CREAT if write else 0))
    if fd is None:
        yield
        return
    deadline = time.monotonic() + wait
    try:
        if write:
            fcntl.flock(fd, fcntl.LOCK_EX)  # readers hold it to read files, or to write their results (adding_to)
        else:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise UserError(f"run folder {folder} is being rewritten by {holder(folder)} and did not "
                                        f"settle within {wait:g} s; try again when it has finished") from None
                    time.sleep(0.05)
        yield
    finally:
        os.close(fd)
