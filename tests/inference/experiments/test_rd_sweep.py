"""The beta sweep of rate-distortion (inference/experiments/rd_sweep.py): a higher beta buys less rate for more
distortion, and a second sweep reuses every trained run."""

from pyro_vae.inference import RunConfig
from pyro_vae.inference.experiments.rd_sweep import run_sweep


def test_rd_sweep_trades_rate_for_distortion_and_resumes(tmp_path):
    base = RunConfig.from_dict({"model": {"latent_dim": 8, "hidden_dim": 64}, "guide": {"hidden_dim": 64},
                                "train": {"epochs": 2}})
    rows = run_sweep(base, [0.3, 1.0, 4.0], tmp_path / "sweep", log=lambda line: None)
    rates, distortions = [r["rate"] for r in rows], [r["distortion"] for r in rows]
    assert rates[0] > rates[1] > rates[2] and distortions[0] < distortions[1] < distortions[2]
    weights = tmp_path / "sweep" / "beta-1" / "weights.pt"
    stamp = weights.stat().st_mtime_ns
    said = []
    again = run_sweep(base, [0.3, 1.0, 4.0], tmp_path / "sweep", log=said.append)
    assert weights.stat().st_mtime_ns == stamp and all("reusing" in line for line in said)
    assert [r["rate"] for r in again] == rates
    assert (tmp_path / "sweep" / "rd.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "sweep" / "rd.csv").read_text().splitlines()[0].startswith("beta,rate,distortion")
