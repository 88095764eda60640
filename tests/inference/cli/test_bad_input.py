"""Every bad input of the docs' bad-input page (generated from the tables here): one line naming the problem
and the fix, exit status 2, no traceback, nothing on disk lost. The one table of refusals: each bad setting
once, checked as the flags of ``vae train`` and, where a run config says the same, as that config (``RunConfig.from_dict``)."""
import gzip
import re
import json
import shutil
from typing import Any, NamedTuple, Optional

import numpy as np
import pytest
import torch

from pyro_vae.inference import RunConfig, UserError
from pyro_vae.inference.cli.main import main
from pyro_vae.inference.data.datasets import IDX_FILES

from tests.helpers import RunsCode, refuse, vae_main, write_folder, write_idx

SMALL = ["--epochs", "1", "--latent-dim", "3", "--hidden-dim", "32", "--quiet"]


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
    """An IDX file cut short."""
    path = folder / IDX_FILES["train_images"]
    raw = gzip.open(path).read()
    with gzip.open(path, "wb") as fh:
        fh.write(raw[:-50])


def _bad_magic(folder):
    """A file that is not IDX."""
    with gzip.open(folder / IDX_FILES["train_images"], "wb") as fh:
        fh.write(b"\x00\x00\x0d\x03" + b"\x00" * 20)


def _cut_gzip(folder):
    """A cut gzip stream."""
    path = folder / IDX_FILES["test_labels"]
    path.write_bytes(path.read_bytes()[:12])


def _drop_labels(folder):
    """A folder without the labels file."""
    (folder / IDX_FILES["train_labels"]).unlink()


def _mismatch(folder):
    """7 labels for 30 images."""
    write_idx(folder / IDX_FILES["train_labels"], np.zeros(7))


def _odd_size(folder):
    write_idx(folder / IDX_FILES["train_images"], np.zeros((30, 30, 30)))
    write_idx(folder / IDX_FILES["test_images"], np.zeros((10, 30, 30)))


class Refusal(NamedTuple):
    """One bad setting: ``flags`` after ``vae train --out OUT`` (None: no flag says it), ``config`` the run config
    that says the same (None: no config does), ``message`` the words of the one-line answer that the docs'
    bad-input page shows, ``more`` further words the answer holds."""
    id: str
    flags: Optional[list]
    config: Any
    message: str
    more: str = ""


TRAIN_CASES = [
    Refusal("unknown-dataset", ["--dataset", "cifar"], {"data": {"dataset": "cifar"}}, "unknown dataset 'cifar'"),
    Refusal("idx-without-folder", ["--dataset", "idx"], {"data": {"dataset": "idx"}}, "needs --data-dir"),
    Refusal("missing-folder", ["--dataset", "idx", "--data-dir", "/nonexistent/x"], None, "does not exist"),
    Refusal("zero-epochs", ["--epochs", "0"], None, "train.epochs must be positive"),
    Refusal("negative-batch", ["--batch-size", "-5"], None, "train.batch_size must be positive"),
    Refusal("zero-latent", ["--latent-dim", "0"], {"model": {"latent_dim": 0}}, "model.latent_dim must be positive"),
    Refusal("negative-lr", ["--lr", "-1"], {"train": {"lr": -1.0}}, "train.lr must be positive"),
    Refusal("not-a-number", ["--epochs", "two"], None, "invalid int value"),
    Refusal("unknown-flag", ["--foo", "1"], None, "unrecognized arguments"),
    Refusal("unknown-likelihood", ["--likelihood", "cauchy"], {"model": {"likelihood": "cauchy"}},
            "unknown likelihood 'cauchy'"),
    Refusal("unknown-prior", ["--prior", "cauchy"], None, "unknown prior 'cauchy'"),
    Refusal("unknown-guide", ["--guide", "nf"], {"guide": {"guide": "nf"}}, "unknown guide 'nf'"),
    Refusal("unknown-device", ["--device", "tpu"], None, "unknown device 'tpu'"),
    Refusal("unknown-compile-mode", ["--compile", "fast"], None, "unknown compile mode 'fast'"),
    Refusal("unknown-data-placement", ["--data-placement", "gpu"], None, "unknown data placement 'gpu'"),
    Refusal("bernoulli-on-grey", ["--binarize", "none"], {"data": {"binarize": "none"}}, "models binary pixels",
            more="but --binarize is 'none'"),
    Refusal("8bit-on-binary", ["--likelihood", "discretized_logistic", "--binarize", "dynamic"],
            {"model": {"likelihood": "discretized_logistic"}, "data": {"binarize": "dynamic"}},
            "models 8-bit grey levels", more="; use --binarize none"),
    Refusal("beta-without-beta-objective", ["--beta", "4"], {"objective": {"name": "elbo", "beta": 4.0}},
            "objective.beta does not apply to objective 'elbo'"),
    Refusal("dreg-without-iwae", ["--dreg"], {"objective": {"name": "elbo", "dreg": True}},
            "objective.dreg does not apply to objective 'elbo'"),
    Refusal("unknown-schedule", ["--objective", "beta", "--kl-schedule", "cosine"],
            {"objective": {"name": "beta", "kl_schedule": "cosine"}}, "unknown KL schedule"),
    Refusal("vamp-conditional", ["--conditional", "--prior", "vamp"], None, "VampPrior"),
    Refusal("flat-with-stochastic-guide", ["--prior", "flat"], None, "the flat prior is improper"),
    Refusal("vamp-with-delta", ["--prior", "vamp", "--guide", "delta"], None,
            "point masses, so the mixture has no density"),
    Refusal("vamp-with-iaf", ["--prior", "vamp", "--guide", "iaf"], None, "conditional flows"),
    Refusal("dreg-with-iaf", ["--objective", "iwae", "--dreg", "--guide", "iaf"], None, "this guide is not Gaussian"),
    Refusal("free-bits-with-mixture-prior", ["--objective", "beta", "--free-bits", "0.1", "--prior", "mog"], None,
            "the prior does not"),
    Refusal("contractive-with-iaf", ["--objective", "contractive", "--guide", "iaf"], None, "the mean of a flow"),
    Refusal("adversarial-with-flat-prior", ["--objective", "adversarial", "--prior", "flat", "--guide", "delta"], None,
            "this prior has no draws"),
    Refusal("zero-clip", ["--clip-norm", "0"], None, "train.clip_norm must be positive"),
    Refusal("zero-flows", ["--guide-flows", "0"], None, "guide.flows must be positive"),
    Refusal("negative-checkpoint-every", ["--checkpoint-every", "-1"], None, "--checkpoint-every must be >= 0"),
    Refusal("resume-without-checkpoint", ["--resume", "/nonexistent/run"], None, "no checkpoint.pt to resume from"),
    Refusal("zero-processes", ["--nproc", "0"], None, "--nproc must be >= 1"),
    Refusal("resume-with-options-it-drops", ["--resume", "/nonexistent/run", "--epochs", "3"], None,
            "--resume continues RUN as its config.json says, so --epochs cannot be given with it"),
    Refusal("too-many-processes", ["--nproc", "100000", "--device", "cpu"], None,
            "--nproc 100000 is more than 4 per core this process may use"),
    Refusal("adversarial-data-parallel", ["--family", "adversarial", "--nproc", "2"], None,
            "does not train data-parallel"),
    Refusal("zero-discriminator-steps", ["--family", "adversarial", "--discriminator-steps", "0"], None,
            "objective.discriminator_steps must be positive"),
    Refusal("zero-particles", ["--objective", "iwae", "--num-particles", "0"],
            {"objective": {"name": "iwae", "num_particles": 0}}, "objective.num_particles must be positive"),
    Refusal("latent-as-text", None, {"model": {"latent_dim": "20"}}, "model.latent_dim must be int"),
    Refusal("latent-as-bool", None, {"model": {"latent_dim": True}}, "model.latent_dim must be int"),
    Refusal("unknown-key", None, {"train": {"epochs": 2, "momentum": 0.9}}, "unknown key 'momentum'"),
    Refusal("unknown-section", None, {"optimizer": {}}, "unknown section 'optimizer'"),
    Refusal("not-an-object", None, [1, 2], "must be a JSON object"),
    Refusal("unknown-objective", None, {"objective": {"name": "renyi"}}, "unknown objective 'renyi'"),
    Refusal("unknown-activation", None, {"model": {"activation": "gelu"}}, "unknown activation 'gelu'"),
    Refusal("zero-likelihood-scale", None, {"model": {"likelihood": "laplace", "likelihood_scale": 0.0}},
            "likelihood_scale must be positive"),
]
FLAG_CASES = [c for c in TRAIN_CASES if c.flags is not None]


class Documented(NamedTuple):
    """A refusal checked by its own test below (not a row of the tables above): ``input`` in words for the
    docs' bad-input page (generated from these tables), ``message`` the words the test asserts."""
    id: str
    input: str
    message: str


OTHER_REFUSALS = [
    Documented("pixels-outside-unit-interval", "a user's `ImageData` with 1.5, −0.1 or NaN pixels given to "
               "`prepare` (the Bernoulli likelihood's data)", "not in [0, 1]; scale them"),
    Documented("empty-dataset", "`--data-dir` with 0 training images", "the train set is empty"),
    Documented("conv-odd-size", "`--arch conv` on 30×30 images", "divisible by 4"),
    Documented("out-is-a-file", "`--out FILE` (the file is untouched)", "names a file, not a folder"),
    Documented("out-cannot-be-created", "`--out FILE/run`", "cannot create output folder"),
    Documented("existing-run", "`--out RUN` without `--force` (every file untouched)", "already holds a run"),
    Documented("cuda-without-gpu", "`--device cuda` on a CPU machine", "no CUDA GPU"),
    Documented("missing-run", "`vae evaluate /nonexistent`", "does not exist"),
    Documented("not-a-run", "`vae evaluate EMPTY_FOLDER`", "no config file"),
    Documented("corrupt-config", "`config.json` that is not JSON", "config.json is damaged: not JSON"),
    Documented("config-unknown-key", "`config.json` with `latent_dims`", "unknown key 'latent_dims'"),
    Documented("other-model", "weights of a 32-wide model, config of a 48-wide one", "has shape"),
    Documented("malicious-checkpoint", "`weights.pt` whose pickle would run code (the code does not run)",
               "refusing to load"),
    Documented("truncated-checkpoint", "`weights.pt` cut to 500 bytes", "cannot read checkpoint"),
    Documented("zero-samples", "`vae sample RUN -n 0`", "-n must be positive"),
    Documented("label-unconditional", "`vae sample RUN --label 3` on an unconditional run", "needs a conditional VAE"),
    Documented("sample-missing-folder", "`vae sample RUN --out missing/s.png`", "which is not a folder; create it first"),
    Documented("ex-post-negative", "`vae sample RUN --ex-post -1`", "--ex-post must be >= 0"),
    Documented("full-disk", "`--out` on a 300 kB tmpfs (no half-written file)", "No space left on device"),
    Documented("colour-on-grey-network", "`vae evaluate RUN` after the grey images of RUN's folder turned colour",
               "built for data of shape (1, 16, 16) (grey images), but the data now has shape (3, 16, 16)"),
    Documented("ex-post-too-many", "`vae sample RUN --ex-post 99999` on a small run",
               "cannot fit a mixture of 99999 components"),
]
SAID = {r.id: r.message for r in OTHER_REFUSALS}
CONFIG_CASES = [c for c in TRAIN_CASES if c.config is not None]

DATA_CASES = [
    ("truncated-idx", _truncate, "truncated"),
    ("bad-magic", _bad_magic, "bad magic number"),
    ("cut-gzip", _cut_gzip, "cannot read IDX"),
    ("missing-file", _drop_labels, "lacks train-labels-idx1-ubyte.gz"),
    ("images-labels-mismatch", _mismatch, "do not match"),
]


@pytest.mark.parametrize("case", FLAG_CASES, ids=[c.id for c in FLAG_CASES])
def test_bad_train_flags(capsys, tmp_path, case):
    out = tmp_path / "out"
    err = refuse(capsys, ["train", *([] if "--resume" in case.flags else ["--out", out]), *case.flags])
    assert case.message in err and case.more in err
    assert not out.exists()


@pytest.mark.parametrize("case", CONFIG_CASES, ids=[c.id for c in CONFIG_CASES])
def test_bad_configs_are_refused_with_a_message_naming_the_problem(case):
    """The same settings as a run config: refused before anything is built, in one line."""
    with pytest.raises(UserError) as refused:
        RunConfig.from_dict(case.config)
    err = str(refused.value)
    assert case.message in err and case.more in err and "\n" not in err


@pytest.mark.parametrize("case, damage, message", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_data_folders(capsys, tmp_path, case, damage, message):
    folder = _folder(tmp_path, damage)
    assert message in refuse(capsys, ["train", "--dataset", "idx", "--data-dir", folder, "--out", tmp_path / "o"])
    assert not (tmp_path / "o").exists()


def test_empty_dataset(capsys, tmp_path):
    folder = _folder(tmp_path, n_train=0)
    assert SAID["empty-dataset"] in refuse(capsys, ["train", "--dataset", "idx", "--data-dir", folder,
                                                       "--out", tmp_path / "o"])


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan")])
def test_pixels_outside_the_unit_interval_are_refused(embedded, bad):
    from pyro_vae.inference.data.datasets import ImageData, prepare

    x = embedded.train_x[:20].clone()
    x[3, 0, 5, 5] = bad
    data = ImageData("mine", x, embedded.train_y[:20], embedded.test_x[:5], embedded.test_y[:5])
    with pytest.raises(UserError, match=re.escape(SAID["pixels-outside-unit-interval"])):
        prepare(data, "dynamic")


def test_image_size_a_conv_network_cannot_take(capsys, tmp_path):
    folder = _folder(tmp_path, _odd_size)
    assert SAID["conv-odd-size"] in refuse(capsys, ["train", "--dataset", "idx", "--data-dir", folder, "--arch", "conv",
                                               "--binarize", "static", "--out", tmp_path / "o"])


def test_output_is_a_file_or_cannot_be_created(capsys, tmp_path):
    f = tmp_path / "file"
    f.write_text("keep me")
    assert SAID["out-is-a-file"] in refuse(capsys, ["train", "--out", f])
    assert f.read_text() == "keep me"
    assert SAID["out-cannot-be-created"] in refuse(capsys, ["train", *SMALL, "--out", f / "run"])


def test_existing_run_needs_force(capsys, tmp_path, run_dir):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    before = {str(p.relative_to(copy)): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    assert SAID["existing-run"] in refuse(capsys, ["train", "--out", copy])
    assert {str(p.relative_to(copy)): p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before


def test_resuming_in_more_processes_than_the_machine_runs_is_refused_before_any_starts(capsys, tmp_path, run_dir):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    before = {str(p.relative_to(copy)): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    err = refuse(capsys, ["train", "--resume", copy, "--nproc", "100000"])
    assert err.startswith("vae: error: --nproc 100000 is more than 4 per core this process may use (")
    assert {str(p.relative_to(copy)): p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before


def test_diagnosing_with_one_chain_is_refused_from_python_too():
    """R-hat compares chains: one gave R-hat nan and a bare NaN in summary.json (vae diagnose's option refuses it
    first; ``check_choices`` is what ``diagnose_run`` asks)."""
    from pyro_vae.inference.diagnostics.run_diagnosis import check_choices

    with pytest.raises(UserError, match=r"^--chains must be >= 2 \(R-hat compares chains\), got 1$"):
        check_choices(chains=1)
    check_choices(chains=2)


def test_a_folder_that_holds_no_run_keeps_every_file_training_would_replace(capsys, tmp_path):
    """A user's folder with a diagnostics/ of its own, a report.html, or the data itself named samples.csv: training
    into it removed or replaced them without --force (exit 0); files no run writes stay beside a new run."""
    mine = tmp_path / "mine"
    (mine / "diagnostics").mkdir(parents=True)
    (mine / "diagnostics" / "results.txt").write_text("months of work")
    (mine / "report.html").write_text("<p>mine</p>")
    (mine / "samples.csv").write_text("1,2\n3,4\n")
    before = {str(p.relative_to(mine)): p.read_bytes() for p in mine.rglob("*") if p.is_file()}
    err = refuse(capsys, ["train", "--out", mine, "--epochs", "1"])
    assert err == (f"vae: error: output folder {mine} holds no run but holds report.html, samples.csv and "
                   f"diagnostics/, which training would replace; train into another folder, or replace them with "
                   f"vae train --force (force=True)\n")
    assert {str(p.relative_to(mine)): p.read_bytes() for p in mine.rglob("*") if p.is_file()} == before
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "notes.txt").write_text("kept")
    status, _, err = vae_main(capsys, "train", "--out", notes, "--epochs", "1", "--hidden-dim", "8", "--latent-dim",
                              "2", "--quiet", "--no-plots", "--no-tensorboard", "--compile", "off")
    assert status == 0, err
    assert (notes / "notes.txt").read_text() == "kept" and (notes / "weights.pt").is_file()


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
    assert SAID["missing-run"] in refuse(capsys, ["evaluate", tmp_path / "none"])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert SAID["not-a-run"] in refuse(capsys, ["evaluate", empty])
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    (broken / "config.json").write_text("{not json")
    assert SAID["corrupt-config"] in refuse(capsys, ["evaluate", broken])
    (broken / "config.json").write_text(json.dumps({"model": {"latent_dims": 3}}))
    assert SAID["config-unknown-key"] in refuse(capsys, ["evaluate", broken])


def test_checkpoint_from_another_model(capsys, tmp_path, run_dir):
    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["model"]["hidden_dim"] = 48
    (other / "config.json").write_text(json.dumps(cfg))
    assert SAID["other-model"] in refuse(capsys, ["evaluate", other])


def test_malicious_and_truncated_checkpoints(capsys, tmp_path, run_dir):
    bad = tmp_path / "bad"
    shutil.copytree(run_dir, bad)
    marker = tmp_path / "pwned"
    torch.save({"model": RunsCode(str(marker))}, bad / "weights.pt")
    assert SAID["malicious-checkpoint"] in refuse(capsys, ["evaluate", bad])
    assert not marker.exists()
    (bad / "weights.pt").write_bytes((run_dir / "weights.pt").read_bytes()[:500])
    assert SAID["truncated-checkpoint"] in refuse(capsys, ["evaluate", bad])


def test_bad_sample_requests(capsys, run_dir, tmp_path):
    assert SAID["zero-samples"] in refuse(capsys, ["sample", run_dir, "-n", "0"])
    assert SAID["label-unconditional"] in refuse(capsys, ["sample", run_dir, "--label", "3"])
    assert SAID["sample-missing-folder"] in refuse(capsys, ["sample", run_dir, "--out", tmp_path / "no" / "s.png"])
    assert SAID["ex-post-negative"] in refuse(capsys, ["sample", run_dir, "--ex-post", "-1"])
    assert SAID["ex-post-too-many"] in refuse(capsys, ["sample", run_dir, "--ex-post", "99999"])
    assert not (run_dir / "samples_ex_post.png").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu(capsys, tmp_path):
    assert SAID["cuda-without-gpu"] in refuse(capsys, ["train", "--device", "cuda", "--out", tmp_path / "o"])


COMPARE_EM_CASES = [
    ("em-unknown-setting", ["--settings", "pca"], "unknown setting 'pca'"),
    ("em-zero-epochs", ["--nonlinear-epochs", "0"], "--nonlinear-epochs must be positive"),
    ("em-unknown-dataset", ["--dataset", "cifar"], "unknown dataset 'cifar'"),
]


@pytest.mark.parametrize("case, args, message", COMPARE_EM_CASES, ids=[c[0] for c in COMPARE_EM_CASES])
def test_bad_compare_em_flags(capsys, tmp_path, case, args, message):
    out = tmp_path / "cmp"
    assert message in refuse(capsys, ["compare-em", "--out", out, *args])
    assert not out.exists()


def test_every_refusal_has_one_id():
    """The docs' bad-input page is made from these tables (docs/_ext/reference_pages.py): each case once."""
    ids = [c.id for c in TRAIN_CASES] + [c[0] for c in DATA_CASES + COMPARE_EM_CASES] + [r.id for r in OTHER_REFUSALS]
    assert len(ids) == len(set(ids))


def test_diagnose_refuses_bad_points(capsys, run_dir):
    assert "--points must be positive, got 0" in refuse(capsys, ["diagnose", run_dir, "--points", "0"])
    assert "--points must be in 1..500 (the test set's size)" in refuse(capsys, ["diagnose", run_dir, "--points",
                                                                              "600", "--split", "test"])
    assert "train index 9999 is out of range 0..4499" in refuse(capsys, ["diagnose", run_dir, "--indices", "9999"])
    assert "test index 600 is out of range 0..499" in refuse(capsys, ["diagnose", run_dir, "--indices", "600"])
    assert "--draws must be >= 4" in refuse(capsys, ["diagnose", run_dir, "--draws", "0"])
    assert "--worst must be in 1..30" in refuse(capsys, ["diagnose", run_dir, "--worst", "40", "--screen", "30"])
    assert "--indices or --worst, not both" in refuse(capsys, ["diagnose", run_dir, "--worst", "2", "--indices", "1"])
    assert "--points or --worst, not both" in refuse(capsys, ["diagnose", run_dir, "--worst", "2", "--points", "3"])
    assert "give --worst N too" in refuse(capsys, ["diagnose", run_dir, "--screen", "100"])
    assert "invalid choice: 'valid'" in refuse(capsys, ["diagnose", run_dir, "--split", "valid"])
    assert not (run_dir / "diagnostics").exists()
