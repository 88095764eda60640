"""One writer per run folder (an flock named by its holder), no stale lock after kill -9, and readers that
load the config and weights of one epoch: against other processes (two ``vae train``, and helper processes that
hold a folder's locks). (In this process alone: tests/inference/runs/test_run_lock.py.)"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pyro_vae.inference.errors import UserError
from pyro_vae.inference.runs import lock
from pyro_vae.inference.runs.folder import train_run
from pyro_vae.inference.runs.run import load_run

from tests.helpers import ROOT, VAE, run_vae, tiny_run_config, trained_tiny_run

TINY = ["--latent-dim", "2", "--hidden-dim", "16", "--quiet", "--no-plots", "--no-tensorboard", "--compile", "off"]


def _hold(folder, what="writing", seconds=60):
    """A helper process holding ``folder``'s writer lock, or its snapshot lock as the writer ("snapshot") or as
    a reader ("reading"); it says when."""
    block = {"writing": "lock.writing(folder)", "snapshot": "lock.snapshot(folder, write=True)",
             "reading": "lock.snapshot(folder)"}[what]
    body = f"with {block}:\n    print('held', flush=True); time.sleep({seconds})"
    code = f"import sys, time\nfrom pyro_vae.inference.runs import lock\nfolder = sys.argv[1]\n{body}\n"
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _wait_for_writer(folder, proc, limit=120.0):
    deadline = time.monotonic() + limit
    while not lock.writer_active(folder):
        assert proc.poll() is None, "the first writer ended before it was seen"
        assert time.monotonic() < deadline, "the first writer never took the lock"
        time.sleep(0.2)


def test_two_vae_train_processes_on_one_folder(tmp_path):
    out = tmp_path / "same"
    first = subprocess.Popen([*VAE, "train", "--out", str(out), "--epochs", "100000", *TINY], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_writer(out, first)
        second = run_vae("train", "--out", out, "--force", "--epochs", 1, "--seed", 1, *TINY)
        assert second.returncode == 2 and len(second.stderr.strip().splitlines()) == 1
        assert f"is in use: process {first.pid} (vae train --out {out}" in second.stderr
        resumed = run_vae("train", "--resume", out)
        assert resumed.returncode == 2 and f"process {first.pid}" in resumed.stderr
        assert json.loads((out / "config.json").read_text())["train"]["seed"] == 0  # untouched by the refused ones
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    assert str(first.pid) in (out / lock.LOCK).read_text()  # a kill -9 leaves its name behind, but no lock
    assert lock.writer_active(out) is None
    third = run_vae("train", "--out", out, "--force", "--epochs", 1, "--seed", 1, *TINY)
    assert third.returncode == 0, third.stderr
    assert json.loads((out / "config.json").read_text())["train"]["seed"] == 1
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1]
    assert (out / lock.LOCK).read_text() == ""  # an ended writer clears its name


def test_a_held_lock_refuses_in_process_writers_by_name_and_a_finished_one_does_not(tmp_path):
    cfg = tiny_run_config()
    out = tmp_path / "run"
    holder = _hold(out)
    try:
        assert lock.writer_active(out) == f"process {holder.pid} (python -c {out})"
        with pytest.raises(UserError, match=f"run folder {out} is in use: process {holder.pid}"):
            train_run(cfg, out, force=True, quiet=True, plots=False, tensorboard=False)
        with pytest.raises(UserError, match=f"process {holder.pid}"):
            with lock.writing(out):
                pass
    finally:
        holder.terminate()
        holder.wait()
    assert train_run(cfg, out, quiet=True, plots=False, tensorboard=False)[-1]["epoch"] == 1
    with lock.writing(out):  # this process's own lock is re-entrant
        with lock.writing(out):
            assert lock.writer_active(out) is None  # (not another process)


def test_readers_wait_for_a_snapshot_and_name_a_writer_that_does_not_finish(tmp_path):
    out = trained_tiny_run(tmp_path / "run")
    writer = _hold(out, "snapshot", seconds=1.5)
    start = time.monotonic()
    with pytest.raises(UserError, match="being rewritten by .*did not settle within 0.2 s"):
        with lock.snapshot(out, wait=0.2):
            pass
    run = load_run(out)  # waits until the writer is done, then reads
    assert time.monotonic() - start > 1.0 and run.model.latent_dim == 2
    writer.wait()


def test_a_run_being_set_up_is_named_not_misread(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = _hold(out)
    try:
        with pytest.raises(UserError, match=f"has no config.json yet: process {holder.pid} .* is training it"):
            load_run(out)
    finally:
        holder.terminate()
        holder.wait()
    with pytest.raises(UserError, match="no config file"):
        load_run(out)


def test_the_writer_waits_for_a_reader_at_an_epoch_end(tmp_path):
    out = trained_tiny_run(tmp_path / "run")
    reader = _hold(out, "reading", seconds=1.5)
    start = time.monotonic()
    with lock.snapshot(out, write=True, wait=0.1):  # no deadline for the writer: readers are brief
        waited = time.monotonic() - start
    reader.wait()
    assert waited > 1.0


def test_a_folder_a_writer_made_and_left_empty_is_removed_and_the_next_writer_locks_a_fresh_file(tmp_path):
    """The removal happens while the lock is held; the next writer's descriptor is the file at the path."""
    out = tmp_path / "made"
    holder = _hold(out, seconds=1.0)  # creates the folder, holds, then removes folder and lock at its end
    holder.wait()
    assert not out.exists()
    with lock.writing(out):
        assert os.stat(out / lock.LOCK).st_ino == os.fstat(lock._held[str(out.resolve())][0]).st_ino
