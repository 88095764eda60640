"""The ``vae`` command: the parser (one subcommand per class registered in ``COMMANDS``: ``run_commands``,
``inspect_commands``, ``coding_commands``, ``experiment_commands``) and the one place errors become
exit statuses: bad input ends in one line on stderr, ``vae: error: ...``, and exit status 2.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from typing import Optional, Sequence

from pyro_vae.inference.cli import run_commands  # noqa: F401  (each module registers its commands, in this order)
from pyro_vae.inference.cli import inspect_commands  # noqa: F401
from pyro_vae.inference.cli import coding_commands  # noqa: F401
from pyro_vae.inference.cli import experiment_commands  # noqa: F401
from pyro_vae.inference.cli.command import add_commands
from pyro_vae.inference.cli.options import OneLineParser, apply_config_file, given_options
from pyro_vae.inference.errors import UserError
from pyro_vae.inference.training.state import TrainingInterrupted

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# Where each command's page lives in the documentation site that 'make docs' builds (a relative path: offline)
DOCS_PAGE = "docs/_build/html/reference/cli.html"


def docs_address(command: Optional[str] = None) -> str:
    """The line that ends ``vae --help`` and each command's help: the address of its docs page."""
    return f"docs: {DOCS_PAGE}{'#vae-' + command if command else ''} (built by 'make docs'; sources in docs/)"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="vae", description="Variational autoencoders as Pyro programs.", epilog=docs_address())
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    add_commands(sub)  # every registered command (the modules above register theirs when imported)
    for action in sub._choices_actions:  # each command's --help opens with its one line of ``vae --help``
        command = sub.choices[action.dest]
        command.description = command.description or action.help
        command.epilog = docs_address(action.dest)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")
    warnings.filterwarnings("ignore", category=FutureWarning, module="torch.jit")  # pyro.infer.mcmc imports
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)
        apply_config_file(args, given_options(parser, args.argv))
        with contextlib.ExitStack() as held:  # a command's loaded run: its store current until the command ends
            args.hold = held.enter_context
            return args.handler(args)
    except UserError as err:
        from pyro_vae.inference.process_group import main_process  # in a data-parallel job, say which process speaks

        print(f"vae{'' if main_process() else ' (rank ' + os.environ['RANK'] + ')'}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:  # a full disk, a folder that cannot be written: atomic writes left the old files
        print(f"vae: error: cannot write {err.filename or 'a file'}: {err.strerror or err}; free space or "
              f"choose another folder", file=sys.stderr)
        return EXIT_USAGE
    except TrainingInterrupted as stopped:
        print(f"vae: {stopped}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("vae: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
