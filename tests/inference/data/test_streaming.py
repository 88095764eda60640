"""Data read on demand (inference/data/sources.py, stream.py, streamed.py, given.py): every streamed path is
checked against the same data held in memory — the same rows, the same draws, the same trained parameters."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pyro_vae.inference import RunConfig, UserError
from pyro_vae.inference.data.datasets import BINARIZE_SEED, binarize_once, binarize_streamed, load_embedded_mnist
from pyro_vae.inference.data.folders import write_image_folder
from pyro_vae.inference.data.sources import MappedArray
from pyro_vae.inference.data.stream import MinibatchStream
from pyro_vae.inference.process_group import Context
from pyro_vae.inference.runs.folder import resume_run, train_run
from pyro_vae.inference.runs.run import setup
from pyro_vae.inference.runs.writer import RunFolder
from pyro_vae.inference.training.loop import train
from pyro_vae.inference.training.state import TrainingInterrupted

from tests.helpers import run_vae

TRAIN, TEST = 640, 128  # a slice of the embedded digits: small enough for several short runs


@pytest.fixture(scope="module")
def digits():
    data = load_embedded_mnist()  # sorted by class: every 7th training and 3rd test digit has all ten classes
    train, test = torch.arange(0, 4500, 7)[:TRAIN], torch.arange(0, 500, 3)[:TEST]
    return data.train_x[train], data.train_y[train], data.test_x[test], data.test_y[test]


@pytest.fixture(scope="module")
def array_file(tmp_path_factory, digits):
    path = tmp_path_factory.mktemp("arrays") / "digits.npy"
    np.save(path, torch.cat([digits[0], digits[2]]).numpy())
    return path


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory, digits):
    root = tmp_path_factory.mktemp("images")
    for split, x, y in (("train", digits[0], digits[1]), ("test", digits[2], digits[3])):
        write_image_folder(root / split, (x * 255).round().to(torch.uint8).numpy(), y.numpy(),
                           [str(k) for k in range(10)])
    return root


def _config(dataset, data_dir, stream, decode_once=None, **train):
    data = {"dataset": dataset, "data_dir": str(data_dir), "stream": stream}
    return RunConfig.from_dict({"data": data if decode_once is None else {**data, "decode_once": decode_once},
                                "train": {"epochs": 1, "batch_size": 64, "seed": 0, "compile": "off", **train}})


def _weights(out: Path) -> dict:
    state = torch.load(out / "weights.pt", weights_only=True)
    return {f"{part}.{k}": v for part in ("model", "guide") for k, v in state[part].items()}


def _same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


# -- the sources ------------------------------------------------------------------------------------------
def test_a_mapped_array_reads_the_rows_numpy_reads(tmp_path):
    values = np.random.default_rng(0).normal(size=(50, 3, 4, 4)).astype(np.float64)
    np.save(tmp_path / "x.npy", values)
    source = MappedArray(tmp_path / "x.npy")
    assert source.shape == (50, 3, 4, 4) and len(source.split(16)) == 4
    expect = torch.from_numpy(values.astype(np.float32))
    idx = torch.tensor([[3, 49], [0, -1]])
    assert torch.equal(source[idx], expect[idx]) and torch.equal(source[7], expect[7])
    assert torch.equal(source[10:20], expect[10:20]) and torch.equal(torch.cat(list(source.split(16))), expect)
    part = source.subset([5, 2, 9])
    assert torch.equal(part[1:], expect[[2, 9]])


@pytest.mark.parametrize("damage, words", [
    ("truncated", "is truncated"), ("fortran", "Fortran order"), ("strings", "needs numbers"),
    ("one_dim", r"it needs \(N, D\)")])
def test_a_damaged_npy_is_refused_in_one_line(tmp_path, damage, words):
    path = tmp_path / "x.npy"
    if damage == "truncated":
        np.save(path, np.zeros((100, 10), np.float32))
        path.write_bytes(path.read_bytes()[:-400])
    elif damage == "fortran":
        np.save(path, np.asfortranarray(np.zeros((10, 4), np.float32)))
    elif damage == "strings":
        np.save(path, np.array([["a", "b"]]))
    else:
        np.save(path, np.zeros(10, np.float32))
    with pytest.raises(UserError, match=words) as err:
        MappedArray(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kind", ["npz", "npz-split", "csv", "npy"])
def test_an_array_file_streamed_holds_what_it_holds_in_memory_and_its_cache_is_kept_until_it_changes(tmp_path, kind):
    """.npz (with labels), .npz without test_x, .csv (with a header) and .npy: the streamed rows, labels, split and
    column names equal the ones read into memory; the converted copy is reused, and made again when the file
    changes."""
    from pyro_vae.inference.data.arrays import load_array
    from pyro_vae.inference.data.streamed import stream_array

    rng = np.random.default_rng(0)
    x, y = rng.poisson(3.0, size=(9000, 5)).astype(np.float64), rng.integers(0, 4, 9000)
    path = tmp_path / f"a.{kind.split('-')[0]}"
    if kind == "npz":
        np.savez(path, train_x=x[:8000], test_x=x[8000:], train_y=y[:8000], test_y=y[8000:])
    elif kind == "npz-split":
        np.savez_compressed(path, train_x=x, train_y=y)
    elif kind == "csv":
        path.write_text("g1,g2,g3,g4,g5\n" + "\n".join(",".join(f"{v:g}" for v in row) for row in x) + "\n")
    else:
        np.save(path, x)
    memory, streamed = load_array(path, 0.1), stream_array(path, 0.1)
    for split in ("train", "test"):
        assert torch.equal(getattr(streamed, f"{split}_x")[:], getattr(memory, f"{split}_x"))
        assert torch.equal(getattr(streamed, f"{split}_y"), getattr(memory, f"{split}_y"))
    assert streamed.labelled == memory.labelled and streamed.feature_names == memory.feature_names
    if kind == "npy":
        return
    cache = sorted((tmp_path / ".vae-cache").iterdir())
    stamps = [p.stat().st_mtime_ns for p in cache]
    stream_array(path, 0.1)
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / ".vae-cache").iterdir())] == stamps  # reused
    if kind == "csv":
        path.write_text("g1,g2,g3,g4,g5\n1,2,3,4,5\n6,7,8,9,10\n")
        assert torch.equal(stream_array(path, 0.5).train_x[:], load_array(path, 0.5).train_x)  # made again


def _rss_kb() -> int:
    return int(next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("VmRSS:")))


def test_reading_a_mapped_file_through_keeps_resident_memory_bounded(tmp_path):
    """A 256 MB file read through in order and in shuffled minibatches: resident memory grows by less than the
    64 MB release interval plus a batch, not by the file's size (through a plain memory map each random row
    also maps its neighbouring 64 KiB, and the whole file ends up resident)."""
    rows = 256 * 2 ** 20 // (784 * 4)
    out = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float32, shape=(rows, 784))
    out[:] = 0.5
    out.flush()
    del out
    source = MappedArray(tmp_path / "big.npy")
    before = _rss_kb()
    peak = before
    for start in range(0, rows, 1024):  # in order, as a pass over the set reads it
        batch = source[start:start + 1024]
        peak = max(peak, _rss_kb())
    assert float(batch.mean()) == 0.5
    for _, batch in MinibatchStream(source, 128):  # in a random order, as an epoch reads it
        peak = max(peak, _rss_kb())
    assert float(batch.mean()) == 0.5
    assert (peak - before) * 1024 < 100 * 2 ** 20, (before, peak)


def test_the_test_set_binarized_chunk_by_chunk_is_the_one_binarized_in_memory(array_file, digits):
    source = MappedArray(array_file)
    assert torch.equal(binarize_streamed(source)[:], binarize_once(torch.cat([digits[0], digits[2]]), BINARIZE_SEED))


def test_a_ranks_share_of_a_streamed_epoch_is_its_own_rows(array_file):
    """Two ranks of a data-parallel job read disjoint rows whose union is every global batch, in batch order."""
    source = MappedArray(array_file)
    perm = torch.randperm(len(source), generator=torch.Generator().manual_seed(1))
    read = {}
    for rank in (0, 1):
        stream = MinibatchStream(source, 100)
        ctx = Context(rank=rank, world_size=2, local_rank=rank)
        read[rank] = [(idx, x) for idx, x in stream.batches(perm, shard=ctx)]
    for (idx, x0), (_, x1) in zip(read[0], read[1]):
        assert torch.equal(x0, source[idx[0::2]]) and torch.equal(x1, source[idx[1::2]])
    assert sum(len(x) for _, x in read[0] + read[1]) == len(source)


# -- training on streamed data equals training on the data in memory ---------------------------------------
@pytest.mark.parametrize("kind, decode_once", [("array", None), ("folder", True), ("folder", False)])
def test_a_streamed_run_trains_exactly_as_the_run_in_memory(tmp_path, kind, decode_once, array_file, image_folder):
    """Same order, same dynamic binarization, same steps: bit-identical weights and figures (a folder read from
    its decoded uint8 copy, or decoded every batch by two DataLoader workers, which draw nothing from the run's
    random stream)."""
    where = array_file if kind == "array" else image_folder
    metrics = {}
    for stream in ("never", "always"):
        metrics[stream] = train_run(_config(kind, where, stream, decode_once=decode_once, epochs=2),
                                    tmp_path / stream, quiet=True, plots=False, tensorboard=False)
    _same_weights(tmp_path / "never", tmp_path / "always")
    assert [m["test_elbo"] for m in metrics["never"]] == [m["test_elbo"] for m in metrics["always"]]


def test_a_streamed_run_stopped_mid_epoch_resumes_to_the_uninterrupted_runs_weights(tmp_path, image_folder):
    config = _config("folder", image_folder, "always", decode_once=False, epochs=2)  # decoded in workers
    train_run(config, tmp_path / "whole", quiet=True, plots=False, tensorboard=False)
    steps = []
    with pytest.raises(TrainingInterrupted):
        train(setup(config), monitors=[RunFolder(tmp_path / "resumed")],
              stop_requested=lambda: steps.append(1) or len(steps) == 13)  # epoch 2, step 3 (10 steps an epoch)
    assert json.loads((tmp_path / "resumed" / "metrics.jsonl").read_text())["epoch"] == 1
    resume_run(tmp_path / "resumed", quiet=True, plots=False, tensorboard=False)
    _same_weights(tmp_path / "whole", tmp_path / "resumed")


def test_an_image_damaged_mid_epoch_stops_training_cleanly_and_the_run_resumes(tmp_path, image_folder):
    """A PNG whose header reads but whose pixels are cut, in a folder decoded every batch: met while training,
    it stops the run with one line naming it (exit 2), the state after the last step is saved, and with the
    file mended the run resumes. (Decoded once, the same file is refused at start-up, naming it.)"""
    import shutil

    folder = tmp_path / "images"
    shutil.copytree(image_folder, folder)
    victim = sorted((folder / "train").rglob("*.png"))[300]
    good = victim.read_bytes()
    victim.write_bytes(good[:60])  # the header reads (the run starts), the pixels do not decode
    out = tmp_path / "run"
    done = run_vae("train", "--dataset", "folder", "--data-dir", folder, "--stream", "always", "--no-decode-once",
                   "--epochs", "1",
                   "--batch-size", "64", "--compile", "off", "--quiet", "--no-plots", "--out", out,
                   "--checkpoint-every", "1")
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr and lines[-1].startswith("vae: error: training stopped at epoch 1")
    assert str(victim) in lines[-1] and "--resume" in lines[-1]
    assert (out / "checkpoint.pt").is_file()
    victim.write_bytes(good)
    again = run_vae("train", "--resume", out, "--quiet", "--no-plots")
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["epoch"] == 1
    victim.write_bytes(good[:60])
    once = run_vae("train", "--dataset", "folder", "--data-dir", folder, "--stream", "always", "--epochs", "1",
                   "--quiet", "--no-plots", "--out", tmp_path / "once")
    assert once.returncode == 2 and "Traceback" not in once.stderr
    assert once.stderr.strip().splitlines()[-1].startswith(f"vae: error: cannot decode image {victim}")


def test_evaluate_compress_and_diagnose_read_a_streamed_test_set_as_the_one_in_memory(tmp_path, array_file):
    """The same run trained twice (in memory, streamed): the same importance-sampled log p(x), the same bits of
    the losslessly coded test images (bits-back) and the same worst test point by the guide's k-hat screening
    (the NUTS reference after it is not compared: its few draws vary between processes)."""
    found = {}
    for stream in ("never", "always"):
        out = tmp_path / stream
        done = run_vae("train", "--dataset", "array", "--data-dir", array_file, "--stream", stream, "--epochs", "1",
                       "--quiet", "--no-plots", "--out", out, "--seed", "0", "--compile", "off")
        assert done.returncode == 0, done.stderr
        for args in (["evaluate", out, "--json", out / "e.json", "--iw-samples", "20"],
                     ["compress", out, "--lossless", "--test-images", "5", "-o", out / "c.vae"],
                     ["diagnose", out, "--split", "test", "--worst", "1", "--screen", "30", "--chains", "2",
                      "--draws", "20", "--warmup", "20", "--guide-samples", "50"]):
            done = run_vae(*args)
            assert done.returncode == 0, done.stderr
        evaluation = json.loads((out / "e.json").read_text())
        diagnosis = json.loads((out / "diagnostics" / "summary.json").read_text())
        found[stream] = (evaluation["elbo"], evaluation.get("log_likelihood"), (out / "c.vae").read_bytes(),
                         json.dumps(diagnosis.get("screening"), sort_keys=True))
    assert found["never"] == found["always"]
