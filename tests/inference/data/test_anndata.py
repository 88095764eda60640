"""AnnData ``.h5ad`` files as a dataset (``--dataset anndata``, ``inference/data/annotated.py``): the rows read, in
memory and streamed from disk, dense and sparse, are the file's matrix at ``source_rows``; an obs column gives the
labels; each bad file is refused in one line; a streamed run trains exactly as the same run in memory."""
import json
import pickle
import sys

import numpy as np
import pytest
import torch

anndata = pytest.importorskip("anndata")
pd = pytest.importorskip("pandas")
sparse = pytest.importorskip("scipy.sparse")

from pyro_vae.inference.data.annotated import AnnDataRows, load_h5ad  # noqa: E402
from pyro_vae.inference.errors import UserError  # noqa: E402

from tests.helpers import run_vae, vae_main  # noqa: E402

N, D = 60, 12
TYPES = ["T", "NK", "B"]  # category order as the file stores it: not sorted


@pytest.fixture(autouse=True)
def _write_strings():
    """pandas 3 makes str columns nullable strings, which anndata 0.12 writes only when allowed."""
    if hasattr(anndata.settings, "allow_write_nullable_strings"):
        with anndata.settings.override(allow_write_nullable_strings=True):
            yield
    else:
        yield


def _counts(seed=0):
    return np.random.default_rng(seed).poisson(1.5, (N, D)).astype(np.int64)


def _write(path, x=None, storage="dense", layers=None, obs=None):
    """An .h5ad file of ``x`` (``.X``: dense, csr or csc; None: no .X), cells named cell_i, genes gene_j, a
    categorical ``cell_type``; returns the path."""
    as_stored = {"dense": lambda a: a, "csr": sparse.csr_matrix, "csc": sparse.csc_matrix}[storage]
    cells = np.random.default_rng(1).choice(TYPES, N)
    table = pd.DataFrame({"cell_type": pd.Categorical(cells, categories=TYPES), "batch": np.arange(N) % 2},
                         index=[f"cell_{i}" for i in range(N)])
    table = table if obs is None else obs
    adata = anndata.AnnData(X=None if x is None else as_stored(x), obs=table,
                            var=pd.DataFrame(index=[f"gene_{j}" for j in range(D)]),
                            layers={k: as_stored(v) for k, v in (layers or {}).items()})
    adata.write_h5ad(path)
    return path


def _rows(x, n):
    """All ``n`` rows of a tensor or a source, read in a shuffled order and put back (a source's random reads)."""
    order = torch.from_numpy(np.random.default_rng(2).permutation(n))
    out = torch.empty((n,) + tuple(x.shape[1:]))
    out[order] = x[order]
    return out.numpy()


@pytest.mark.parametrize("storage", ["dense", "csr", "csc"])
@pytest.mark.parametrize("stream", ["never", "always"])
def test_rows_are_the_files_matrix_at_source_rows(tmp_path, storage, stream):
    x = _counts()
    path = _write(tmp_path / "cells.h5ad", x.astype(np.float32), storage)
    data = load_h5ad(path, label_column="cell_type", test_fraction=0.25, stream=stream)
    train, test = data.source_rows
    assert sorted(np.r_[train, test]) == list(range(N)) and len(test) == 15
    assert torch.is_tensor(data.train_x) == (stream == "never")
    for split, rows in (("train", train), ("test", test)):
        got = getattr(data, f"{split}_x")
        assert got.shape == (len(rows), D) and got.dtype == torch.float32
        np.testing.assert_array_equal(_rows(got, len(rows)), x[rows])
    codes = {"B": 0, "NK": 1, "T": 2}  # the category names sorted
    cells = np.random.default_rng(1).choice(TYPES, N)
    assert data.labelled and data.classes == ("B", "NK", "T")
    assert data.train_y.tolist() == [codes[c] for c in cells[train]]
    assert data.test_y.tolist() == [codes[c] for c in cells[test]]
    assert data.feature_names == tuple(f"gene_{j}" for j in range(D))


def test_a_layer_holds_the_counts_and_integer_columns_are_labels(tmp_path):
    x = _counts()
    normalized = np.log1p(x / x.sum(1, keepdims=True).clip(1) * 1e4)
    path = _write(tmp_path / "cells.h5ad", normalized, "csr", layers={"counts": x.astype(np.int32)})
    data = load_h5ad(path, layer="counts", label_column="batch")
    train, test = data.source_rows
    np.testing.assert_array_equal(data.train_x.numpy(), x[train])
    assert data.train_y.tolist() == (train % 2).tolist() and data.classes == ()
    with pytest.raises(UserError, match=r"cells.h5ad: \.X row \d+ \(obs 'cell_\d+'\) holds .*; the count likelihoods "
                                        r"need non-negative integer counts: pass --layer counts"):
        load_h5ad(path)


def test_a_streamed_source_survives_pickling(tmp_path):
    x = _counts()
    source = AnnDataRows(_write(tmp_path / "c.h5ad", x.astype(np.float32), "csr"))
    copy = pickle.loads(pickle.dumps(source.subset(np.array([5, 1, 40]))))
    np.testing.assert_array_equal(copy[torch.tensor([2, 0, 2, 1])].numpy(), x[[40, 5, 40, 1]])


def _negative(tmp_path):
    x = _counts()
    x[17, 3] = -1
    return _write(tmp_path / "cells.h5ad", x, "csr"), {}, "cells.h5ad: .X row 17 (obs 'cell_17') holds -1; the count"


def _fraction(tmp_path):
    x = _counts().astype(np.float64)
    x[4, 0] = 0.5
    return _write(tmp_path / "cells.h5ad", x), {}, "row 4 (obs 'cell_4') holds 0.5; the count likelihoods need non-"


def _no_layer(tmp_path):
    path = _write(tmp_path / "cells.h5ad", _counts(), layers={"counts": _counts(), "spliced": _counts()})
    return path, {"layer": "raw"}, "has no layer 'raw'; its layers: counts, spliced"


def _no_x(tmp_path):
    return _write(tmp_path / "cells.h5ad", None, layers={"counts": _counts()}), {}, \
        "holds no counts in .X; pick one of its layers with --layer (counts)"


def _no_column(tmp_path):
    return _write(tmp_path / "cells.h5ad", _counts()), {"label_column": "tissue"}, \
        "has no obs column 'tissue'; its obs columns: cell_type, batch"


def _missing_label(tmp_path):
    table = pd.DataFrame({"cell_type": pd.Categorical(["T", None] * (N // 2))}, index=[f"c{i}" for i in range(N)])
    return _write(tmp_path / "cells.h5ad", _counts(), obs=table), {"label_column": "cell_type"}, \
        "obs column 'cell_type' has no value in row 1 (obs 'c1'); every cell needs a label"


def _not_hdf5(tmp_path):
    (tmp_path / "cells.h5ad").write_text("cell,gene\n1,2\n")
    return tmp_path / "cells.h5ad", {}, "as an .h5ad file (HDF5)"


@pytest.mark.parametrize("case", [_negative, _fraction, _no_layer, _no_x, _no_column, _missing_label, _not_hdf5])
def test_a_bad_file_is_refused_in_one_line(tmp_path, case):
    path, options, words = case(tmp_path)
    for stream in ("never", "always"):
        with pytest.raises(UserError) as caught:
            load_h5ad(path, stream=stream, **options)
        assert words in str(caught.value) and "\n" not in str(caught.value)


def test_without_anndata_the_extra_to_install_is_named(tmp_path, monkeypatch):
    path = _write(tmp_path / "cells.h5ad", _counts())
    monkeypatch.setitem(sys.modules, "anndata", None)  # import anndata raises ImportError
    with pytest.raises(UserError, match=r"needs the anndata package: pip install 'pyro-vae-toolkit\[anndata\]'"):
        load_h5ad(path)


def test_the_command_refuses_with_one_line(tmp_path):
    path, _, words = _negative(tmp_path)
    done = run_vae("train", "--dataset", "anndata", "--data-dir", path, "--likelihood", "poisson", "--epochs", "1",
                   "--out", tmp_path / "run", timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and words in done.stderr


def _train(capsys, out, *args):
    status, _, err = vae_main(capsys, "train", "--likelihood", "poisson", "--epochs", "1", "--latent-dim", "2",
                              "--hidden-dim", "16", "--batch-size", "16", "--compile", "off", "--quiet",
                              "--no-plots", "--no-tensorboard", "--out", out, *args)
    assert status == 0, err
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_a_streamed_run_trains_as_the_same_run_in_memory(tmp_path, capsys):
    path = _write(tmp_path / "cells.h5ad", _counts().astype(np.float32), "csr")
    data = ["--dataset", "anndata", "--data-dir", path]
    streamed = _train(capsys, tmp_path / "streamed", *data, "--stream", "always")
    held = _train(capsys, tmp_path / "held", *data, "--stream", "never")
    assert streamed[-1]["test_elbo"] == held[-1]["test_elbo"] and np.isfinite(held[-1]["test_elbo"])
    conditional = _train(capsys, tmp_path / "conditional", *data, "--conditional", "--label-column", "cell_type",
                         "--num-classes", "3")
    assert np.isfinite(conditional[-1]["test_elbo"])
    summary = json.loads((tmp_path / "conditional" / "data.json").read_text())
    assert summary["classes"] == ["B", "NK", "T"] and summary["labelled"]
