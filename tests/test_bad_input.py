"""Every bad input of the README's table: one line naming the problem and the fix, exit status 2,
no traceback, nothing on disk lost. Property-based tests for config validation and the IDX reader."""
import gzip
import json
import shutil
import subprocess

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from pyro_vae.inference import RunConfig, UserError
from pyro_vae.inference.cli.main import main
from pyro_vae.inference.data.datasets import IDX_FILES, read_idx

from .conftest import ROOT, run_vae
from .test_data import write_folder, write_idx

SMALL = ["--epochs", "1", "--latent-dim", "3", "--hidden-dim", "32", "--quiet"]


def _refuse(capsys, argv):
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vae: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("bad") / "run"
    assert main(["train", *SMALL, "--out", str(out)]) == 0
    return out


def _folder(tmp_path, damage=None, **sizes):
    folder = tmp_path / "idx"
    folder.mkdir()
    write_folder(folder, **sizes)
    if damage:
        damage(folder)
    return folder


def _truncate(folder):
    path = folder / IDX_FILES["train_images"]
    raw = gzip.open(path).read()
    with gzip.open(path, "wb") as fh:
        fh.write(raw[:-50])


def _bad_magic(folder):
    with gzip.open(folder / IDX_FILES["train_images"], "wb") as fh:
        fh.write(b"\x00\x00\x0d\x03" + b"\x00" * 20)


def _cut_gzip(folder):
    path = folder / IDX_FILES["test_labels"]
    path.write_bytes(path.read_bytes()[:12])


def _drop_labels(folder):
    (folder / IDX_FILES["train_labels"]).unlink()


def _mismatch(folder):
    write_idx(folder / IDX_FILES["train_labels"], np.zeros(7))


def _odd_size(folder):
    write_idx(folder / IDX_FILES["train_images"], np.zeros((30, 30, 30)))
    write_idx(folder / IDX_FILES["test_images"], np.zeros((10, 30, 30)))


# (id, argv after "train" (or a full argv), expected message fragment) -- the README table lists these ids
TRAIN_CASES = [
    ("unknown-dataset", ["--dataset", "cifar"], "unknown dataset 'cifar'"),
    ("idx-without-folder", ["--dataset", "idx"], "needs --data-dir"),
    ("missing-folder", ["--dataset", "idx", "--data-dir", "/nonexistent/x"], "does not exist"),
    ("zero-epochs", ["--epochs", "0"], "train.epochs must be positive"),
    ("negative-batch", ["--batch-size", "-5"], "train.batch_size must be positive"),
    ("zero-latent", ["--latent-dim", "0"], "model.latent_dim must be positive"),
    ("negative-lr", ["--lr", "-1"], "train.lr must be positive"),
    ("not-a-number", ["--epochs", "two"], "invalid int value"),
    ("unknown-flag", ["--foo", "1"], "unrecognized arguments"),
    ("unknown-likelihood", ["--likelihood", "cauchy"], "unknown likelihood 'cauchy'"),
    ("unknown-prior", ["--prior", "cauchy"], "unknown prior 'cauchy'"),
    ("unknown-guide", ["--guide", "nf"], "unknown guide 'nf'"),
    ("unknown-device", ["--device", "tpu"], "unknown device 'tpu'"),
    ("unknown-compile-mode", ["--compile", "fast"], "unknown compile mode 'fast'"),
    ("unknown-data-placement", ["--data-placement", "gpu"], "unknown data placement 'gpu'"),
    ("bernoulli-on-grey", ["--binarize", "none"], "models binary pixels"),
    ("8bit-on-binary", ["--likelihood", "discretized_logistic", "--binarize", "dynamic"], "models 8-bit grey levels"),
    ("beta-without-beta-objective", ["--beta", "4"], "objective.beta does not apply to objective 'elbo'"),
    ("dreg-without-iwae", ["--dreg"], "objective.dreg does not apply to objective 'elbo'"),
    ("unknown-schedule", ["--objective", "beta", "--kl-schedule", "cosine"], "unknown KL schedule"),
    ("vamp-conditional", ["--conditional", "--prior", "vamp"], "VampPrior"),
    ("flat-with-stochastic-guide", ["--prior", "flat"], "the flat prior is improper"),
    ("vamp-with-delta", ["--prior", "vamp", "--guide", "delta"], "point masses, so the mixture has no density"),
    ("vamp-with-iaf", ["--prior", "vamp", "--guide", "iaf"], "conditional flows"),
    ("dreg-with-iaf", ["--objective", "iwae", "--dreg", "--guide", "iaf"], "this guide is not Gaussian"),
    ("free-bits-with-mixture-prior", ["--objective", "beta", "--free-bits", "0.1", "--prior", "mog"],
     "the prior does not"),
    ("contractive-with-iaf", ["--objective", "contractive", "--guide", "iaf"], "the mean of a flow"),
    ("adversarial-with-flat-prior", ["--objective", "adversarial", "--prior", "flat", "--guide", "delta"],
     "this prior has no draws"),
    ("zero-clip", ["--clip-norm", "0"], "train.clip_norm must be positive"),
    ("zero-flows", ["--guide-flows", "0"], "guide.flows must be positive"),
    ("negative-checkpoint-every", ["--checkpoint-every", "-1"], "--checkpoint-every must be >= 0"),
    ("resume-without-checkpoint", ["--resume", "/nonexistent/run"], "no checkpoint.pt to resume from"),
    ("zero-processes", ["--nproc", "0"], "--nproc must be >= 1"),
    ("adversarial-data-parallel", ["--family", "adversarial", "--nproc", "2"], "does not train data-parallel"),
    ("zero-discriminator-steps", ["--family", "adversarial", "--discriminator-steps", "0"],
     "objective.discriminator_steps must be positive"),
]

DATA_CASES = [
    ("truncated-idx", _truncate, "truncated"),
    ("bad-magic", _bad_magic, "bad magic number"),
    ("cut-gzip", _cut_gzip, "cannot read IDX"),
    ("missing-file", _drop_labels, "lacks train-labels-idx1-ubyte.gz"),
    ("images-labels-mismatch", _mismatch, "do not match"),
]


@pytest.mark.parametrize("case, args, message", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_bad_train_flags(capsys, tmp_path, case, args, message):
    out = tmp_path / "out"
    assert message in _refuse(capsys, ["train", "--out", out, *args])
    assert not out.exists()


@pytest.mark.parametrize("case, damage, message", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_data_folders(capsys, tmp_path, case, damage, message):
    folder = _folder(tmp_path, damage)
    assert message in _refuse(capsys, ["train", "--dataset", "idx", "--data-dir", folder, "--out", tmp_path / "o"])
    assert not (tmp_path / "o").exists()


def test_empty_dataset(capsys, tmp_path):
    folder = _folder(tmp_path, n_train=0)
    assert "the train set is empty" in _refuse(capsys, ["train", "--dataset", "idx", "--data-dir", folder,
                                                        "--out", tmp_path / "o"])


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan")])
def test_pixels_outside_the_unit_interval_are_refused(embedded, bad):
    from pyro_vae.inference.data.datasets import ImageData, prepare

    x = embedded.train_x[:20].clone()
    x[3, 0, 5, 5] = bad
    data = ImageData("mine", x, embedded.train_y[:20], embedded.test_x[:5], embedded.test_y[:5])
    with pytest.raises(UserError, match=r"not in \[0, 1\]; scale them"):
        prepare(data, "dynamic")


def test_image_size_a_conv_network_cannot_take(capsys, tmp_path):
    folder = _folder(tmp_path, _odd_size)
    assert "divisible by 4" in _refuse(capsys, ["train", "--dataset", "idx", "--data-dir", folder, "--arch", "conv",
                                                "--binarize", "static", "--out", tmp_path / "o"])


def test_output_is_a_file_or_cannot_be_created(capsys, tmp_path):
    f = tmp_path / "file"
    f.write_text("keep me")
    assert "is not a folder" in _refuse(capsys, ["train", "--out", f])
    assert f.read_text() == "keep me"
    assert "cannot create output folder" in _refuse(capsys, ["train", *SMALL, "--out", f / "run"])


def test_existing_run_needs_force(capsys, tmp_path, run_dir):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    before = {str(p.relative_to(copy)): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    assert "already holds a run" in _refuse(capsys, ["train", "--out", copy])
    assert {str(p.relative_to(copy)): p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before


def test_force_leaves_nothing_derived_from_the_old_model(tmp_path, run_dir):
    """Files written after training (ex-post samples, the report, an evaluation) describe the old model: a
    retrain with --force removes them with the rest, so the folder holds only the new run's files."""
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    assert main(["sample", str(copy), "--ex-post", "2", "-n", "4"]) == 0
    assert main(["report", str(copy)]) == 0
    assert main(["evaluate", str(copy), "--limit", "50"]) == 0
    derived = ("samples_ex_post.png", "report.html", "evaluation.json")
    assert all((copy / name).is_file() for name in derived)
    assert main(["train", *SMALL, "--seed", "1", "--out", str(copy), "--force"]) == 0
    assert not [name for name in derived if (copy / name).exists()]


def test_bad_run_folders(capsys, tmp_path, run_dir):
    assert "does not exist" in _refuse(capsys, ["evaluate", tmp_path / "none"])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no config file" in _refuse(capsys, ["evaluate", empty])
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    (broken / "config.json").write_text("{not json")
    assert "cannot read config" in _refuse(capsys, ["evaluate", broken])
    (broken / "config.json").write_text(json.dumps({"model": {"latent_dims": 3}}))
    assert "unknown key 'latent_dims'" in _refuse(capsys, ["evaluate", broken])


def test_checkpoint_from_another_model(capsys, tmp_path, run_dir):
    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["model"]["hidden_dim"] = 48
    (other / "config.json").write_text(json.dumps(cfg))
    assert "has shape" in _refuse(capsys, ["evaluate", other])


def test_malicious_and_truncated_checkpoints(capsys, tmp_path, run_dir):
    from .test_checkpoint import _RunsCode

    bad = tmp_path / "bad"
    shutil.copytree(run_dir, bad)
    marker = tmp_path / "pwned"
    torch.save({"model": _RunsCode(str(marker))}, bad / "weights.pt")
    assert "refusing to load" in _refuse(capsys, ["evaluate", bad])
    assert not marker.exists()
    (bad / "weights.pt").write_bytes((run_dir / "weights.pt").read_bytes()[:500])
    assert "cannot read checkpoint" in _refuse(capsys, ["evaluate", bad])


def test_bad_sample_requests(capsys, run_dir, tmp_path):
    assert "-n must be positive" in _refuse(capsys, ["sample", run_dir, "-n", "0"])
    assert "needs a conditional VAE" in _refuse(capsys, ["sample", run_dir, "--label", "3"])
    assert "does not exist" in _refuse(capsys, ["sample", run_dir, "--out", tmp_path / "no" / "s.png"])
    assert "--ex-post must be a number of mixture components" in _refuse(capsys, ["sample", run_dir, "--ex-post", "-1"])
    assert "cannot fit a mixture of 99999 components" in _refuse(capsys, ["sample", run_dir, "--ex-post", "99999"])
    assert not (run_dir / "samples_ex_post.png").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu(capsys, tmp_path):
    assert "no CUDA GPU" in _refuse(capsys, ["train", "--device", "cuda", "--out", tmp_path / "o"])


def test_full_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        proc = run_vae("train", *SMALL, "--out", mount / "run")
        assert proc.returncode == 2
        err = proc.stderr.strip()
        assert err.startswith("vae: error: cannot write") and "No space left on device" in err
        assert "\n" not in err and "Traceback" not in err
        assert not [p for p in (mount / "run").iterdir() if p.name.endswith(".tmp")]  # no half-written file
        json.loads((mount / "run" / "config.json").read_text())  # what was written is whole
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


COMPARE_EM_CASES = [
    ("em-unknown-setting", ["--settings", "pca"], "unknown setting 'pca'"),
    ("em-zero-epochs", ["--nonlinear-epochs", "0"], "nonlinear_epochs must be positive"),
    ("em-unknown-dataset", ["--dataset", "cifar"], "unknown dataset 'cifar'"),
]


@pytest.mark.parametrize("case, args, message", COMPARE_EM_CASES, ids=[c[0] for c in COMPARE_EM_CASES])
def test_bad_compare_em_flags(capsys, tmp_path, case, args, message):
    out = tmp_path / "cmp"
    assert message in _refuse(capsys, ["compare-em", "--out", out, *args])
    assert not out.exists()


def test_readme_table_lists_every_case():
    readme = (ROOT / "README.md").read_text()
    for case, _, message in TRAIN_CASES + DATA_CASES + COMPARE_EM_CASES:
        assert f"`{case}`" in readme and message in readme, case


# ---- property-based tests ----

VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 500), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(max_size=8), st.sampled_from(["bernoulli", "vamp", "iwae", "beta", "none", "conv"]))
FIELDS = {section: list(cls().to_dict()) for section, cls in RunConfig.SECTIONS.items()}


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(list(FIELDS)),
                       st.dictionaries(st.sampled_from(sorted({f for fs in FIELDS.values() for f in fs} | {"junk"})),
                                       VALUES, max_size=4), max_size=4))
def test_config_validation_either_accepts_and_round_trips_or_refuses_clearly(raw):
    try:
        cfg = RunConfig.from_dict(raw)
    except UserError as err:
        assert str(err) and "\n" not in str(err)
        return
    assert RunConfig.from_dict(json.loads(cfg.to_json())) == cfg


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


def test_diagnose_refuses_bad_points(capsys, run_dir):
    assert "--points must be in 1..4500 (the train set's size)" in _refuse(capsys, ["diagnose", run_dir, "--points", "0"])
    assert "--points must be in 1..500 (the test set's size)" in _refuse(capsys, ["diagnose", run_dir, "--points",
                                                                              "600", "--split", "test"])
    assert "train index 9999 is out of range 0..4499" in _refuse(capsys, ["diagnose", run_dir, "--indices", "9999"])
    assert "test index 600 is out of range 0..499" in _refuse(capsys, ["diagnose", run_dir, "--indices", "600"])
    assert "--draws must be positive" in _refuse(capsys, ["diagnose", run_dir, "--draws", "0"])
    assert "--worst must be in 1..30" in _refuse(capsys, ["diagnose", run_dir, "--worst", "40", "--screen", "30"])
    assert "--indices or --worst, not both" in _refuse(capsys, ["diagnose", run_dir, "--worst", "2", "--indices", "1"])
    assert "--points or --worst, not both" in _refuse(capsys, ["diagnose", run_dir, "--worst", "2", "--points", "3"])
    assert "give --worst N too" in _refuse(capsys, ["diagnose", run_dir, "--screen", "100"])
    assert "invalid choice: 'valid'" in _refuse(capsys, ["diagnose", run_dir, "--split", "valid"])
    assert not (run_dir / "diagnostics").exists()
