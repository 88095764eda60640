"""What a ``vae`` process does with SIGINT and SIGTERM, from its first moment to its last: one line, an exit status.

``pyro_vae.inference.cli.main.main`` runs a command inside ``handling_signals()``. Each signal moves the
process along four stages:

* running: SIGINT raises ``KeyboardInterrupt`` (as Python's own handler does) and SIGTERM raises ``Terminated``,
  so ``finally`` blocks run (a run folder's lock is released, ``atomic_write`` removes its temporary file) and
  ``main`` prints one line, ``vae: interrupted`` (exit 130) or ``vae: terminated`` (exit 143);
* unwinding (that exception is on its way to ``main``): a further signal does not wait for the clean-up; it
  writes that line at once and ends the process with its status (``main([...])`` called in a test's or a
  notebook's process ignores it instead: that process goes on);
* decided (the command returned, or ``main`` is printing the line that ends it): further signals are ignored,
  so exactly one line is printed;
* teardown (after ``main`` returned, when it runs as the program: atexit callbacks such as torch's): a signal
  ends the process at once with the status already decided, saying nothing more; after the atexit callbacks
  (the last of them is this module's, registered before torch's) signals are ignored, since Python would
  otherwise restore their default action for its final clean-up and a signal would end the process by it.

Training takes the signals over while it runs (``pyro_vae.inference.training.loop.stop_on_signals``): the first
asks it to stop after the current step, a second comes back here.

A signal that was ignored when the process started (``SIG_IGN``: a background job of a script, ``nohup``) stays
ignored. A worker of a data-parallel job says nothing: its launcher speaks for the job. This module imports
nothing but the standard library, so that its handlers are in place before torch and Pyro are imported (as long
as the package above it, ``pyro_vae.inference``, imports nothing heavy either). A signal during the interpreter's
own start-up, before any of the package's code runs (``site``, ``.pth`` files), is Python's to report.
"""
from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator, Optional

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130, what a shell reports for a process a SIGINT ended
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143

RUNNING, UNWINDING, DECIDED, TEARDOWN = "running", "unwinding", "decided", "teardown"


class Terminated(BaseException):
    """SIGTERM as an exception, as ``KeyboardInterrupt`` is SIGINT's: a ``BaseException``, so that code catching
    ``Exception`` lets it through to ``main``."""


class _Process:
    """The stage of this process (module docstring), the signal whose exception is unwinding, the decided status."""

    def __init__(self) -> None:
        self.stage = RUNNING
        self.signum: Optional[int] = None
        self.status = 0
        self.said = False
        self.program = False  # the process's own command (not main([...]) called in a test or a notebook)


_process = _Process()
_registered: list = []  # _ignore_signals, once registered with atexit


def _speaks() -> bool:
    """Whether this process reports a signal: not a worker of a data-parallel job (its launcher does)."""
    try:
        return int(os.environ.get("WORLD_SIZE", 1)) <= 1
    except ValueError:
        return True


def line_of(stopped: BaseException) -> str:
    """The line for a signal's exception: its own message when it has one (training's second signal), else
    ``vae: interrupted`` or ``vae: terminated``."""
    what = str(stopped).strip()
    return f"vae: {what or ('terminated' if isinstance(stopped, Terminated) else 'interrupted')}"


def status_of(stopped: BaseException) -> int:
    """130 for a SIGINT (``KeyboardInterrupt``), 143 for a SIGTERM (``Terminated``)."""
    return EXIT_TERMINATED if isinstance(stopped, Terminated) else EXIT_INTERRUPTED


def _write_now(line: str) -> None:
    """``line`` on stderr from inside a signal handler: straight to the file descriptor, once."""
    if _process.said or not _speaks():
        return
    _process.said = True
    try:
        os.write(2, (line + "\n").encode("utf-8", "replace"))
    except OSError:
        pass


def _end_now(status: int) -> None:
    """End the process at once with ``status``, its output flushed where that can be done (no atexit, no
    clean-up: a second signal asked not to wait)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a stream in the middle of a write, closed, or a broken pipe
            pass
    os._exit(status)


def _handler(signum: int, frame) -> None:
    stage = _process.stage
    if stage == RUNNING:
        _process.stage, _process.signum = UNWINDING, signum
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
    if stage == UNWINDING and _process.program:
        first = Terminated() if _process.signum == signal.SIGTERM else KeyboardInterrupt()
        _write_now(line_of(first))
        _end_now(status_of(first))
    if stage == TEARDOWN:
        _end_now(_process.status)
    # DECIDED: the line that ends the command is being printed; this signal changes nothing (nor, in a test's or a
    # notebook's process, one while the first unwinds: that process goes on after main returns)


MAX_LINE = 2000  # characters of the one line kept
LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}  # str.splitlines' breaks


def say(line: str, status: int) -> int:
    """Print ``line``, the one line that ends the command, on stderr (signals from now on are ignored, so no
    second line follows it; a line break in it written as ``\\n``, and cut after ``MAX_LINE`` characters);
    returns ``status``."""
    _process.stage, _process.status = DECIDED, status
    line = line.translate(LINE_BREAKS)  # one line, whatever a path or value holds
    if len(line) > MAX_LINE:  # a megabyte of bad value echoed back helps no one
        line = f"{line[:MAX_LINE]}... ({len(line) - MAX_LINE} characters more)"
    if not _process.said:
        _process.said = True
        try:
            print(line, file=sys.stderr, flush=True)
        except UnicodeEncodeError:  # a path that is not UTF-8, on a strict stream: its bytes escaped
            print(line.encode("utf-8", "backslashreplace").decode("utf-8"), file=sys.stderr, flush=True)
    return status


def stopped(signalled: BaseException) -> int:
    """``main``'s ending for a signal's exception: its one line (not from a data-parallel worker), its status."""
    if not _speaks():
        _process.said = True
    return say(line_of(signalled), status_of(signalled))


def _ignore_signals() -> None:
    """The last atexit callback of a ``vae`` process: what is left of its teardown ignores SIGINT and SIGTERM."""
    if _process.program and _can_set():
        for sig in SIGNALS:
            if signal.getsignal(sig) == _handler:
                signal.signal(sig, signal.SIG_IGN)


def _in_forked_child() -> None:
    """A process forked while a command runs (image decoders, ``DataLoader`` workers) gets Python's own handling
    back: SIGINT raises ``KeyboardInterrupt`` (which torch's worker loop expects) and SIGTERM ends it silently;
    the command's process speaks for it."""
    if signal.getsignal(signal.SIGINT) == _handler:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) == _handler:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


os.register_at_fork(after_in_child=_in_forked_child)


def _can_set() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def handling_signals(program: bool) -> Iterator[None]:
    """SIGINT and SIGTERM handled as the module docstring says while the block runs. ``program``: this call is
    the process's ``vae`` command (``main()`` with no arguments), so the handlers stay in place for the
    interpreter's teardown; otherwise (``main([...])`` called by a test or a notebook) the previous handlers
    come back when the block ends. Off the main thread, where no handler can be set, nothing changes."""
    if not _can_set():
        yield
        return
    _process.__init__()
    _process.program = program
    if program and not _registered:
        _registered.append(atexit.register(_ignore_signals))  # before the commands import torch: run after its own
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    for sig, old in previous.items():
        if old != signal.SIG_IGN:
            signal.signal(sig, _handler)
    try:
        yield
    finally:
        if program:
            _process.stage = TEARDOWN
        else:
            for sig, old in previous.items():
                signal.signal(sig, old if old is not None else signal.SIG_DFL)


def done(status: int) -> None:
    """The command ended with ``status``: signals from now until the block ends are ignored, and in the
    teardown that follows they end the process with this status."""
    _process.stage, _process.status = DECIDED, status
