"""SIGINT and SIGTERM at any moment of a ``vae`` command, in a real process: while torch is being imported, half a
second in, while a run folder is read (``report``, ``evaluate``, ``compress``), during training and after its
last line. Each ends with exit status 130 (SIGINT) or 143 (SIGTERM), exactly one line on stderr and no
traceback, and leaves no temporary file (``.NAME....tmp``) behind. In-process checks of the same handlers:
tests/inference/cli/test_main_errors.py."""
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import DATA, VAE

pytestmark = pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/PID/maps (Linux)")

SCRIPT = Path(sys.executable).parent / "vae"  # the console script the install wrote (pyro_vae.inference.cli:main)
HOW = {"script": [str(SCRIPT)] if SCRIPT.exists() else VAE, "module": VAE}  # VAE: python -m pyro_vae.inference.cli
STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}
SAID = {signal.SIGINT: "vae: interrupted", signal.SIGTERM: "vae: terminated"}
TINY = ["--epochs", "3", "--latent-dim", "3", "--hidden-dim", "32", "--quiet"]
STORED_RUN = DATA / "run_2026_12_v2"  # a tiny trained run (Z=3, 16 hidden units) an earlier release wrote
WAIT = 120  # seconds any one wait may take on a loaded machine


# ``vae ARGV`` as ``python -c``, with an audit hook that creates the file MARKER once the run's weights are opened
# (the command has begun its work); the hook only watches
WATCHED = """import os, sys
marker, run = sys.argv[1:3]
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, os.PathLike)) and os.fspath(args[0]) == os.path.join(run, "weights.pt"):
        open(marker, "a").close()
sys.addaudithook(hook)
sys.argv = ["vae", *sys.argv[3:]]
from pyro_vae.inference.cli import main
sys.exit(main())
"""


def _start(argv, how="script") -> subprocess.Popen:
    command = [sys.executable, "-c", WATCHED] if how == "watched" else HOW[how]
    return subprocess.Popen([*command, *map(str, argv)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen, ready) -> None:
    """Until ``ready()``; fails if the command ended first."""
    end = time.monotonic() + WAIT
    while not ready():
        assert proc.poll() is None, f"the command ended first: {proc.returncode} {proc.stderr.read()}"
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def _loading_torch(proc: subprocess.Popen) -> bool:
    """torch's shared library is mapped: ``import torch`` is under way (the heavy imports of start-up)."""
    try:
        return "libtorch" in Path(f"/proc/{proc.pid}/maps").read_text()
    except OSError:
        return False


def _temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.startswith(".") and p.name.endswith((".tmp", ".new"))]


def _ends_in_one_line(proc: subprocess.Popen, signum: int, folder: Path, said: str = "") -> str:
    """The exit status for ``signum``, exactly one line on stderr (``said``: what was read of it already) and no
    traceback, no temporary in ``folder``: that line."""
    _, err = proc.communicate(timeout=WAIT)
    err = said + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == STATUS[signum], (proc.returncode, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert not folder.exists() or _temporaries(folder) == []
    return lines[0]


@pytest.mark.parametrize("name, how, moment", [("SIGINT", "script", "torch"), ("SIGTERM", "module", "torch"),
                                               ("SIGINT", "module", 0.5), ("SIGTERM", "script", 0.5)])
def test_a_signal_during_start_up(tmp_path, name, how, moment):
    """Before any handler of the command's own: while ``import torch`` runs, or half a second in."""
    signum = getattr(signal, name)
    out = tmp_path / "run"
    proc = _start(["train", "--out", out, *TINY], how)
    if moment == "torch":
        _wait_for(proc, lambda: _loading_torch(proc))
    else:
        time.sleep(moment)
    proc.send_signal(signum)
    assert _ends_in_one_line(proc, signum, tmp_path) == SAID[signum]


@pytest.mark.parametrize("command, name", [("report", "SIGINT"), ("evaluate", "SIGTERM"), ("compress", "SIGINT")])
def test_a_signal_while_a_run_is_read(tmp_path, command, name):
    """``report`` as it writes its pictures into the run folder; ``evaluate`` and ``compress`` (given more work than
    they can finish) half a second after they opened the run's weights."""
    signum = getattr(signal, name)
    run = tmp_path / "run"
    shutil.copytree(STORED_RUN, run)
    before = sorted(p.name for p in run.iterdir())
    if command == "report":
        proc = _start(["report", run])
        _wait_for(proc, lambda: any(run.glob("*.png")))  # its first picture is in place (renamed: whole)
    else:
        work = {"evaluate": ["--iw-samples", "5000"],
                "compress": ["--lossless", "--test-images", "5000", "-o", run / "codes.bin"]}
        proc = _start([tmp_path / "loading", run, command, run, *work[command]], how="watched")
        _wait_for(proc, lambda: (tmp_path / "loading").exists())
        time.sleep(0.5)
    proc.send_signal(signum)
    assert _ends_in_one_line(proc, signum, run) == SAID[signum]
    assert set(before) <= {p.name for p in run.iterdir()}


def _training(out: Path) -> subprocess.Popen:
    """``vae train`` of a tiny run, once its first checkpoint is written (a checkpoint after every step)."""
    proc = _start(["train", "--out", out, *TINY, "--checkpoint-every", "1"])
    _wait_for(proc, lambda: (out / "checkpoint.pt").exists())
    return proc


def test_sigint_during_training_then_again_as_it_exits(tmp_path):
    """The first SIGINT stops training after its step: one line says what was saved and how to resume. A second,
    once that line is out (the interpreter's teardown: torch's atexit callbacks), adds nothing."""
    out = tmp_path / "run"
    proc = _training(out)
    proc.send_signal(signal.SIGINT)
    said = proc.stderr.readline()  # its one line: the process is ending now
    proc.send_signal(signal.SIGINT)
    line = _ends_in_one_line(proc, signal.SIGINT, out, said)
    assert line.startswith("vae: stopped at epoch 1, step ") and line.endswith(f"resume with: vae train --resume {out}")
    torch.load(out / "checkpoint.pt", weights_only=True)  # the checkpoint is whole


def test_sigterm_twice_during_training(tmp_path):
    """The second SIGTERM does not wait for the step: exit status 143 and one line. (Should the step end between
    the two, the line is the first one's, or that of a SIGTERM as training stops.)"""
    out = tmp_path / "run"
    proc = _training(out)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.05)  # two signals before the interpreter sees the first would be one
    proc.send_signal(signal.SIGTERM)
    line = _ends_in_one_line(proc, signal.SIGTERM, out)
    assert line.startswith("vae: terminated again: stopped at once") or line == "vae: terminated" \
        or line.endswith(f"resume with: vae train --resume {out}"), line
    torch.load(out / "checkpoint.pt", weights_only=True)
