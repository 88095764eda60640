"""Monitors (log file, TensorBoard), plots and the HTML report. (Config files: tests/inference/config/
test_config_files.py; the report of a diagnosed run and in Chromium, the example script: tests/e2e/test_experience.py.)"""
import base64
import hashlib
import json
import re
import shutil

import pytest
import torch

from pyro_vae.inference import RunConfig
from pyro_vae.inference.report.plots import nearest_training_images, principal_components
from pyro_vae.inference.runs.folder import train_run

from tests.helpers import TINY, PageImages, vae_main


def test_monitors_do_not_change_the_training_draws(tmp_path):
    """The progress bar's and monitors' minibatch D and R use a private random stream."""
    config = RunConfig.from_dict(TINY)
    quiet = train_run(config, tmp_path / "quiet", quiet=True, tensorboard=False, plots=False)
    watched = train_run(config, tmp_path / "watched", quiet=False, tensorboard=True, plots=False)
    assert [m["test_elbo"] for m in watched] == [m["test_elbo"] for m in quiet]
    log = (tmp_path / "watched" / "train.log").read_text().splitlines()
    steps = [line for line in log if re.search(r"  step \d+  elbo ", line)]
    assert len(steps) >= 2 * 2 and all("distortion" in s and "rate" in s and "grad_norm" in s for s in steps)
    assert sum("epoch " in line for line in log) == 2
    assert not (tmp_path / "quiet" / "tensorboard").exists()


def test_tensorboard_holds_the_metrics_images_and_histogram(two_epoch_run):
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    events = accumulator.EventAccumulator(str(two_epoch_run / "tensorboard"), size_guidance={"images": 0}).Reload()
    tags = events.Tags()
    metrics = [json.loads(line) for line in (two_epoch_run / "metrics.jsonl").read_text().splitlines()]
    assert [e.value for e in events.Scalars("test/elbo")] == pytest.approx([m["test_elbo"] for m in metrics])
    assert [e.step for e in events.Scalars("test/elbo")] == [m["steps"] for m in metrics]
    for tag in ("train/elbo", "train/distortion", "train/rate", "train/grad_norm", "train/lr", "train/images_per_s"):
        assert tag in tags["scalars"], tag
    assert {"samples", "reconstructions"} <= set(tags["images"]) and "latent_means" in tags["histograms"]


def test_plots_are_written_and_their_numbers_match_a_second_method(two_epoch_run, embedded):
    for name in ("curves.png", "latent_space.png", "manifold.png", "interpolations.png", "neighbours.png"):
        assert (two_epoch_run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    from sklearn.decomposition import PCA

    z = torch.randn(300, 6, generator=torch.Generator().manual_seed(0)) @ torch.randn(6, 6)
    ours = principal_components(z).double()
    theirs = torch.tensor(PCA(2).fit_transform(z.double().numpy()))
    for k in range(2):  # up to the sign of each axis
        assert min((ours[:, k] - theirs[:, k]).abs().max(), (ours[:, k] + theirs[:, k]).abs().max()) < 1e-4
    train = embedded.train_x[:500]
    queries = train[[3, 77]] + 0.01  # near two training images: those are their nearest neighbours
    nearest = nearest_training_images(queries, train, k=3)
    brute = torch.stack([((train - q) ** 2).flatten(1).sum(1).argsort()[:3] for q in queries])
    assert nearest[:, 0].tolist() == [3, 77] and torch.equal(nearest.sort(1).values, brute.sort(1).values)


@pytest.mark.parametrize("latent_dim", [1, 4])
def test_no_manifold_unless_the_codes_are_two_dimensional(tmp_path, latent_dim):
    cfg = RunConfig.from_dict({**TINY, "model": {"latent_dim": latent_dim, "hidden_dim": 64}, "train": {"epochs": 1}})
    train_run(cfg, tmp_path / "r", quiet=True, tensorboard=False)
    assert (tmp_path / "r" / "latent_space.png").exists() and not (tmp_path / "r" / "manifold.png").exists()


def test_vae_report_is_one_self_contained_page(capsys, two_epoch_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(two_epoch_run, run)
    for plot in ("curves.png", "latent_space.png"):
        (run / plot).unlink()  # the report draws missing plots first
    assert vae_main(capsys, "evaluate", run)[0] == 0
    status, _, err = vae_main(capsys, "report", run)
    assert status == 0, err
    page = (run / "report.html").read_text()
    parser = PageImages()
    parser.feed(page)
    pngs = sorted(p.name for p in run.glob("*.png"))
    assert {"curves.png", "latent_space.png"} <= set(pngs) and len(parser.sources) == len(pngs)
    for source in parser.sources:
        assert base64.b64decode(source.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert parser.links == [] and "http:" not in page and "https:" not in page  # nothing outside the page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page and "<script" not in page
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert f"test ELBO {last['test_elbo']:.2f} nats" in page and "Evaluation" in page and "latent_dim" in page
    status, _, err = vae_main(capsys, "report", tmp_path / "nowhere")
    assert status == 2 and "does not exist" in err


def test_an_evaluation_of_earlier_weights_is_not_shown_as_the_runs(capsys, two_epoch_run, tmp_path):
    """evaluation.json records the SHA-256 of the weights.pt it scored (checked here by hashlib on the file); a
    training that went on after it (--resume, or vae evaluate while vae train still ran) left the old figures,
    which the report showed beside the newer metrics."""
    run = tmp_path / "run"
    shutil.copytree(two_epoch_run, run)
    assert vae_main(capsys, "evaluate", run, "--limit", "20")[0] == 0
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["weights_sha256"] == hashlib.sha256((run / "weights.pt").read_bytes()).hexdigest()
    figure = f"{evaluation['elbo']['elbo']:,.3f}"
    assert vae_main(capsys, "report", run)[0] == 0
    page = (run / "report.html").read_text()
    assert figure in page and "stale-evaluation" not in page
    (run / "evaluation.json").write_text(json.dumps({**evaluation, "weights_sha256": "0" * 64}))  # other weights'
    assert vae_main(capsys, "report", run)[0] == 0
    page = (run / "report.html").read_text()
    assert figure not in page and "<p id='stale-evaluation'>evaluation.json scored earlier weights" in page
    del evaluation["weights_sha256"]  # written by 0.4.0: shown as before
    (run / "evaluation.json").write_text(json.dumps(evaluation))
    assert vae_main(capsys, "report", run)[0] == 0 and figure in (run / "report.html").read_text()


def test_a_grid_clamps_a_decoders_overshoot_and_rescales_images_of_another_range():
    from pyro_vae.inference.report.images import grid

    digits = torch.zeros(4, 1, 8, 8)
    digits[:, :, 2:6, 2:6] = 1.0
    digits[0, 0, 2, 2] = 1.6  # one overshooting mean: clamped, the rest of the grid unchanged
    shown = grid(digits, 2)
    assert shown.max() == 1.0 and torch.equal(grid(digits.clamp(0, 1), 2), shown)
    grey_levels = digits.clamp(0, 1) * 255  # an array of 0..255 grey levels: shown from its least to its most
    assert torch.equal(grid(grey_levels, 2), grid(digits.clamp(0, 1), 2))
    assert torch.equal(grid(torch.full((2, 1, 3, 3), 7.0), 2)[:, 2:5, 2:5], torch.full((3, 3, 3), 0.5))


def test_principal_components_of_fewer_points_than_components_are_zero_padded():
    """A run on about ten rows keeps one test point: its code has no principal axis, and the latent-space plot
    (which reads two components) drew an IndexError; the missing components are 0 and the rest are SVD's."""
    assert principal_components(torch.randn(1, 5)).tolist() == [[0.0, 0.0]]
    z = torch.randn(2, 5, dtype=torch.float64)
    two = principal_components(z)  # two points: one axis, along their difference; each is half of it away
    assert torch.allclose(two[:, 0].abs().double(), (z[0] - z[1]).norm().expand(2) / 2, atol=1e-5)
    assert two[:, 1].abs().max() < 1e-5
