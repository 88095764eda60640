"""The ``vae`` command: the parser (one subcommand per class registered in ``COMMANDS``: ``run_commands``,
``inspect_commands``, ``coding_commands``, ``experiment_commands``) and the one place errors become
exit statuses: bad input ends in one line on stderr, ``vae: error: ...``, and exit status 2; a signal ends in
one line too, ``vae: interrupted`` (130) or ``vae: terminated`` (143), whenever it comes
(``pyro_vae.inference.cli.entry``).

Importing this module loads nothing heavy: ``main`` puts the signal handlers in place first, then imports the
commands (torch, Pyro, ...). Warnings raised while a command runs are held back: shown when it succeeds, dropped
when it ends in its one line.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
import warnings
from typing import Optional, Sequence

from pyro_vae.inference.cli import entry
from pyro_vae.inference.errors import UserError
from pyro_vae.inference.runs.paths import TEMPORARY  # (the standard library only)

EXIT_USAGE = 2
EXIT_INTERRUPTED = entry.EXIT_INTERRUPTED  # 130
EXIT_TERMINATED = entry.EXIT_TERMINATED  # 143
# Where each command's page lives in the documentation site that 'make docs' builds (a relative path: offline)
DOCS_PAGE = "docs/_build/html/reference/cli.html"


def docs_address(command: Optional[str] = None) -> str:
    """The line that ends ``vae --help`` and each command's help: the address of its docs page."""
    return f"docs: {DOCS_PAGE}{'#vae-' + command if command else ''} (built by 'make docs'; sources in docs/)"


def build_parser() -> argparse.ArgumentParser:
    from pyro_vae.inference.cli import run_commands  # noqa: F401  (each module registers its commands, in this order)
    from pyro_vae.inference.cli import inspect_commands  # noqa: F401
    from pyro_vae.inference.cli import coding_commands  # noqa: F401
    from pyro_vae.inference.cli import experiment_commands  # noqa: F401
    from pyro_vae.inference.cli.command import add_commands
    from pyro_vae.inference.cli.options import OneLineParser

    parser = OneLineParser(prog="vae", description="Variational autoencoders as Pyro programs.", epilog=docs_address())
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    add_commands(sub)  # every registered command (the modules above register theirs when imported)
    for action in sub._choices_actions:  # each command's --help opens with its one line of ``vae --help``
        command = sub.choices[action.dest]
        command.description = command.description or action.help
        command.epilog = docs_address(action.dest)
    return parser


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
NO_PERMISSION = (errno.EACCES, errno.EPERM)


def _file_of(err: OSError) -> str:
    """The file an ``OSError`` is about: a rename's target, an atomic write's target rather than its temporary."""
    name = err.filename2 if err.filename2 is not None else err.filename
    if name is None or isinstance(name, int):
        return "a file"
    name = os.fsdecode(name)
    folder, base = os.path.split(name)
    temporary = TEMPORARY.match(base)
    return os.path.join(folder, temporary["name"]) if temporary else name


def os_error_line(err: OSError) -> str:
    """The line (after ``vae: error: ``) for an ``OSError`` that ended a command, from what its errno says
    happened: no space, no permission, a read-only file system, or else what failed reading or writing."""
    what = " ".join((err.strerror or str(err) or type(err).__name__).split())
    where = _file_of(err)
    if err.errno in NO_SPACE:
        return f"cannot write {where}: {what}; free space or choose another folder"
    if err.errno in NO_PERMISSION:
        return f"cannot read or write {where}: {what}; check the permissions of the file and its folder, or choose " \
               f"another folder"
    if err.errno == errno.EROFS:
        return f"cannot write {where}: {what}; choose a folder on a writable file system"
    return f"cannot read or write {where}: {what}"


def _show(caught: list) -> None:
    """Show recorded warnings as ``warnings.warn`` would have (through ``warnings.showwarning`` where one was set)."""
    show = getattr(warnings, "_showwarnmsg", None)  # the stdlib's dispatch: a replaced showwarning, or the default
    for w in caught:
        if show is not None:
            show(w)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)


def _command(argv: Optional[Sequence[str]]) -> int:
    from pyro_vae.inference.cli.options import apply_config_file, given_options

    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    apply_config_file(args, given_options(parser, args.argv))
    with contextlib.ExitStack() as held:  # a command's loaded run: its store current until the command ends
        args.hold = held.enter_context
        return args.handler(args)


def _run(argv: Optional[Sequence[str]]) -> int:
    """The command and its ending: its status, or one line and exit status 2 (130 or 143 for a training stopped by
    SIGINT or SIGTERM). Warnings it raised are shown when it returns (or fails with a traceback), dropped when it
    ends in a line."""
    from pyro_vae.inference.training.state import TrainingInterrupted  # torch: imported once the handlers are set

    with warnings.catch_warnings(record=True) as caught:
        try:
            status = _command(argv)
        except UserError as err:
            from pyro_vae.inference.process_group import main_process  # a data-parallel job: which process speaks

            who = "vae" if main_process() else f"vae (rank {os.environ['RANK']})"
            return entry.say(f"{who}: error: {err}", EXIT_USAGE)
        except OSError as err:  # a full disk, a file that cannot be read: atomic writes left the old files
            return entry.say(f"vae: error: {os_error_line(err)}", EXIT_USAGE)
        except TrainingInterrupted as stopped:  # the first signal during training: it says what was saved
            from pyro_vae.inference.training.loop import stop_signal

            return entry.say(f"vae: {stopped}", EXIT_TERMINATED if stop_signal() == signal.SIGTERM else EXIT_INTERRUPTED)
        except (KeyboardInterrupt, entry.Terminated):
            raise
        except BaseException:  # --help's SystemExit, a bug's traceback: the warnings too
            _show(caught)
            raise
    _show(caught)
    return status


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``vae ARGV`` (``None``: this process's command line, as the ``vae`` script runs it); its exit status.

    SIGINT and SIGTERM at any moment end it in one line and exit status 130 or 143
    (``pyro_vae.inference.cli.entry``); called with ``argv`` (a test, a notebook) the previous signal handlers
    come back when it returns."""
    warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")
    warnings.filterwarnings("ignore", category=FutureWarning, module="torch.jit")  # pyro.infer.mcmc imports
    with entry.handling_signals(program=argv is None):
        try:
            status = _run(argv)
            entry.done(status)
        except (KeyboardInterrupt, entry.Terminated) as signalled:
            status = entry.stopped(signalled)
        except SystemExit as ended:  # argparse: --help (0), or a parse error it reported itself
            entry.done(ended.code if isinstance(ended.code, int) else int(ended.code is not None))
            raise
    return status


if __name__ == "__main__":
    sys.exit(main())
