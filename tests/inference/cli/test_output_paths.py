"""Every output option of every command (found by its declared ``check``: ``output_file_problem`` or
``output_folder_problem``) refuses, before anything loads, a path that writing would replace or reach through:
a device, a named pipe, a link to a file outside, a folder given for a file, a file given for a folder, a path in
a folder that does not exist, a run's own weights, config or metrics. One line naming the flag, exit status 2,
and the thing named left as it was."""
import dataclasses
import os
from pathlib import Path
from typing import Callable, NamedTuple

import pytest

from pyro_vae.inference.cli import coding_commands, experiment_commands, inspect_commands, run_commands  # noqa: F401
from pyro_vae.inference.cli.command import COMMANDS
from pyro_vae.inference.cli.options import flag_of
from pyro_vae.inference.runs.layout import output_file_problem
from pyro_vae.inference.runs.paths import output_folder_problem

from tests.helpers import refuse


def _outputs():
    """(command, flag, kind) of each output option: kind "file" or "folder"."""
    found = []
    for name in COMMANDS.in_order():
        options = COMMANDS.get(name).Options
        for f in dataclasses.fields(options) if options else ():
            check = f.metadata.get("check")
            if check in (output_file_problem, output_folder_problem):
                flag = flag_of(f)
                found.append((name, flag[-1] if isinstance(flag, tuple) else flag,
                              "file" if check is output_file_problem else "folder"))
    return found


class Hostile(NamedTuple):
    id: str
    make: Callable[[Path], Path]  # builds the thing in a scratch folder, returns the path to give
    refused_for: tuple  # "file", "folder"
    said: str


def _fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "pipe")
    return tmp / "pipe"


def _link_to_file(tmp: Path) -> Path:
    (tmp / "outside.txt").write_text("keep me")
    (tmp / "link").symlink_to(tmp / "outside.txt")
    return tmp / "link"


def _folder(tmp: Path) -> Path:
    (tmp / "folder").mkdir()
    (tmp / "folder" / "inside.txt").write_text("keep me")
    return tmp / "folder"


def _file(tmp: Path) -> Path:
    (tmp / "plain.txt").write_text("keep me")
    return tmp / "plain.txt"


def _runs_own(name: str) -> Callable[[Path], Path]:
    """A file of a run's record (``layout.RECORD``) in a folder that holds a run: the command's output would replace
    the run's weights or config (``vae evaluate RUN --json RUN/weights.pt`` did, exit 0)."""
    def make(tmp: Path) -> Path:
        (tmp / "other-run").mkdir()
        for kept in ("config.json", "weights.pt", "metrics.jsonl"):
            (tmp / "other-run" / kept).write_text("keep me")
        return tmp / "other-run" / name
    return make


HOSTILE = [
    Hostile("device", lambda tmp: Path(os.devnull), ("file", "folder"), "names a device"),
    Hostile("named-pipe", _fifo, ("file", "folder"), "names a named pipe"),
    Hostile("link-to-a-file", _link_to_file, ("file", "folder"), "names a symbolic link"),
    Hostile("folder-for-a-file", _folder, ("file",), "names a folder"),
    Hostile("file-for-a-folder", _file, ("folder",), "not a folder"),
    Hostile("missing-parent", lambda tmp: tmp / "no" / "such" / "out.png", ("file",), "which is not a folder"),
    Hostile("a-runs-weights", _runs_own("weights.pt"), ("file",), "names the run's own weights.pt in"),
    Hostile("a-runs-config", _runs_own("config.json"), ("file",), "names the run's own config.json in"),
    Hostile("a-runs-metrics", _runs_own("metrics.jsonl"), ("file",), "names the run's own metrics.jsonl in"),
]
OUTPUTS = _outputs()
CASES = [pytest.param(command, flag, kind, hostile, id=f"{command}-{flag}-{hostile.id}")
         for command, flag, kind in OUTPUTS for hostile in HOSTILE if kind in hostile.refused_for]


def test_every_command_that_writes_declares_its_outputs():
    assert {(c, k) for c, _, k in OUTPUTS} >= {("train", "folder"), ("evaluate", "file"), ("report", "file"),
                                               ("sample", "file"), ("compress", "file"), ("decompress", "file"),
                                               ("rd-sweep", "folder"), ("rd-compare", "folder"), ("compare-em", "folder")}


def _state(path: Path):
    """What is at ``path``, the link itself and what it points to."""
    if path.is_symlink():
        return ("link", os.readlink(path), path.resolve().read_bytes())
    if path.is_fifo() or path.is_char_device():
        return ("special", os.lstat(path).st_mode, os.lstat(path).st_rdev)
    if path.is_dir():
        return ("folder", sorted((p.name, p.read_bytes()) for p in path.iterdir()))
    return ("file", path.read_bytes()) if path.exists() else None


@pytest.mark.parametrize("command, flag, kind, hostile", CASES)
def test_an_output_that_writing_would_replace_is_refused_before_anything_loads(capsys, tmp_path, command, flag, kind,
                                                                              hostile):
    target = hostile.make(tmp_path)
    before = _state(target)
    parser_positionals = {"decompress": ["RUN", "FILE"]}.get(command, ["RUN"] if COMMANDS.get(command).reads_run else [])
    extra = {"config": ["--dump"]}.get(command, [])  # what the command needs to get as far as its options
    message = refuse(capsys, [command, *[str(tmp_path / "none" / p) for p in parser_positionals], *extra, flag,
                              str(target)])
    assert message.startswith(f"vae: error: {flag} ") and hostile.said in message, message
    assert _state(target) == before
