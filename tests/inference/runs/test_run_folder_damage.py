"""Every file of a run folder, damaged every way, under every command that reads it (the hostile table of the
docs' bad-input page): exit status 0 or 2, at most one line on stderr and never a traceback, a refusal naming the
file, and every other file of the folder (and a link's target outside it) byte-identical afterwards."""
import contextlib
import io
import json
import os
import shutil
from pathlib import Path
from typing import Callable, NamedTuple

import pytest

from pyro_vae.inference.cli.main import main
from pyro_vae.inference.runs import layout

SUMMARY = f"{layout.DIAGNOSTICS}/summary.json"
JSON_FILES = (layout.CONFIG, layout.VERSIONS, layout.DATA, layout.METRICS, layout.EVALUATION, SUMMARY)
READERS = {  # file -> the commands that read it (report reads every file it shows)
    layout.CONFIG: ("report", "evaluate", "resume"), layout.VERSIONS: ("report",), layout.DATA: ("evaluate",),
    layout.METRICS: ("report",), layout.EVALUATION: ("report",), SUMMARY: ("report",),
    layout.WEIGHTS: ("evaluate",), layout.CHECKPOINT: ("resume",), layout.SAMPLES: ("report",)}
ARGV = {"report": ["report"], "evaluate": ["evaluate", "--batch-size", "100"], "resume": ["train", "--quiet", "--resume"]}
NAMES = {"report": "vae report", "evaluate": "vae evaluate", "resume": "vae train --resume"}
OPTIONAL = {layout.VERSIONS, layout.DATA, layout.METRICS, layout.EVALUATION, SUMMARY, layout.SAMPLES}  # may be absent


def _flip(path: Path) -> None:
    """One bit: in JSON, of the first quote (the text stops being JSON); elsewhere in the middle of the file."""
    raw = bytearray(path.read_bytes())
    at = raw.find(b'"') if path.suffix in (".json", ".jsonl") else len(raw) // 2
    raw[at] ^= 1
    path.write_bytes(bytes(raw))


def _cut(path: Path) -> None:
    """The file cut in the middle of a line (a metrics.jsonl cut at a line's end is an earlier epoch's, whole)."""
    raw = path.read_bytes()
    end = len(raw) // 2
    while b"\n" in raw[end - 1:end + 1]:  # at a line's end or start: one byte on, into the line
        end += 1
    path.write_bytes(raw[:end])


def _string_values(path: Path) -> None:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps({k: "x" for k in json.loads(line)}) + "\n"
                                for line in path.read_text().splitlines()))
    else:
        path.write_text(json.dumps({k: "x" for k in json.loads(path.read_text())}))


def _link(path: Path) -> Path:
    """The file replaced by a link to a copy of it outside the folder: returns the copy."""
    outside = path.parents[2 if path.parent.name == layout.DIAGNOSTICS else 1] / f"outside-{path.name}"
    shutil.copyfile(path, outside)
    path.unlink()
    path.symlink_to(outside)
    return outside


class Damage(NamedTuple):
    id: str
    apply: Callable[[Path], object]
    json_only: bool = False


DAMAGES = [
    Damage("missing", lambda p: p.unlink()),
    Damage("empty", lambda p: p.write_bytes(b"")),
    Damage("truncated", lambda p: _cut(p)),
    Damage("bit-flipped", _flip),
    Damage("not-utf8", lambda p: p.write_bytes(b"\xff\xfe" + p.read_bytes())),
    Damage("wrong-json-type", lambda p: p.write_text('["a list where an object belongs"]')),
    Damage("strings-for-numbers", _string_values, json_only=True),
    Damage("symlink-outside", _link),
    Damage("fifo", lambda p: (p.unlink(), os.mkfifo(p))),
]
ACCEPTED = {  # (file, damage) -> what a command may do instead of refusing, and why
    **{(name, "missing"): "an optional file" for name in OPTIONAL},
    **{(layout.SAMPLES, d.id): "a picture is shown as it is" for d in DAMAGES if d.id not in ("symlink-outside", "fifo")},
    (layout.VERSIONS, "strings-for-numbers"): "versions are strings",
}
CASES = [pytest.param(name, command, damage, id=f"{name}-{damage.id}-{command}")
         for name, commands in READERS.items() for command in commands for damage in DAMAGES
         if not damage.json_only or name in JSON_FILES]


@pytest.fixture(scope="module")
def complete_run(two_epoch_run, tmp_path_factory):
    """A two-epoch run with every file a command adds: evaluation.json, diagnostics/ (a tiny NUTS run)."""
    from pyro_vae.inference.diagnostics.run_diagnosis import diagnose_run
    from pyro_vae.inference.runs.run import load_run

    run_dir = tmp_path_factory.mktemp("complete") / "run"
    shutil.copytree(two_epoch_run, run_dir)
    assert main(["evaluate", str(run_dir), "--batch-size", "100"]) == 0
    run = load_run(run_dir)
    diagnose_run(run, split="test", points=2, chains=2, draws=10, warmup=10, guide_samples=20)
    assert (run_dir / SUMMARY).is_file() and (run_dir / layout.EVALUATION).is_file()
    return run_dir


def _contents(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() and not p.is_symlink() else os.readlink(p)
                                         if p.is_symlink() else None)
            for p in sorted(folder.rglob("*")) if not p.is_fifo()}


@pytest.mark.parametrize("name, command, damage", CASES)
def test_a_damaged_run_folder_file_ends_in_one_line_and_touches_nothing(complete_run, tmp_path, name, command, damage):
    folder = tmp_path / "run"
    shutil.copytree(complete_run, folder)
    outside = damage.apply(folder / name)
    before = _contents(folder)
    outside_before = outside.read_bytes() if isinstance(outside, Path) else None
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        status = main([*ARGV[command], str(folder)])
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    assert "Traceback" not in err.getvalue() and len(lines) <= 1, err.getvalue()
    if (name, damage.id) in ACCEPTED:
        assert status in (0, 2), err.getvalue()
    else:
        assert status == 2, f"accepted: {out.getvalue()[-300:]}"
        assert lines[0].startswith("vae: error: ") and Path(name).name in lines[0], lines[0]
    after = _contents(folder)
    if status == 2:
        assert after == before  # a refusal writes nothing
    else:  # what the command writes is its output; everything else is as it was
        written = {layout.REPORT, layout.EVALUATION, layout.CHECKPOINT, layout.METRICS, layout.WEIGHTS, layout.LOG}
        assert {k: v for k, v in after.items() if k not in written and not k.startswith(layout.TENSORBOARD)} == \
            {k: v for k, v in before.items() if k not in written and not k.startswith(layout.TENSORBOARD)}
    if outside_before is not None:
        assert outside.read_bytes() == outside_before
        report = folder / layout.REPORT
        assert not report.exists() or outside_before[:64].hex() not in report.read_bytes().hex()


# ---- outputs replaced as a whole, and the temporaries of a writer that is gone ------------------------------

def _diagnose(folder: Path) -> None:
    from pyro_vae.inference.diagnostics.run_diagnosis import diagnose_run
    from pyro_vae.inference.runs.run import load_run

    diagnose_run(load_run(folder), split="both", points=2, chains=2, draws=10, warmup=10, guide_samples=20, seed=1)


@pytest.mark.parametrize("fault", [KeyboardInterrupt, OSError(28, "No space left on device")])
def test_an_interrupted_diagnosis_leaves_the_earlier_one_whole(complete_run, tmp_path, monkeypatch, fault):
    """Killed (SIGINT's KeyboardInterrupt) or stopped by a full disk after the training split's files are written:
    diagnostics/ is the earlier diagnosis byte for byte (test split only), and no temporary is left."""
    from pyro_vae.inference.diagnostics import figures

    folder = tmp_path / "run"
    shutil.copytree(complete_run, folder)
    before = _contents(folder)
    drawn = []

    def failing(path, draw):
        drawn.append(path)
        if path.name == "ppc_arviz.png" and path.parent.name == "test":  # the second split, half written
            raise fault
        return real(path, draw)

    real = figures.figure
    monkeypatch.setattr(figures, "figure", failing)
    with pytest.raises(type(fault) if isinstance(fault, Exception) else fault):
        _diagnose(folder)
    assert any(p.parent.name == "train" for p in drawn)  # the new diagnosis had written the train split
    assert _contents(folder) == before
    assert not (folder / layout.DIAGNOSTICS / "train").exists()
    monkeypatch.setattr(figures, "figure", real)
    _diagnose(folder)  # and the next one replaces it whole
    summary = json.loads((folder / SUMMARY).read_text())
    assert sorted(summary["splits"]) == ["test", "train"] and (folder / layout.DIAGNOSTICS / "train").is_dir()
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_a_symlinked_diagnostics_folder_is_refused_and_its_target_untouched(complete_run, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(complete_run, folder)
    elsewhere = tmp_path / "elsewhere"
    (folder / layout.DIAGNOSTICS).rename(elsewhere)
    (folder / layout.DIAGNOSTICS).symlink_to(elsewhere)
    before = _contents(elsewhere)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main(["diagnose", str(folder), "--points", "1", "--chains", "2", "--draws", "10", "--warmup", "10",
                       "--guide-samples", "20"])
    assert status == 2 and "diagnostics" in err.getvalue() and "symbolic link" in err.getvalue()
    assert _contents(elsewhere) == before


def test_a_file_where_diagnostics_belongs_is_refused_before_nuts_runs(complete_run, tmp_path, monkeypatch):
    from pyro_vae.inference.diagnostics import run_diagnosis

    folder = tmp_path / "run"
    shutil.copytree(complete_run, folder)
    shutil.rmtree(folder / layout.DIAGNOSTICS)
    (folder / layout.DIAGNOSTICS).write_text("hi")
    before = _contents(folder)
    monkeypatch.setattr(run_diagnosis, "diagnose_run", lambda *a, **k: pytest.fail("NUTS ran"))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main(["diagnose", str(folder), "--points", "1", "--chains", "2", "--draws", "10", "--warmup", "10",
                       "--guide-samples", "20"])
    assert status == 2 and err.getvalue() == (f"vae: error: {folder / layout.DIAGNOSTICS} is a file, not a folder; "
                                              f"remove it (nothing is written through or over it)\n")
    assert _contents(folder) == before


def test_the_next_writer_removes_the_temporaries_of_a_writer_that_is_gone(complete_run, tmp_path):
    """A killed writer's ``.NAME.PID.XXXX.tmp`` files and ``.diagnostics.PID.XXXX.new`` folder are removed by the
    next writer of the folder (``vae train --resume``); a running process's are left to it."""
    import subprocess
    import sys

    folder = tmp_path / "run"
    shutil.copytree(complete_run, folder)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(gone.stdout)
    stray = [folder / f".weights.pt.{dead}.ab12.tmp", folder / layout.DIAGNOSTICS / f".summary.json.{dead}.x.tmp"]
    for path in stray:
        path.write_bytes(b"half")
    (folder / f".diagnostics.{dead}.k9.new" / "train").mkdir(parents=True)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        kept = folder / f".evaluation.json.{alive.pid}.zz.tmp"
        kept.write_bytes(b"in flight")
        assert main(["train", "--quiet", "--resume", str(folder), "--no-plots"]) == 0  # (its epochs are done)
        assert not any(p.exists() for p in stray) and not (folder / f".diagnostics.{dead}.k9.new").exists()
        assert kept.read_bytes() == b"in flight"
    finally:
        alive.kill()
        alive.wait()


def test_force_removes_the_links_in_a_run_folder_not_what_they_point_to(complete_run, tmp_path):
    """``vae train --force`` over a folder whose diagnostics/ and weights.pt are links: the links go, their
    targets outside the folder are left byte-identical."""
    folder = tmp_path / "run"
    shutil.copytree(complete_run, folder)
    elsewhere = tmp_path / "elsewhere"
    (folder / layout.DIAGNOSTICS).rename(elsewhere)
    (folder / layout.DIAGNOSTICS).symlink_to(elsewhere)
    target = _link(folder / layout.WEIGHTS)
    before, weights = _contents(elsewhere), target.read_bytes()
    assert main(["train", "--out", str(folder), "--force", "--epochs", "1", "--latent-dim", "2", "--hidden-dim", "16",
                 "--batch-size", "512", "--quiet", "--no-plots"]) == 0
    assert _contents(elsewhere) == before and target.read_bytes() == weights
    assert not (folder / layout.DIAGNOSTICS).exists() and not (folder / layout.WEIGHTS).is_symlink()


LOCK_COMMANDS = {**ARGV, "force": ["train", "--epochs", "1", "--latent-dim", "2", "--hidden-dim", "16", "--quiet",
                                   "--no-plots", "--force", "--out"]}


@pytest.mark.parametrize("name", [layout.RUN_LOCK, layout.SNAPSHOT_LOCK])
@pytest.mark.parametrize("damage", [d for d in DAMAGES if d.id in ("symlink-outside", "fifo")], ids=lambda d: d.id)
@pytest.mark.parametrize("command", list(LOCK_COMMANDS))
def test_a_lock_file_replaced_by_a_link_or_a_pipe_is_refused_not_written_through(complete_run, tmp_path, name, damage,
                                                                                 command):
    """The lock files are opened (created, truncated, written with the writer's pid) only as regular files: a
    link to a file outside the folder leaves that file as it was, a pipe does not hang the command."""
    folder = tmp_path / "run"
    shutil.copytree(complete_run, folder)
    (folder / name).write_bytes(b"1234\nsomeone's notes\n")
    outside = damage.apply(folder / name)
    before = _contents(folder)
    outside_before = outside.read_bytes() if isinstance(outside, Path) else None
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main([*LOCK_COMMANDS[command], str(folder)])
    assert status == 2 and "Traceback" not in err.getvalue() and len(err.getvalue().strip().splitlines()) == 1
    assert name in err.getvalue(), err.getvalue()
    assert _contents(folder) == before
    if outside_before is not None:
        assert outside.read_bytes() == outside_before


def test_a_diagnosis_of_an_earlier_layout_is_left_out_of_the_report_not_refused(complete_run, tmp_path):
    """0.2.0 wrote diagnostics/summary.json without "splits": the report leaves the section out, as it did."""
    folder = tmp_path / "run"
    shutil.copytree(complete_run, folder)
    (folder / SUMMARY).write_text(json.dumps({"points": [1, 2], "khat": {"max": 0.3}}))
    assert main(["report", str(folder)]) == 0
    assert "id='diagnostics'" not in (folder / layout.REPORT).read_text()
