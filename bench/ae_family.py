"""The autoencoder family on the embedded digits: one ``vae train --family F`` run each, same budget.

    python bench/ae_family.py --epochs 10       # writes bench/results/ae_family.json and prints the table

Reports the test reconstruction error (squared error of E[x | code(x)] per image), the code sparsity, the
encoder's Jacobian norm, and the test ELBO where the member is a probabilistic model (a proper prior and
a density guide: vae, denoising_vae; the Delta-guide members' "ELBO" is log p(x|z) + log p(z), not a bound).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pyro_vae.inference import RunConfig
import torch

from pyro_vae.inference.evaluate.autoencoders import code_sparsity, codes, mean_jacobian_norm, mmd_squared, reconstruction_error
from pyro_vae.inference.config.sections import FAMILIES, apply_family
from pyro_vae.inference.runs.files import write_json
from pyro_vae.inference.runs.folder import train_run
from pyro_vae.inference.runs.run import load_run

PROBABILISTIC = {"vae", "denoising_vae"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", default="runs/ae-family")
    parser.add_argument("--json", default="bench/results/ae_family.json")
    args = parser.parse_args()
    rows = []
    for family in FAMILIES:
        folder = Path(args.out) / family
        train_run(RunConfig.from_dict(apply_family({"train": {"epochs": args.epochs}}, family)), folder, force=True,
                  quiet=True)
        run = load_run(folder)
        x = run.data.test_x
        row = {"family": family, "reconstruction_error": reconstruction_error(run.model, run.guide, x, x),
               "code_sparsity": code_sparsity(run.guide, x), "jacobian_norm": mean_jacobian_norm(run.guide, x[:100]),
               "mmd2_to_prior": mmd_squared(codes(run.guide, x), torch.randn(x.shape[0], run.guide.latent_dim,
                                                                              generator=torch.Generator().manual_seed(0))),
               "test_elbo": run.evaluate().elbo if family in PROBABILISTIC else None}
        rows.append(row)
        elbo = f"{row['test_elbo']:9.2f}" if row["test_elbo"] is not None else "        -"
        print(f"{family:14s} recon {row['reconstruction_error']:7.2f}  sparsity {row['code_sparsity']:5.3f}  "
              f"jacobian {row['jacobian_norm']:9.2f}  MMD2 {row['mmd2_to_prior']:6.3f}  test ELBO {elbo}", flush=True)
    write_json(Path(args.json), rows)


if __name__ == "__main__":
    main()
