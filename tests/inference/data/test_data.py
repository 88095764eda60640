"""Data: the embedded split, the IDX reader against torchvision's (and fuzzed), binarization."""
import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from pyro_vae.inference import UserError
from pyro_vae.inference.data.datasets import IDX_FILES, MinibatchStream, binarize_once, load_idx_folder, read_idx

from tests.helpers import write_folder, write_idx

FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_embedded_split_is_stratified_and_deterministic(embedded):
    assert embedded.train_x.shape == (4500, 1, 28, 28) and embedded.test_x.shape == (500, 1, 28, 28)
    assert torch.bincount(embedded.test_y).tolist() == [50] * 10
    assert 0.0 <= embedded.train_x.min() and embedded.train_x.max() == 1.0
    from pyro_vae.inference.data.datasets import load_embedded_mnist

    assert torch.equal(load_embedded_mnist().test_x, embedded.test_x)


def test_idx_reader_agrees_with_torchvision(tmp_path):
    from torchvision.datasets.mnist import read_image_file, read_label_file

    arrays = write_folder(tmp_path)
    write_idx(tmp_path / "raw-images", arrays["train_images"])
    write_idx(tmp_path / "raw-labels", arrays["train_labels"])
    data = load_idx_folder(tmp_path, "idx")
    assert torch.equal(data.train_x[:, 0], read_image_file(str(tmp_path / "raw-images")).float() / 255)
    assert torch.equal(data.train_y, read_label_file(str(tmp_path / "raw-labels")).long())
    assert data.test_x.shape == (10, 1, 28, 28)


@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_debian_fashion_mnist_reads_like_torchvision(tmp_path):
    from torchvision.datasets.mnist import read_image_file

    data = load_idx_folder(FASHION, "fashion-mnist")
    assert data.train_x.shape == (60000, 1, 28, 28) and data.test_x.shape == (10000, 1, 28, 28)
    raw = tmp_path / "t10k"
    raw.write_bytes(gzip.open(FASHION / IDX_FILES["test_images"]).read())
    assert torch.equal(data.test_x[:, 0], read_image_file(str(raw)).float() / 255)


def test_truncated_idx_file_is_a_clear_error(tmp_path):
    write_folder(tmp_path)
    path = tmp_path / IDX_FILES["train_images"]
    raw = gzip.open(path).read()
    write_bytes = gzip.open(path, "wb")
    write_bytes.write(raw[:-100])
    write_bytes.close()
    with pytest.raises(UserError, match="truncated"):
        read_idx(path)
    path.write_bytes(path.read_bytes()[:40])  # a cut gzip stream
    with pytest.raises(UserError, match="cannot read IDX"):
        read_idx(path)


def test_dynamic_binarization_is_fresh_each_draw_and_unbiased():
    torch.manual_seed(0)
    grey = torch.rand(64, 1, 4, 4)
    stream = MinibatchStream(grey, batch_size=64, dynamic=True)
    assert set(next(iter(stream))[1].unique().tolist()) <= {0.0, 1.0}
    total = torch.zeros_like(grey)
    k = 2000
    for _ in range(k):
        idx, x = next(iter(stream))
        total[idx] += x
    mean = total / k
    # each pixel's mean of k Bernoulli(p) draws: standard error sqrt(p(1-p)/k) <= 0.0112
    assert (mean - grey).abs().max() < 5 * 0.5 / k ** 0.5
    a, b = (next(iter(MinibatchStream(grey, 64, dynamic=True)))[1] for _ in range(2))
    assert not torch.equal(a, b)


def test_static_binarization_is_fixed():
    grey = torch.rand(10, 1, 4, 4)
    assert torch.equal(binarize_once(grey), binarize_once(grey))
    assert set(binarize_once(grey).unique().tolist()) <= {0.0, 1.0}


def test_minibatches_cover_every_point_once_per_epoch():
    x = torch.arange(10.0).reshape(10, 1)
    seen = torch.cat([idx for idx, _ in MinibatchStream(x, 3)])
    assert sorted(seen.tolist()) == list(range(10)) and len(MinibatchStream(x, 3)) == 4


def test_streamed_batches_equal_on_device_batches():
    """The host-streaming path yields the same (indices, images) in the same order as indexing in place."""
    x = torch.rand(300, 1, 4, 4)
    in_place = MinibatchStream(x, 64)
    streamed = MinibatchStream(x, 64, device="cpu")
    streamed.streaming = True  # what a CUDA run with the images left on the host does (here the copy is to CPU)
    perm = torch.randperm(300, generator=torch.Generator().manual_seed(0))
    pairs = list(zip(in_place.batches(perm, start=1), streamed.batches(perm, start=1)))
    assert len(pairs) == 4 and pairs[-1][0][0].shape == (300 - 4 * 64,)
    for (i, a), (j, b) in pairs:
        assert torch.equal(i, j) and torch.equal(a, b) and torch.equal(a, x[i])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_pinned_streaming_to_cuda_gives_the_host_batches():
    x = torch.rand(1000, 1, 8, 8)
    stream = MinibatchStream(x, 128, device="cuda")
    perm = torch.randperm(1000)
    for idx, batch in stream.batches(perm):
        assert batch.is_cuda and torch.equal(batch.cpu(), x[idx.cpu()])


# ---- property-based ----

@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_idx_reader_never_crashes_on_arbitrary_bytes(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("fuzz") / "x.idx"
    path.write_bytes(blob)
    try:
        array = read_idx(path)
    except UserError:
        return
    assert array.dtype == np.uint8 and array.size == int(np.prod(array.shape))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=3), st.integers(0, 2 ** 32 - 1))
def test_idx_round_trip(tmp_path_factory, shape, seed):
    array = np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8)
    path = tmp_path_factory.mktemp("rt") / "a.gz"
    write_idx(path, array)
    assert np.array_equal(read_idx(path), array)
