"""Data-parallel SVI (inference/training/parallel.py): 2 gloo processes on localhost (torchrun) against one
process; ``vae train --nproc 2``, a killed worker, two nodes at a rendezvous."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from pyro.infer import Trace_ELBO

from pyro_vae.inference.runs.layout import CHECKPOINT

from pyro_vae.inference.runs.writer import load_checkpoint
from pyro_vae.inference.training.trainer import SVITrainer

from tests.helpers import ROOT, VAE, run_vae
from tests.distributed_worker import CLIP, LR, global_batches, plain_autoencoder, trained


def _failure(done: subprocess.CompletedProcess) -> str:
    """The workers' own lines (where the cause is) and the end of torchrun's summary, for an assertion message."""
    return done.stderr[:3000] + "\n...\n" + done.stderr[-800:]


def _torchrun(nproc: int, *args) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]


@pytest.mark.parametrize("program", ["autoencoder", "user-program"])
@pytest.mark.parametrize("engine", ["off", "trace"])
def test_two_processes_take_the_same_steps_as_one(tmp_path, engine, program):
    """Same start, same global batches (uneven shards, one rank idle on the last): every trained parameter
    (a pyro.param and a pyro.module network of a function guide included) within 1e-4 of one process's: a
    hundredth of one Adam step (lr 0.01), which is what float rounding of the split sums can move an element
    whose gradient is near 0 (Adam normalizes it)."""
    done = subprocess.run(_torchrun(2, "-m", "tests.distributed_worker", str(tmp_path), engine, program), cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, _failure(done)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]

    model, guide, x = plain_autoencoder(program)
    single = SVITrainer(model, guide, Trace_ELBO(), lr=LR, clip_norm=CLIP, engine=engine)
    losses = [float(single.step(x[idx], num_data=x.shape[0], subsample=idx)) for idx in global_batches(x.shape[0])]
    expected = trained(single)
    if program == "user-program":
        assert {"sigma", "encoder$$$net.0.weight"} <= set(expected)
    start = trained_from_start(program)
    assert min(float((expected[k] - v).abs().max()) for k, v in start.items()) > 1e-3  # every one moved
    for rank in ranks:
        assert rank["engine"] == engine and rank["state"].keys() == expected.keys()
        for name, value in expected.items():
            torch.testing.assert_close(rank["state"][name], value, rtol=0, atol=1e-4, msg=name)
        assert rank["losses"] == pytest.approx(losses, rel=1e-5)


def trained_from_start(program: str) -> dict:
    model, guide, x = plain_autoencoder(program)
    trainer = SVITrainer(model, guide, Trace_ELBO())
    trainer.prepare(((x[:2],), {"num_data": x.shape[0], "subsample": torch.arange(2)}))
    if not trainer.params:  # a user's program: nothing reads its parameters before its first step
        trainer.loss.read_params(x[:2], num_data=x.shape[0], subsample=torch.arange(2))
    return trained(trainer)


@pytest.mark.slow
def test_vae_train_nproc_2_writes_a_run_that_evaluates_like_a_single_process_one(tmp_path):
    common = ["--epochs", "3", "--quiet", "--seed", "0"]
    two = run_vae("train", "--nproc", "2", "--out", tmp_path / "two", *common)
    assert two.returncode == 0, _failure(two)
    one = run_vae("train", "--compile", "off", "--out", tmp_path / "one", *common)
    assert one.returncode == 0, one.stderr
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    assert json.loads((tmp_path / "two" / "versions.json").read_text())["processes"] == 2
    elbos = {}
    for name in ("one", "two"):
        done = run_vae("evaluate", tmp_path / name, "--json", tmp_path / f"{name}.json")
        assert done.returncode == 0, done.stderr
        elbos[name] = json.loads((tmp_path / f"{name}.json").read_text())["elbo"]["elbo"]
    # other draws (and so other batches after the first epoch): the two agree as well as two seeds of one
    # process do (single-process seeds 0, 1, 2 after 3 epochs: -184.8, -188.0, -190.7 nats)
    assert abs(elbos["two"] - elbos["one"]) < 6.0, elbos
    last = json.loads((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()[-1])
    assert abs(last["test_elbo"] - elbos["two"]) < 1.0  # the sharded, reduced evaluation during training


def test_two_processes_streaming_from_disk_train_exactly_as_two_holding_the_data(tmp_path):
    """Each rank reads (and binarizes) only its own rows of every global batch, from a memory-mapped .npy, and
    the job trains exactly as the same job with the data in memory: the same figures at every epoch."""
    import numpy as np

    from pyro_vae.inference.data.datasets import load_embedded_mnist

    data = load_embedded_mnist()
    np.save(tmp_path / "digits.npy", torch.cat([data.train_x[::3], data.test_x[::3]]).numpy())
    metrics = {}
    for stream in ("never", "always"):
        done = run_vae("train", "--nproc", "2", "--dataset", "array", "--data-dir", tmp_path / "digits.npy",
                       "--stream", stream, "--epochs", "2", "--quiet", "--seed", "0", "--no-plots",
                       "--out", tmp_path / stream)
        assert done.returncode == 0, _failure(done)
        metrics[stream] = [json.loads(line) for line in (tmp_path / stream / "metrics.jsonl").read_text().splitlines()]
    assert [{k: v for k, v in m.items() if k != "seconds"} for m in metrics["never"]] == \
        [{k: v for k, v in m.items() if k != "seconds"} for m in metrics["always"]]


def _worker_pids(root: int) -> dict[int, int]:
    """{RANK: pid} of the torchrun workers below process ``root``."""
    found, stack = {}, [root]
    while stack:
        pid = stack.pop()
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        stack.extend(int(c) for c in children)
        ranks = [e for e in env if e.startswith(b"RANK=")]
        if ranks and pid != root:
            found[int(ranks[0][5:])] = pid
    return found


@pytest.mark.slow
def test_a_killed_worker_ends_the_job_and_leaves_the_last_checkpoint_intact(tmp_path):
    out = tmp_path / "run"
    job = subprocess.Popen([*VAE, "train", "--nproc", "2", "--epochs", "200", "--checkpoint-every", "10",
                            "--compile", "off", "--out", str(out), "--quiet"], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "PYTHONWARNINGS": "ignore", "VAE_DIST_TIMEOUT": "30"})
    try:
        deadline = time.time() + 180
        while not (out / CHECKPOINT).exists() and time.time() < deadline and job.poll() is None:
            time.sleep(0.5)
        assert (out / CHECKPOINT).exists(), "no checkpoint was written"
        workers = _worker_pids(job.pid)
        assert set(workers) == {0, 1}, workers
        os.kill(workers[1], signal.SIGKILL)
        _, stderr = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode != 0
    assert "2-process job failed" in stderr and "ended first" in stderr
    modules, state = load_checkpoint(out / CHECKPOINT)  # complete and loadable
    assert state.steps >= 10 and state.optimizer["format"] == 2
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]


@pytest.mark.slow
def test_two_nodes_meet_at_a_rendezvous_endpoint(tmp_path):
    """``torchrun --nnodes 2`` with a c10d rendezvous: two launchers (here both on localhost), one run folder."""
    import socket

    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
               "--rdzv-backend", "c10d", "--rdzv-endpoint", f"localhost:{port}", "--rdzv-id", "test",
               "-m", "pyro_vae.inference.cli", "train", "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet",
               "--no-plots", "--no-tensorboard"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    nodes = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [node.communicate(timeout=300) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], [err[-1500:] for _, err in outputs]
    assert sum("trained 1 epochs" in out for out, _ in outputs) == 1  # rank 0 alone reports
    assert json.loads((tmp_path / "run" / "versions.json").read_text())["processes"] == 2
