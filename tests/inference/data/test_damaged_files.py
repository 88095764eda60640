"""Damaged own-data files (``damaged_files.CASES``, rows of the refusal table) refused alike in memory and streamed;
pickles never unpickled; names that are not UTF-8 read and recorded; huge images refused before decoding."""
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pyro_vae.inference.cli.main import main
from pyro_vae.inference.config.sections import DataConfig
from pyro_vae.inference.data.loaders import load_dataset
from pyro_vae.inference.errors import UserError

from tests import own_data
from tests.helpers import RunsCode, refuse
from tests.inference.data import damaged_files

ARRAY_CASES = [c for c in damaged_files.CASES if c.__name__.startswith(("_npy", "_npz", "_zip", "_pickle", "_csv"))]
TINY = ["--epochs", "1", "--latent-dim", "3", "--hidden-dim", "32", "--quiet", "--no-plots"]


def _without_stream(argv):
    argv = [str(a) for a in argv]
    if "--stream" in argv:
        del argv[argv.index("--stream"):argv.index("--stream") + 2]
    return argv


@pytest.mark.parametrize("case", ARRAY_CASES, ids=[c.__name__.strip("_") for c in ARRAY_CASES])
def test_a_damaged_array_file_is_refused_alike_in_memory_and_streamed(capsys, tmp_path, case):
    argv, message = case(tmp_path)
    answers = set()
    for stream in ("never", "always"):
        out = tmp_path / f"run-{stream}"
        err = refuse(capsys, ["train", *_without_stream(argv), "--stream", stream, "--out", out, *TINY])
        assert message in err and not out.exists()
        answers.add(err.replace(str(tmp_path), "TMP"))
    assert len(answers) == 1, answers  # the same line either way
    assert not list((tmp_path / "data").glob(".vae-cache/*.npy")), "a refused conversion left a cached array"


@pytest.mark.parametrize("stream", ["never", "always"])
def test_a_pickle_inside_an_npz_is_never_unpickled(capsys, tmp_path, stream):
    marker = tmp_path / "ran"
    (tmp_path / "data").mkdir()
    path = tmp_path / "data" / "a.npz"
    np.savez(path, train_x=np.array([RunsCode(marker)] * 4, dtype=object), test_x=np.ones((2, 3)))
    err = refuse(capsys, ["train", "--dataset", "array", "--data-dir", path, "--stream", stream,
                          "--out", tmp_path / "run", *TINY])
    assert "train_x holds Python objects" in err and "never loaded" in err
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_a_fortran_order_npy_is_read_in_memory_and_refused_only_for_streaming(tmp_path):
    x = np.asfortranarray(np.random.default_rng(0).normal(size=(30, 4)))
    np.save(tmp_path / "f.npy", x)
    data = load_dataset(DataConfig(dataset="array", data_dir=str(tmp_path / "f.npy"), stream="never"))
    train, test = data.source_rows
    assert np.array_equal(data.train_x.numpy(), x[train].astype(np.float32))
    assert np.array_equal(data.test_x.numpy(), x[test].astype(np.float32))
    with pytest.raises(UserError, match="Fortran order, which cannot be read a row at a time"):
        load_dataset(DataConfig(dataset="array", data_dir=str(tmp_path / "f.npy"), stream="always"))


def _not_utf8(folder: Path, name: bytes) -> Path:
    return Path(os.fsdecode(os.fsencode(folder) + b"/" + name))


def _recorded_data_dir(run: Path) -> str:
    for name in ("config.json", "data.json"):  # JSON written as UTF-8 text: a lone surrogate escaped as \udcff
        json.loads((run / name).read_bytes().decode("utf-8"))
    return json.loads((run / "config.json").read_text(encoding="utf-8"))["data"]["data_dir"]


@pytest.mark.parametrize("stream", ["never", "always"])
def test_an_image_folder_with_names_that_are_not_utf8_trains_and_is_recorded(tmp_path, stream):
    folder = own_data.image_folder(_not_utf8(tmp_path, b"pics\xff"), n_train=12, n_test=6)
    for split in ("train", "test"):  # a class folder and some files named with bytes that are not UTF-8
        (folder / split / "circle").rename(_not_utf8(folder / split, b"circ\xe9"))
    for p in sorted((folder / "train").rglob("*.png"))[:4]:
        p.rename(_not_utf8(p.parent, b"x\xfe\xff" + os.fsencode(p.name)))
    run = tmp_path / "run"
    assert main(["train", "--dataset", "folder", "--data-dir", str(folder), "--stream", stream, "--out", str(run),
                 *TINY]) == 0
    assert _recorded_data_dir(run) == str(folder)
    assert "circ\udce9" in json.loads((run / "data.json").read_text(encoding="utf-8"))["classes"]
    data = load_dataset(DataConfig(dataset="folder", data_dir=str(folder), stream=stream))
    assert len(data.train_x) == 12 and len(data.test_x) == 6


def test_an_array_path_that_is_not_utf8_is_cached_streamed_and_recorded(tmp_path):
    path = _not_utf8(tmp_path, b"t\xff.csv")
    path.write_text("a,b\n" + "\n".join(f"{i},{i % 7}" for i in range(40)) + "\n")
    run = tmp_path / "run"
    assert main(["train", "--dataset", "array", "--data-dir", str(path), "--likelihood", "gaussian",
                 "--stream", "always", "--out", str(run), *TINY]) == 0
    assert _recorded_data_dir(run) == str(path)
    assert len(list((tmp_path / ".vae-cache").glob("*.json"))) == 1  # converted once, under a key of its bytes


def test_a_refusal_names_a_path_that_is_not_utf8(tmp_path):
    path = _not_utf8(tmp_path, b"bad\xff.npy")
    path.write_bytes(damaged_files.lying_npy((100, 3), 30))
    with pytest.raises(UserError) as err:
        load_dataset(DataConfig(dataset="array", data_dir=str(path)))
    assert str(err.value).startswith(f"{path} is truncated") and "\n" not in str(err.value)


def test_the_cache_key_of_utf8_names_is_unchanged(tmp_path):
    """Hashing a name's bytes on disk (so that any name can be hashed) keeps the keys of caches already written."""
    import hashlib

    from pyro_vae.inference.data.images import CACHE_VERSION, cache_key

    files = [tmp_path / "a.png", tmp_path / "été.png"]
    for f in files:
        f.write_bytes(b"x")
    digest = hashlib.sha256(json.dumps({"version": CACHE_VERSION, "size": 3}, sort_keys=True).encode())
    for p in files:
        st = p.stat()
        digest.update(f"{p.relative_to(tmp_path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    assert cache_key(files, tmp_path, size=3) == digest.hexdigest()[:20]


def test_the_first_line_that_is_not_utf8_is_named_past_a_block(tmp_path):
    from pyro_vae.inference.data.arrays import read_csv

    lines = ["a,b"] + [f"{i},{i}" for i in range(200_000)]  # > 1 MiB: the bad byte lies in the second block
    body = "\n".join(lines).encode() + b"\n3,\xe9\n"
    cut = 2 ** 20 - 1
    body = body[:cut] + "é".encode() + body[cut:]  # a two-byte character across the blocks' border is fine
    (tmp_path / "x.csv").write_bytes(body)
    expected = body[:body.index(b"\xe9\n")].count(b"\n") + 1
    with pytest.raises(UserError, match=f"is not UTF-8 text \\(line {expected} holds the byte 0xe9\\)"):
        read_csv(tmp_path / "x.csv")


def test_an_image_over_the_pixel_limit_is_refused_before_decoding_without_a_warning(tmp_path, monkeypatch):
    from pyro_vae.inference.data.images import decode, read_header

    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / "a.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 600 pixels: over; twice that is Pillow's own error
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for read in (read_header, lambda p: decode(p, 1)):
            with pytest.raises(UserError, match=r"a.png is 30x20 pixels \(600\), more than the 500 Pillow decodes"):
                read(tmp_path / "a.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 600)
    assert decode(tmp_path / "a.png", 1).shape == (1, 20, 30)


@pytest.mark.parametrize("damage, message", [
    (lambda raw: raw + b"\0" * 50, "is corrupt: its header says shape (3, 28, 28) (2368 bytes with the header)"),
    (lambda raw: raw[:-50], "is truncated: its header says shape (3, 28, 28) (2368 bytes with the header), it "
                            "holds 2318"),
    (lambda raw: raw[:4] + b"\xff" * 12, "is truncated: its header says shape (4294967295, 4294967295, 4294967295)"),
])
def test_an_idx_file_of_the_wrong_length_is_refused(tmp_path, damage, message):
    import gzip

    from pyro_vae.inference.data.datasets import read_idx
    from tests.helpers import write_idx

    write_idx(tmp_path / "x.gz", np.zeros((3, 28, 28), np.uint8))
    raw = gzip.decompress((tmp_path / "x.gz").read_bytes())
    (tmp_path / "x.gz").write_bytes(gzip.compress(damage(raw)))
    with pytest.raises(UserError) as err:
        read_idx(tmp_path / "x.gz")
    assert message in str(err.value)
