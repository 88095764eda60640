"""Run in a fresh process by ``tests/e2e/test_fresh_process.py``: load a run whose likelihood reads a trained
``pyro.param`` and score it with every evaluator and command, without entering the run's param store by hand.
Prints one JSON object of the figures (and what Pyro's global store holds afterwards)."""
import json
import sys
from pathlib import Path

import pyro

from pyro_vae.inference import evaluate_elbo, importance_log_likelihood, load_run, posterior_collapse
from pyro_vae.inference.cli.main import main
from pyro_vae.inference.diagnostics.report import examine
from pyro_vae.models import LIKELIHOODS

from .programs import ParamScaleGaussian


def figures(run) -> dict:
    x = run.data.test_x
    diagnosis = examine(run, [0, 1], chains=2, draws=10, warmup=10, guide_samples=50)
    return {"elbo": evaluate_elbo(run.model, run.guide, x, seed=0).elbo,
            "log_likelihood": importance_log_likelihood(run.model, run.guide, x[:20], 50, seed=0).log_likelihood,
            "activity": list(posterior_collapse(run.model, run.guide, x).activity),
            "examine": diagnosis.summary["points"] if "points" in diagnosis.summary else diagnosis.summary}


if __name__ == "__main__":
    LIKELIHOODS.register("param_scale_gaussian")(ParamScaleGaussian)  # the user's likelihood, imported by the user
    folder, out = Path(sys.argv[1]), Path(sys.argv[2])
    pyro.clear_param_store()
    found = figures(load_run(folder))
    code = main(["evaluate", str(folder), "--iw-samples", "50", "--limit", "20", "--json", str(out.with_suffix(".cli.json"))])
    cli = json.loads(out.with_suffix(".cli.json").read_text())
    found.update(cli_code=code, cli_log_likelihood=cli["log_likelihood"]["log_likelihood"],
                 global_store=sorted(pyro.get_param_store().keys()))
    out.write_text(json.dumps(found, default=float))
