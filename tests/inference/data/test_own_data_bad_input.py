"""Each bad input of your own data: one line naming the problem (and the file, row or column), exit status 2,
nothing on disk lost: the old run in --out (overwritten only with --force) and the data folder are unchanged."""
import numpy as np
import pytest
from PIL import Image

from pyro_vae.inference.cli.main import main
from pyro_vae.inference.data import images as image_io
from pyro_vae.inference.runs import lock

from tests import own_data
from tests.helpers import refuse
from tests.inference.data import damaged_files
from tests.inference.cli.test_bad_input import SAID


def _snapshot(folder):
    """Every file's bytes, but the decoded-image cache (an addition, which a later run reuses) and the run
    folder's lock files (empty once the refused writer has let go)."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and image_io.CACHE_FOLDER not in p.parts and p.name not in lock.LOCK_FILES}


def _refused_keeping_everything(capsys, tmp_path, data_args, extra=()):
    out = tmp_path / "old_run"
    out.mkdir(exist_ok=True)
    (out / "config.json").write_text('{"kept": true}')
    before = _snapshot(tmp_path)
    err = refuse(capsys, ["train", "--out", out, "--force", "--epochs", "1", "--quiet", *data_args, *extra])
    assert _snapshot(tmp_path) == before, "a refused command changed files on disk"
    return err


def _folder(tmp_path, **kwargs):
    return own_data.image_folder(tmp_path / "data", n_train=8, n_test=4, **kwargs)


def _empty_split(tmp_path):
    """`--dataset folder`: `DIR/test/` without images."""
    folder = _folder(tmp_path, classes=False)
    for p in (folder / "test").iterdir():
        p.unlink()
    return ["--dataset", "folder", "--data-dir", folder], "data/test is empty: it holds no image files"


def _empty_folder(tmp_path):
    """`--dataset folder --data-dir EMPTY`."""
    (tmp_path / "data").mkdir()
    return ["--dataset", "folder", "--data-dir", tmp_path / "data"], "has no train/ folder"


def _mixed_sizes(tmp_path):
    """a folder of 16×16 images and one 12×20 (both files and their sizes named; remedy `--image-size H W`)."""
    folder = _folder(tmp_path, classes=False)
    Image.fromarray(np.zeros((20, 12, 3), np.uint8)).save(folder / "train" / "odd.png")
    return ["--dataset", "folder", "--data-dir", folder], "images of different sizes: "


def _truncated(tmp_path):
    """a PNG cut to 60 bytes (the file named)."""
    folder = _folder(tmp_path, classes=False)
    victim = folder / "train" / "000003.png"
    victim.write_bytes(victim.read_bytes()[:60])
    return ["--dataset", "folder", "--data-dir", folder], "000003.png"


def _not_an_image(tmp_path):
    """`notes.png` holding text."""
    folder = _folder(tmp_path, classes=False)
    (folder / "test" / "notes.png").write_text("not a picture")
    return ["--dataset", "folder", "--data-dir", folder], "cannot read image"


def _empty_class(tmp_path):
    """a class folder `train/zebra/` without images."""
    folder = _folder(tmp_path)
    (folder / "train" / "zebra").mkdir()
    return ["--dataset", "folder", "--data-dir", folder], "class folder"


def _csv_text_column(tmp_path):
    """a CSV whose column `city` holds `Paris`."""
    (tmp_path / "data").mkdir()
    path = tmp_path / "data" / "t.csv"
    path.write_text("height,city,weight\n1.5,3,60\n1.7,Paris,72\n1.6,4,65\n")
    return ["--dataset", "array", "--data-dir", path, "--likelihood", "gaussian"], "column 'city' (number 2) is not numeric"


def _npz_without_train_x(tmp_path):
    """an `.npz` holding only `x`."""
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "a.npz", x=np.zeros((4, 3)))
    return ["--dataset", "array", "--data-dir", tmp_path / "data" / "a.npz"], "has no array 'train_x'"


def _nan_row(tmp_path):
    """an `.npy` with NaN in row 6."""
    (tmp_path / "data").mkdir()
    x = np.ones((10, 3))
    x[6, 1] = np.nan
    np.save(tmp_path / "data" / "a.npy", x)
    return ["--dataset", "array", "--data-dir", tmp_path / "data" / "a.npy", "--likelihood", "gaussian"], "row 6 holds NaN"


def _negative_counts(tmp_path):
    """`--likelihood poisson` on an array holding −4."""
    (tmp_path / "data").mkdir()
    x = np.ones((10, 3), dtype=np.int64)
    x[2, 0] = -4
    np.savez(tmp_path / "data" / "a.npz", train_x=x, test_x=x)
    return ["--dataset", "array", "--data-dir", tmp_path / "data" / "a.npz", "--likelihood", "poisson"], \
        "models counts (integers >= 0), but row 2 of the train set (a) holds -4"


def _fractional_counts(tmp_path):
    """`--likelihood negative_binomial` on 0.5."""
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "a.npy", np.full((10, 3), 0.5))
    return ["--dataset", "array", "--data-dir", tmp_path / "data" / "a.npy", "--likelihood", "negative_binomial"], \
        "holds 0.5"


def _bernoulli_outside_01(tmp_path):
    """`--likelihood bernoulli` on an array of 2s."""
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "a.npy", np.full((10, 3), 2.0))
    return ["--dataset", "array", "--data-dir", tmp_path / "data" / "a.npy", "--likelihood", "bernoulli"], \
        "models values in [0, 1], but data row 0 of a (0-based) holds 2"


def _count_likelihood_on_images(tmp_path):
    """`--dataset folder --likelihood poisson`."""
    folder = _folder(tmp_path)
    return ["--dataset", "folder", "--data-dir", folder, "--likelihood", "poisson"], "models counts, but 'folder' holds images"


def _conditional_without_labels(tmp_path):
    """`--conditional` on a folder without class folders."""
    folder = _folder(tmp_path, classes=False)
    return ["--dataset", "folder", "--data-dir", folder, "--conditional"], "--conditional needs labels"


def _colour_cifar_missing(tmp_path):
    """`--dataset cifar10` with a damaged `data_batch_1`."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cifar-10-batches-py").mkdir()
    (tmp_path / "data" / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"not a pickle")
    for name in [f"data_batch_{i}" for i in range(2, 6)] + ["test_batch"]:
        (tmp_path / "data" / "cifar-10-batches-py" / name).write_bytes(b"")
    return ["--dataset", "cifar10", "--data-dir", tmp_path / "data"], "is not a CIFAR-10 batch file"


def _streamed_truncated_png(tmp_path):
    """`--stream always`: a PNG cut to 60 bytes, met while the folder is decoded once (the file named)."""
    folder = _folder(tmp_path, classes=False)
    victim = sorted((folder / "train").iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:60])
    return ["--dataset", "folder", "--data-dir", folder, "--stream", "always"], f"cannot decode image {victim}"


def _streamed_nan_row(tmp_path):
    """`--stream always`: an `.npy` read through a memory map with NaN in row 6."""
    (tmp_path / "data").mkdir()
    x = np.zeros((10, 3))
    x[6, 1] = np.nan
    np.save(tmp_path / "data" / "a.npy", x)
    return ["--dataset", "array", "--data-dir", tmp_path / "data" / "a.npy", "--likelihood", "gaussian",
            "--stream", "always"], "a.npy row 6 holds NaN"


def _streamed_truncated_npy(tmp_path):
    """`--stream always`: an `.npy` whose header promises more rows than the file holds."""
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "a.npy", np.zeros((100, 3), np.float32))
    path = tmp_path / "data" / "a.npy"
    path.write_bytes(path.read_bytes()[:-40])
    return ["--dataset", "array", "--data-dir", path, "--likelihood", "gaussian", "--stream", "always"], \
        "is truncated: its header says (100, 3) of float32"


def _streamed_npz_inf(tmp_path):
    """`--stream always`: an `.npz` converted for streaming, with Inf in test_x row 1 (no cache left behind)."""
    (tmp_path / "data").mkdir()
    test = np.zeros((4, 3))
    test[1, 2] = np.inf
    np.savez(tmp_path / "data" / "a.npz", train_x=np.zeros((10, 3)), test_x=test)
    return ["--dataset", "array", "--data-dir", tmp_path / "data" / "a.npz", "--likelihood", "gaussian",
            "--stream", "always"], "a.npz: test_x row 1 holds NaN or Inf"


def _streamed_csv_index(tmp_path):
    """`--stream always`: a CSV saved with pandas' index column (remedy: `index=False`)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text(",a,b\n0,1,2\n1,3,4\n2,5,6\n")
    return ["--dataset", "array", "--data-dir", tmp_path / "data" / "a.csv", "--likelihood", "gaussian",
            "--stream", "always"], "starts with an unnamed index column"


def _stream_for_in_memory_data(tmp_path):
    """`--stream always` for data read into memory (the embedded digits)."""
    return ["--stream", "always"], "--stream always reads folder, array and anndata data from disk"


def _option_of_another_dataset(tmp_path):
    """`--layer` (an AnnData option) with `--dataset array`."""
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "a.npy", np.zeros((10, 3)))
    return ["--dataset", "array", "--data-dir", tmp_path / "data" / "a.npy", "--layer", "counts"], \
        "data.layer (--layer) applies to dataset 'anndata', not 'array'"


CASES = [_empty_split, _empty_folder, _mixed_sizes, _truncated, _not_an_image, _empty_class, _csv_text_column,
         _npz_without_train_x, _nan_row, _negative_counts, _fractional_counts, _bernoulli_outside_01,
         _count_likelihood_on_images, _conditional_without_labels, _colour_cifar_missing, _streamed_truncated_png,
         _streamed_nan_row, _streamed_truncated_npy, _streamed_npz_inf, _streamed_csv_index,
         _stream_for_in_memory_data, _option_of_another_dataset,
         *damaged_files.CASES]  # headers that lie, archives and pickles, CSVs that are not text, huge images


@pytest.mark.parametrize("case", CASES, ids=[c.__name__.strip("_") for c in CASES])
def test_bad_own_data_is_refused_in_one_line(capsys, tmp_path, case):
    args, message = case(tmp_path)
    assert message in _refused_keeping_everything(capsys, tmp_path, args)


def test_mixed_sizes_name_two_files_of_different_sizes(capsys, tmp_path):
    args, _ = _mixed_sizes(tmp_path)
    err = _refused_keeping_everything(capsys, tmp_path, args)
    assert "odd.png is 12x20" in err and "is 16x16" in err and "--image-size" in err


def test_a_run_on_grey_images_refuses_the_folder_once_it_is_colour(capsys, tmp_path):
    """The networks were built for one channel; the data on disk turned colour: evaluate says so."""
    folder = own_data.image_folder(tmp_path / "data", n_train=20, n_test=6, channels=1, classes=False)
    run = tmp_path / "run"
    assert main(["train", "--dataset", "folder", "--data-dir", str(folder), "--epochs", "1", "--quiet",
                 "--hidden-dim", "16", "--latent-dim", "2", "--no-plots", "--out", str(run)]) == 0
    for split in ("train", "test"):
        for p in (folder / split).iterdir():
            Image.open(p).convert("RGB").save(p)
    before = _snapshot(run)
    err = refuse(capsys, ["evaluate", run])
    assert SAID["colour-on-grey-network"] in err
    assert _snapshot(run) == before


# ---- found by a review: each once a traceback or a silently wrong load ----

def test_colour_set_without_data_dir_uses_the_default_root(tmp_path, monkeypatch):
    import torchvision.datasets as tvd
    from pyro_vae.inference.data import colour_sets
    from pyro_vae.inference.config.sections import DataConfig
    from pyro_vae.inference.data.loaders import load_dataset
    from pyro_vae.inference import UserError

    monkeypatch.setattr(colour_sets, "DEFAULT_ROOT", tmp_path / "cache")
    monkeypatch.setattr(tvd, "CIFAR10", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("offline")))
    with pytest.raises(UserError, match=f"cifar10 is not in {tmp_path / 'cache' / 'cifar10'}"):
        load_dataset(DataConfig(dataset="cifar10"))


def test_sixteen_bit_and_float_grey_images_keep_their_levels(tmp_path):
    from pyro_vae.inference.data.images import decode

    ramp = (np.arange(256, dtype=np.uint16).reshape(16, 16) * 257)  # 0..65535
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    assert np.array_equal(decode(tmp_path / "g16.png", 1)[0], (ramp >> 8).astype(np.uint8))
    floats = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(floats).save(tmp_path / "f.tiff")
    assert np.array_equal(decode(tmp_path / "f.tiff", 1)[0], np.round(floats * 255).astype(np.uint8))


def test_a_damaged_cache_is_decoded_again(tmp_path):
    from pyro_vae.inference.config.sections import DataConfig
    from pyro_vae.inference.data.loaders import load_dataset

    folder = _folder(tmp_path)
    first = load_dataset(DataConfig(dataset="folder", data_dir=str(folder)))
    cache, = (folder / image_io.CACHE_FOLDER).glob("*.npz")
    cache.write_bytes(cache.read_bytes()[:300])
    again = load_dataset(DataConfig(dataset="folder", data_dir=str(folder)))
    assert np.array_equal(again.train_x.numpy(), first.train_x.numpy())


def _write(tmp_path, name, content):
    (tmp_path / "data").mkdir(exist_ok=True)
    path = tmp_path / "data" / name
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    return path


@pytest.mark.parametrize("name, make, message", [
    ("cut.npz", lambda p: p.write_bytes(_npz_bytes()[:200]), "is a damaged or truncated zip archive"),
    ("renamed.npz", lambda p: np.save(open(p, "wb"), np.ones((4, 3))), "a single .npy array, not an .npz archive"),
])
def test_broken_npz_files(capsys, tmp_path, name, make, message):
    (tmp_path / "data").mkdir()
    make(tmp_path / "data" / name)
    assert message in _refused_keeping_everything(capsys, tmp_path, ["--dataset", "array", "--data-dir",
                                                                     tmp_path / "data" / name])


def _npz_bytes():
    import io

    buffer = io.BytesIO()
    np.savez(buffer, train_x=np.ones((20, 3)), test_x=np.ones((5, 3)))
    return buffer.getvalue()


def test_a_csv_with_a_byte_order_mark_keeps_its_first_row(tmp_path):
    from pyro_vae.inference.data.arrays import read_csv

    path = _write(tmp_path, "bom.csv", b"\xef\xbb\xbf1,2\n3,4\n5,6\n")
    assert read_csv(path)[0].tolist() == [[1, 2], [3, 4], [5, 6]]


def test_large_whole_numbers_stay_real_and_a_count_likelihood_refuses_them(capsys, tmp_path):
    from pyro_vae.inference.data.arrays import read_csv

    path = _write(tmp_path, "big.csv", "a,b\n" + "\n".join(f"{3e7 + i},{1e30}" for i in range(12)) + "\n")
    assert read_csv(path)[0].dtype == np.float64
    err = _refused_keeping_everything(capsys, tmp_path, ["--dataset", "array", "--data-dir", path,
                                                         "--likelihood", "poisson"])
    assert "counts are integers from 0 to 2**24" in err


def test_value_errors_name_the_row_of_the_file(capsys, tmp_path):
    rows = [[1, 2]] * 60
    rows[49] = [-4, 2]
    path = _write(tmp_path, "neg.csv", "\n".join(f"{a},{b}" for a, b in rows) + "\n")
    err = _refused_keeping_everything(capsys, tmp_path, ["--dataset", "array", "--data-dir", path,
                                                         "--likelihood", "poisson"])
    assert "data row 49 of neg (0-based) holds -4" in err


def test_a_test_class_without_training_images_is_refused(capsys, tmp_path):
    folder = _folder(tmp_path)
    next(d for d in sorted((folder / "test").iterdir()) if d.is_dir()).rename(folder / "test" / "bird")
    err = _refused_keeping_everything(capsys, tmp_path, ["--dataset", "folder", "--data-dir", folder])
    assert "test/bird is a class with no folder in" in err


def test_standardize_with_binarization_is_refused(capsys, tmp_path):
    assert "cannot be binarized" in refuse(capsys, ["train", "--likelihood", "gaussian", "--binarize", "dynamic",
                                                    "--standardize", "--out", tmp_path / "o"])


def test_prepare_refuses_an_unresolved_binarization(embedded):
    from pyro_vae.inference.data.datasets import prepare

    with pytest.raises(ValueError, match="'auto' is resolved by RunConfig.validate"):
        prepare(embedded, "auto")


def test_a_large_initial_dispersion_stays_finite():
    import torch
    from pyro_vae.models import LIKELIHOODS

    lik = LIKELIHOODS.get("negative_binomial")(torch.Size([2]), scale=500.0)
    assert torch.isfinite(lik.dispersion).all() and abs(lik.dispersion[0].item() - 500) < 0.1


def test_counts_with_gaussian_input_noise_train(tmp_path):
    from pyro_vae.inference.cli.main import main as vae

    _write(tmp_path, "x", "")
    x = np.random.default_rng(0).poisson(0.3, (200, 6))
    np.save(tmp_path / "data" / "c.npy", x)
    assert vae(["train", "--dataset", "array", "--data-dir", str(tmp_path / "data" / "c.npy"), "--likelihood",
                "poisson", "--corruption", "gaussian", "--corruption-level", "1", "--epochs", "1", "--quiet",
                "--no-plots", "--no-tensorboard", "--hidden-dim", "16", "--latent-dim", "2",
                "--out", str(tmp_path / "run")]) == 0


def test_a_pandas_index_column_is_dropped_and_the_column_names_kept(tmp_path):
    from pyro_vae.inference.data.arrays import read_csv

    path = _write(tmp_path, "p.csv", ",height,weight\n0,1.5,60\n1,1.7,72\n2,1.6,65\n")
    table, names = read_csv(path)
    assert names == ("height", "weight") and table.tolist() == [[1.5, 60], [1.7, 72], [1.6, 65]]


def test_an_empty_csv_cell_is_named_a_missing_value(capsys, tmp_path):
    path = _write(tmp_path, "m.csv", "a,b\n1,2\n3,\n5,6\n")
    assert "column 'b' (number 2) is empty on line 3: a missing value" in _refused_keeping_everything(
        capsys, tmp_path, ["--dataset", "array", "--data-dir", path, "--likelihood", "gaussian"])
