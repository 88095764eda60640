"""Config files, monitors (log file, TensorBoard), plots and the HTML report."""
import base64
import json
import html
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import pytest
import torch
import yaml

from pyro_vae.inference import RunConfig
from pyro_vae.inference.cli.main import main
from pyro_vae.inference.config.files import dumps, load_run_config, read_config_file
from pyro_vae.inference.report.plots import nearest_training_images, principal_components
from pyro_vae.inference.runs.folder import train_run

from .conftest import ROOT, run_vae

TINY = {"model": {"latent_dim": 2, "hidden_dim": 64}, "guide": {"hidden_dim": 64}, "train": {"epochs": 2}}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "run"
    train_run(RunConfig.from_dict(TINY), out, quiet=True)
    return out


def _vae(capsys, *args) -> tuple[int, str, str]:
    """``vae ARGS`` in this process (the same ``main`` the command runs): status, stdout, stderr."""
    capsys.readouterr()
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def _dump(capsys, *args) -> dict:
    status, out, err = _vae(capsys, "config", "--dump", *args)
    assert status == 0, err
    return yaml.safe_load(out)


@pytest.mark.parametrize("fmt", ["yaml", "toml", "json"])
def test_a_dumped_config_reads_back_to_the_same_config(capsys, tmp_path, fmt):
    status, text, err = _vae(capsys, "config", "--dump", "--format", fmt, "--latent-dim", "3", "--prior", "mog",
                             "--epochs", "4")
    assert status == 0, err
    path = tmp_path / f"run.{fmt}"
    path.write_text(text)
    assert _vae(capsys, "config", "--dump", "--format", fmt, "--config", path)[1] == text
    config = load_run_config(path)
    assert (config.model.latent_dim, config.model.prior, config.train.epochs, config.train.clip_norm) == (3, "mog", 4,
                                                                                                        None)


def test_flags_given_override_the_file_and_the_file_overrides_defaults_and_family(capsys, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: {latent_dim: 7, prior: laplace}\ntrain: {epochs: 3, lr: 0.01}\n"
                    "run: {family: sparse, checkpoint_every: 17}\n")
    resolved = _dump(capsys, "--config", path, "--epochs", "10")  # 10 is also the default: given, so it wins
    assert resolved["model"]["latent_dim"] == 7 and resolved["train"]["lr"] == 0.01
    assert resolved["train"]["epochs"] == 10
    assert resolved["guide"]["guide"] == "delta"  # from the sparse family named in the file's run section
    assert resolved["run"]["checkpoint_every"] == 17
    assert _dump(capsys, "--config", path, "--checkpoint-every", "5")["run"]["checkpoint_every"] == 5
    assert _dump(capsys, "--family", "plain")["model"]["prior"] == "flat"
    assert _dump(capsys, "--family", "plain", "--prior", "laplace")["model"]["prior"] == "laplace"  # a flag beats the preset


@pytest.mark.parametrize("name, text, message", [
    ("bad.yaml", "model: {latent_dim: [", "is not valid YAML"),
    ("bad.toml", "[model\nlatent_dim = 2", "is not valid TOML"),
    ("bad.ini", "[model]", "neither YAML, TOML nor JSON"),
    ("section.yaml", "modle: {latent_dim: 2}", "unknown section 'modle'"),
    ("key.yaml", "model: {latent_dims: 2}", "model has unknown key 'latent_dims'"),
    ("type.yaml", "train: {epochs: many}", "train.epochs must be int"),
    ("run.yaml", "run: {latent_dim: 2}", "run.latent_dim is not an option of 'vae train'"),
    ("flat.yaml", "epochs: 3", "must map section names"),
])
def test_bad_config_files_are_refused_in_one_line_and_nothing_is_written(capsys, tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    status, _, err = _vae(capsys, "train", "--config", path, "--out", tmp_path / "out")
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
    status, _, err = _vae(capsys, "train", "--config", tmp_path / "none.yaml", "--out", tmp_path / "out")
    assert status == 2 and "no config file at" in err


def test_the_run_folders_config_file_retrains_the_same_run(tiny_run, tmp_path):
    assert read_config_file(tiny_run / "config.yaml") == json.loads((tiny_run / "config.json").read_text())
    done = run_vae("train", "--config", tiny_run / "config.yaml", "--out", tmp_path / "again", "--quiet")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "again" / "config.json").read_text() == (tiny_run / "config.json").read_text()
    first, second = ([json.loads(line)["test_elbo"] for line in (p / "metrics.jsonl").read_text().splitlines()]
                     for p in (tiny_run, tmp_path / "again"))
    assert second == pytest.approx(first, abs=1e-6)  # same seed, same config: the same run


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


def test_tensorboard_holds_the_metrics_images_and_histogram(tiny_run):
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    events = accumulator.EventAccumulator(str(tiny_run / "tensorboard"), size_guidance={"images": 0}).Reload()
    tags = events.Tags()
    metrics = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert [e.value for e in events.Scalars("test/elbo")] == pytest.approx([m["test_elbo"] for m in metrics])
    assert [e.step for e in events.Scalars("test/elbo")] == [m["steps"] for m in metrics]
    for tag in ("train/elbo", "train/distortion", "train/rate", "train/grad_norm", "train/lr", "train/images_per_s"):
        assert tag in tags["scalars"], tag
    assert {"samples", "reconstructions"} <= set(tags["images"]) and "latent_means" in tags["histograms"]


def test_plots_are_written_and_their_numbers_match_a_second_method(tiny_run, embedded):
    for name in ("curves.png", "latent_space.png", "manifold.png", "interpolations.png", "neighbours.png"):
        assert (tiny_run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
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


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources, self.links = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.sources.append(attrs["src"])
        self.links += [v for k, v in attrs.items() if k in ("href", "src") and not v.startswith("data:")]


def test_vae_report_is_one_self_contained_page(capsys, tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    for plot in ("curves.png", "latent_space.png"):
        (run / plot).unlink()  # the report draws missing plots first
    assert _vae(capsys, "evaluate", run)[0] == 0
    status, _, err = _vae(capsys, "report", run)
    assert status == 0, err
    page = (run / "report.html").read_text()
    parser = _Images()
    parser.feed(page)
    pngs = sorted(p.name for p in run.glob("*.png"))
    assert {"curves.png", "latent_space.png"} <= set(pngs) and len(parser.sources) == len(pngs)
    for source in parser.sources:
        assert base64.b64decode(source.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert parser.links == [] and "http" not in page  # nothing outside the page
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert f"test ELBO {last['test_elbo']:.2f} nats" in page and "Evaluation" in page and "latent_dim" in page
    status, _, err = _vae(capsys, "report", tmp_path / "nowhere")
    assert status == 2 and "does not exist" in err


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def diagnosed_run(tiny_run, tmp_path_factory):
    run = tmp_path_factory.mktemp("diagnosed") / "run"
    shutil.copytree(tiny_run, run)
    done = run_vae("diagnose", run, "--points", "2", "--chains", "2", "--draws", "40", "--warmup", "40",
                   "--guide-samples", "100")
    assert done.returncode == 0, done.stderr
    return run


DIAGNOSTIC_PNGS = ["splits.png", "energy.png", "train/pair.png", "test/pair.png", "train/ppc_arviz.png",
                   "test/ppc_arviz.png", "kl_per_dim.png", "ppc.png"]


def test_vae_report_shows_the_diagnostics_splits_side_by_side(capsys, diagnosed_run):
    status, _, err = _vae(capsys, "report", diagnosed_run)
    assert status == 0, err
    page = (diagnosed_run / "report.html").read_text()
    summary = json.loads((diagnosed_run / "diagnostics" / "summary.json").read_text())
    table = page[page.index("id='diagnostics-comparison'"):]
    table = table[: table.index("</table>")]
    assert re.search(r"<th>train</th><th>test</th>", table)
    gap = summary["comparison"]["amortization_gap"]
    assert f"<td>amortization gap (nats)</td><td>{gap['train']:,.3f}</td><td>{gap['test']:,.3f}</td>" in table
    parser = _Images()
    parser.feed(page)
    inlined = [base64.b64decode(source.split(",", 1)[1]) for source in parser.sources]
    for name in DIAGNOSTIC_PNGS:
        assert (diagnosed_run / "diagnostics" / name).read_bytes() in inlined, name
    assert html.escape(summary["splits"]["test"]["reference_note"]) in page


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian package chromium)")
def test_the_report_renders_in_headless_chromium(diagnosed_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(diagnosed_run, run)
    assert run_vae("report", run).returncode == 0
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,1600"]
    dom = subprocess.run([*flags, "--dump-dom", (run / "report.html").as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert "Metrics per epoch" in dom.stdout and "Diagnostics" in dom.stdout
    assert dom.stdout.count("<img") == len(list(run.glob("*.png"))) + len(DIAGNOSTIC_PNGS)
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", (run / "report.html").as_uri()], capture_output=True, timeout=120)
    from PIL import Image

    pixels = torch.tensor(__import__("numpy").asarray(Image.open(shot).convert("L")), dtype=torch.float32)
    assert pixels.std() > 20  # text, tables and images drawn, not a blank page
    assert (pixels[:, :600] < 128).float().mean() > 0.02  # dark pixels: the heading, tables and digit grids


def test_the_example_script_trains_from_a_config_file_and_writes_a_report():
    proc = subprocess.run([sys.executable, "-W", "ignore", str(ROOT / "examples" / "experience.py")],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert len(re.findall(r"epoch \d: test ELBO -\d+\.\d nats", proc.stdout)) == 5
    assert (ROOT / "runs" / "two-d" / "report.html").exists() and (ROOT / "runs" / "two-d" / "manifold.png").exists()


def test_toml_leaves_out_null_values_and_reads_them_back_as_defaults():
    raw = RunConfig().validate().to_dict()  # validated: binarize 'auto' resolved, as a run folder records it
    text = dumps(raw, "toml")
    assert "clip_norm" not in text and "data_dir" not in text
    import tomllib

    assert RunConfig.from_dict(tomllib.loads(text)).to_dict() == raw


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
