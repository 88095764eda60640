"""Each bad input of your own data: one line naming the problem (and the file, row or column), exit status 2,
nothing on disk lost: the old run in --out (overwritten only with --force) and the data folder are unchanged."""
import numpy as np
import pytest
from PIL import Image

from inference.cli.main import main
from inference.data import images as image_io

from . import own_data
from .test_bad_input import _refuse


def _snapshot(folder):
    """Every file's bytes, but the decoded-image cache (an addition, which a later run reuses)."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and image_io.CACHE_FOLDER not in p.parts}


def _refused_keeping_everything(capsys, tmp_path, data_args, extra=()):
    out = tmp_path / "old_run"
    out.mkdir(exist_ok=True)
    (out / "config.json").write_text('{"kept": true}')
    before = _snapshot(tmp_path)
    err = _refuse(capsys, ["train", "--out", out, "--force", "--epochs", "1", "--quiet", *data_args, *extra])
    assert _snapshot(tmp_path) == before, "a refused command changed files on disk"
    return err


def _folder(tmp_path, **kwargs):
    return own_data.image_folder(tmp_path / "data", n_train=8, n_test=4, **kwargs)


def _empty_split(tmp_path):
    folder = _folder(tmp_path, classes=False)
    for p in (folder / "test").iterdir():
        p.unlink()
    return ["--dataset", "folder", "--data-dir", folder], "data/test is empty: it holds no image files"


def _empty_folder(tmp_path):
    (tmp_path / "data").mkdir()
    return ["--dataset", "folder", "--data-dir", tmp_path / "data"], "has no train/ folder"


def _mixed_sizes(tmp_path):
    folder = _folder(tmp_path, classes=False)
    Image.fromarray(np.zeros((20, 12, 3), np.uint8)).save(folder / "train" / "odd.png")
    return ["--dataset", "folder", "--data-dir", folder], "images of different sizes: "


def _truncated(tmp_path):
    folder = _folder(tmp_path, classes=False)
    victim = folder / "train" / "000003.png"
    victim.write_bytes(victim.read_bytes()[:60])
    return ["--dataset", "folder", "--data-dir", folder], "000003.png"


def _not_an_image(tmp_path):
    folder = _folder(tmp_path, classes=False)
    (folder / "test" / "notes.png").write_text("not a picture")
    return ["--dataset", "folder", "--data-dir", folder], "cannot read image"


def _empty_class(tmp_path):
    folder = _folder(tmp_path)
    (folder / "train" / "zebra").mkdir()
    return ["--dataset", "folder", "--data-dir", folder], "class folder"


def _csv_text_column(tmp_path):
    (tmp_path / "data").mkdir()
    path = tmp_path / "data" / "t.csv"
    path.write_text("height,city,weight\n1.5,3,60\n1.7,Paris,72\n1.6,4,65\n")
    return ["--dataset", "array", "--data-dir", path, "--likelihood", "gaussian"], "column 'city' (number 2) is not numeric"


def _npz_without_train_x(tmp_path):
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "a.npz", x=np.zeros((4, 3)))
    return ["--dataset", "array", "--data-dir", tmp_path / "data" / "a.npz"], "has no array 'train_x'"


def _nan_row(tmp_path):
    (tmp_path / "data").mkdir()
    x = np.ones((10, 3))
    x[6, 1] = np.nan
    np.save(tmp_path / "data" / "a.npy", x)
    return ["--dataset", "array", "--data-dir", tmp_path / "data" / "a.npy", "--likelihood", "gaussian"], "row 6 holds NaN"


def _negative_counts(tmp_path):
    (tmp_path / "data").mkdir()
    x = np.ones((10, 3), dtype=np.int64)
    x[2, 0] = -4
    np.savez(tmp_path / "data" / "a.npz", train_x=x, test_x=x)
    return ["--dataset", "array", "--data-dir", tmp_path / "data" / "a.npz", "--likelihood", "poisson"], \
        "models counts (integers >= 0), but row 2 of the train set (a) holds -4"


def _fractional_counts(tmp_path):
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "a.npy", np.full((10, 3), 0.5))
    return ["--dataset", "array", "--data-dir", tmp_path / "data" / "a.npy", "--likelihood", "negative_binomial"], \
        "holds 0.5"


def _bernoulli_outside_01(tmp_path):
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "a.npy", np.full((10, 3), 2.0))
    return ["--dataset", "array", "--data-dir", tmp_path / "data" / "a.npy", "--likelihood", "bernoulli"], \
        "models values in [0, 1], but row 0 of the train set (a) holds 2"


def _count_likelihood_on_images(tmp_path):
    folder = _folder(tmp_path)
    return ["--dataset", "folder", "--data-dir", folder, "--likelihood", "poisson"], "models counts, but 'folder' holds images"


def _conditional_without_labels(tmp_path):
    folder = _folder(tmp_path, classes=False)
    return ["--dataset", "folder", "--data-dir", folder, "--conditional"], "--conditional needs labels"


def _colour_cifar_missing(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cifar-10-batches-py").mkdir()
    (tmp_path / "data" / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"not a pickle")
    for name in [f"data_batch_{i}" for i in range(2, 6)] + ["test_batch"]:
        (tmp_path / "data" / "cifar-10-batches-py" / name).write_bytes(b"")
    return ["--dataset", "cifar10", "--data-dir", tmp_path / "data"], "is not a CIFAR-10 batch file"


CASES = [_empty_split, _empty_folder, _mixed_sizes, _truncated, _not_an_image, _empty_class, _csv_text_column,
         _npz_without_train_x, _nan_row, _negative_counts, _fractional_counts, _bernoulli_outside_01,
         _count_likelihood_on_images, _conditional_without_labels, _colour_cifar_missing]


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
    err = _refuse(capsys, ["evaluate", run])
    assert "built for data of shape (1, 16, 16) (grey images), but the data now has shape (3, 16, 16)" in err
    assert _snapshot(run) == before


def test_the_readme_table_lists_every_case_with_its_message(tmp_path):
    from .conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    for i, case in enumerate(CASES):
        (tmp_path / str(i)).mkdir()
        _, message = case(tmp_path / str(i))
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{case.__name__.strip('_')}` |")), "")
        assert message in row, case.__name__
    assert "`colour-on-grey-network`" in readme
