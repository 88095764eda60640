"""bench/leaderboard.py on the embedded digits: the table's figures are the estimator's, the comparisons are
differences of its rows, a second invocation reuses every run and score, and the results file keeps the
rows of recipes not rerun when the settings are the same (only then)."""
import json
import subprocess
import sys

from tests.helpers import ROOT

ARGS = ["--dataset", "mnist-embedded", "--data-dir", "", "--recipes", "vae-default,kingma-2016-iaf", "--epochs", "1",
        "--test-images", "40", "--iw-samples", "8"]


def _bench(tmp_path, *more):
    done = subprocess.run([sys.executable, "-W", "ignore", "bench/leaderboard.py", *ARGS, *more,
                           "--out", str(tmp_path / "lb"),
                           "--results", str(tmp_path / "lb.json")], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, json.loads((tmp_path / "lb.json").read_text())


def test_the_leaderboard_scores_alike_compares_rows_and_resumes(tmp_path):
    printed, board = _bench(tmp_path)
    rows = board["rows"]
    assert set(rows) == {"vae-default", "kingma-2016-iaf"} and not board["full_estimator"]
    for name, row in rows.items():
        assert row["log_likelihood"] >= row["test_elbo"] - 3 * row["standard_error"] - 1.0  # the IW bound is tighter
        assert row["parameters"] > 0 and row["latent_units"] == 20 and f"`{name}` |" in printed
    (iaf,) = board["comparisons"]
    assert iaf["difference"] == rows["kingma-2016-iaf"]["log_likelihood"] - rows["vae-default"]["log_likelihood"]
    again, board_again = _bench(tmp_path)
    assert again.count("trained; reusing") == 2 and board_again["rows"] == rows
    # one recipe rerun alone: the other's row is kept from the results file, the comparison still made
    alone, board_alone = _bench(tmp_path, "--recipes", "kingma-2016-iaf")
    assert "kept from" in alone and board_alone["rows"] == rows and board_alone["comparisons"] == board["comparisons"]
    # other settings: nothing is kept (a row scored with k = 8 never sits beside one scored with k = 9)
    other, board_other = _bench(tmp_path, "--recipes", "kingma-2016-iaf", "--iw-samples", "9")
    assert "kept from" not in other and set(board_other["rows"]) == {"kingma-2016-iaf"}
    assert not board_other["comparisons"]
