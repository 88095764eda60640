"""vae rd-sweep, rd-compare and compare-em: experiments over several runs."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pyro_vae.models.registry import option

from pyro_vae.inference.cli.command import COMMANDS, Command
from pyro_vae.inference.cli.options import config_from_args, same_option
from pyro_vae.inference.config.sections import DataConfig, TrainConfig
from pyro_vae.inference.runs.paths import output_folder_problem


@COMMANDS.register("rd-sweep")
class RDSweepCommand(Command):
    help = "one beta-ELBO run per beta; test rate and distortion, table and plot"
    run_config = True

    @dataclass
    class Options:
        betas: str = option("0.1,0.3,1,3,10", "comma-separated beta values")
        out: str = option("runs/rd-sweep", "folder of the runs (beta-<b>/) and rd.json, rd.csv, rd.png",
                           check=output_folder_problem)
        force: bool = option(False, "retrain every beta even if its run is finished")
        quiet: bool = option(False, "no progress bars")

    def run(self, args) -> int:
        from pyro_vae.inference.experiments.rd_sweep import parse_betas, run_sweep

        betas = parse_betas(args.betas)
        rows = run_sweep(config_from_args(args), betas, Path(args.out), force=args.force, quiet=args.quiet,
                         log=lambda line: print(line, file=sys.stderr))
        print(f"{'beta':>8s} {'rate R':>9s} {'distortion D':>13s} {'R + D':>9s}   (test, nats per image)")
        for row in rows:
            print(f"{row['beta']:8g} {row['rate']:9.2f} {row['distortion']:13.2f} {row['neg_elbo']:9.2f}")
        print(f"wrote {Path(args.out) / 'rd.json'}, rd.csv and rd.png")
        return 0


@COMMANDS.register("rd-compare")
class RDCompareCommand(Command):
    help = "VAE vs rate-distortion autoencoder in one RD plane; L2 vs L1 pictures"
    run_config = True
    defaults = {"likelihood_scale": 0.1}

    @dataclass
    class Options:
        betas: str = option("1,10,100", "comma-separated beta values (both families)")
        out: str = option("runs/rd-compare", "folder of the runs and rd_compare.json, rd_compare.png, l2_vs_l1.png",
                           check=output_folder_problem)
        force: bool = option(False, "retrain every run even if finished")

    def run(self, args) -> int:
        from pyro_vae.inference.experiments.rd_compare import run_comparison
        from pyro_vae.inference.experiments.rd_sweep import parse_betas

        results = run_comparison(config_from_args(args), parse_betas(args.betas), Path(args.out), force=args.force,
                                 log=lambda line: print(line, file=sys.stderr))
        for family, rows in results["families"].items():
            for row in rows:
                print(f"{family:15s} beta {row['beta']:7g}  rate {row['rate_bits']:8.2f} bits  "
                      f"squared error {row['squared_error']:8.2f}")
        print(f"wrote {Path(args.out) / 'rd_compare.json'}, rd_compare.png and l2_vs_l1.png")
        return 0


@COMMANDS.register("compare-em")
class CompareEMCommand(Command):
    help = "EM vs SVI: pPCA, mixture of Bernoullis, nonlinear decoder"
    description = ("Fits the same models by EM and by SVI and scores them by the same log p(x): ppca (closed form, "
                   "exact EM, SVI on a linear VAE), mixture (exact EM, SVI with the class enumerated, SVI with an "
                   "amortized guide), nonlinear (Monte-Carlo EM with HMC, hard EM, wake-sleep, AEVB).")

    @dataclass
    class Options:
        out: str = option("runs/compare-em", "folder for comparison.json and comparison.png",
                           check=output_folder_problem)
        force: bool = option(False, "overwrite a comparison already in --out")
        dataset: str = same_option(DataConfig, "dataset")
        data_dir: Optional[str] = same_option(DataConfig, "data_dir")
        seed: int = same_option(TrainConfig, "seed")
        settings: list[str] = option(("ppca", "mixture", "nonlinear"), "which comparisons: ppca, mixture, "
                                     "nonlinear", metavar="SETTING")
        nonlinear_epochs: Optional[int] = option(None, "passes over the 1,000 points (default 20)", above=0)
        quick: bool = option(False, "small budgets: a look in about a minute")

    def run(self, args) -> int:
        from pyro_vae.inference.em.compare import QUICK, EMComparisonConfig, write_comparison

        raw = {"dataset": args.dataset, "data_dir": args.data_dir, "seed": args.seed, "settings": list(args.settings),
               **(QUICK if args.quick else {})}
        if args.nonlinear_epochs is not None:
            raw["nonlinear_epochs"] = args.nonlinear_epochs
        results = write_comparison(EMComparisonConfig.from_dict(raw), Path(args.out), args.force)
        for setting in ("ppca", "mixture", "nonlinear"):
            for name, history in results.get(setting, {}).get("methods", {}).items():
                last = history[-1]
                print(f"{setting:9s} {name:24s} test log p(x) {last['test_log_px']:9.2f}  train {last['train_log_px']:9.2f}"
                      f"  {last['samples_seen']:8d} samples  {last['seconds']:7.2f} s")
        print(f"wrote {Path(args.out) / 'comparison.json'} and comparison.png")
        return 0
