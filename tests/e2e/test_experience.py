"""The run folder's config file retrains the same run (``vae train --config``); ``vae report`` of a diagnosed run
shows both splits and renders in headless Chromium; the README's example script trains from a config file and
writes a report."""
import base64
import html
import json
import re
import shutil
import subprocess
import sys

import pytest
import torch

from pyro_vae.inference.config.files import read_config_file

from tests.helpers import ROOT, PageImages, run_vae, vae_main


def test_the_run_folders_config_file_retrains_the_same_run(two_epoch_run, tmp_path):
    assert read_config_file(two_epoch_run / "config.yaml") == json.loads((two_epoch_run / "config.json").read_text())
    done = run_vae("train", "--config", two_epoch_run / "config.yaml", "--out", tmp_path / "again", "--quiet")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "again" / "config.json").read_text() == (two_epoch_run / "config.json").read_text()
    first, second = ([json.loads(line)["test_elbo"] for line in (p / "metrics.jsonl").read_text().splitlines()]
                     for p in (two_epoch_run, tmp_path / "again"))
    assert second == pytest.approx(first, abs=1e-6)  # same seed, same config: the same run


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def diagnosed_run(two_epoch_run, tmp_path_factory):
    run = tmp_path_factory.mktemp("diagnosed") / "run"
    shutil.copytree(two_epoch_run, run)
    done = run_vae("diagnose", run, "--points", "2", "--chains", "2", "--draws", "40", "--warmup", "40",
                   "--guide-samples", "100")
    assert done.returncode == 0, done.stderr
    return run


DIAGNOSTIC_PNGS = ["splits.png", "energy.png", "train/pair.png", "test/pair.png", "train/ppc_arviz.png",
                   "test/ppc_arviz.png", "kl_per_dim.png", "ppc.png"]


def test_vae_report_shows_the_diagnostics_splits_side_by_side(capsys, diagnosed_run):
    status, _, err = vae_main(capsys, "report", diagnosed_run)
    assert status == 0, err
    page = (diagnosed_run / "report.html").read_text()
    summary = json.loads((diagnosed_run / "diagnostics" / "summary.json").read_text())
    table = page[page.index("id='diagnostics-comparison'"):]
    table = table[: table.index("</table>")]
    assert re.search(r"<th>train</th><th>test</th>", table)
    gap = summary["comparison"]["amortization_gap"]
    assert f"<td>amortization gap (nats)</td><td>{gap['train']:,.3f}</td><td>{gap['test']:,.3f}</td>" in table
    parser = PageImages()
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
