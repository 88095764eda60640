"""vae rd-sweep, rd-compare and compare-em: experiments over several runs."""
from __future__ import annotations

import sys
from pathlib import Path

from pyro_vae.inference.cli.options import add_run_options, config_from_args

def cmd_rd_sweep(args) -> int:
    from pyro_vae.inference.experiments.rd_sweep import parse_betas, run_sweep

    betas = parse_betas(args.betas)
    rows = run_sweep(config_from_args(args), betas, Path(args.out), force=args.force, quiet=args.quiet,
                     log=lambda line: print(line, file=sys.stderr))
    print(f"{'beta':>8s} {'rate R':>9s} {'distortion D':>13s} {'R + D':>9s}   (test, nats per image)")
    for row in rows:
        print(f"{row['beta']:8g} {row['rate']:9.2f} {row['distortion']:13.2f} {row['neg_elbo']:9.2f}")
    print(f"wrote {Path(args.out) / 'rd.json'}, rd.csv and rd.png")
    return 0


def cmd_rd_compare(args) -> int:
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


def cmd_compare_em(args) -> int:
    from pyro_vae.inference.em.compare import QUICK, EMComparisonConfig, write_comparison

    raw = {"dataset": args.dataset, "data_dir": args.data_dir, "seed": args.seed, "settings": args.settings,
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


def add_commands(sub) -> None:
    """This group's subcommands, each with its handler."""
    p = sub.add_parser("rd-sweep", help="one beta-ELBO run per beta; test rate and distortion, table and plot")
    add_run_options(p)
    p.add_argument("--betas", default="0.1,0.3,1,3,10", help="comma-separated beta values")
    p.add_argument("--out", default="runs/rd-sweep", help="folder of the runs (beta-<b>/) and rd.json, rd.csv, rd.png")
    p.add_argument("--force", action="store_true", help="retrain every beta even if its run is finished")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=cmd_rd_sweep)
    p = sub.add_parser("rd-compare", help="VAE vs rate-distortion autoencoder in one RD plane; L2 vs L1 pictures")
    add_run_options(p)
    p.set_defaults(likelihood_scale=0.1)
    p.add_argument("--betas", default="1,10,100", help="comma-separated beta values (both families)")
    p.add_argument("--out", default="runs/rd-compare", help="folder of the runs and rd_compare.json, rd_compare.png, "
                   "l2_vs_l1.png")
    p.add_argument("--force", action="store_true", help="retrain every run even if finished")
    p.set_defaults(handler=cmd_rd_compare)
    p = sub.add_parser("compare-em", help="EM vs SVI: pPCA, mixture of Bernoullis, nonlinear decoder",
                       description="Fits the same models by EM and by SVI and scores them by the same log p(x): "
                                   "ppca (closed form, exact EM, SVI on a linear VAE), mixture (exact EM, SVI with "
                                   "the class enumerated, SVI with an amortized guide), nonlinear (Monte-Carlo EM "
                                   "with HMC, hard EM, wake-sleep, AEVB).")
    p.add_argument("--out", default="runs/compare-em", help="folder for comparison.json and comparison.png")
    p.add_argument("--force", action="store_true", help="overwrite a comparison already in --out")
    p.add_argument("--dataset", default="mnist-embedded", help="the images, as for vae train [default: mnist-embedded]")
    p.add_argument("--data-dir", default=None, help="folder of IDX .gz files, or torchvision's download root")
    p.add_argument("--seed", type=int, default=0, help="seeds initialization and every draw [default: 0]")
    p.add_argument("--settings", nargs="+", default=["ppca", "mixture", "nonlinear"],
                   help="which comparisons: ppca, mixture, nonlinear [default: all three]")
    p.add_argument("--nonlinear-epochs", type=int, default=None, help="passes over the 1,000 points (default 20)")
    p.add_argument("--quick", action="store_true", help="small budgets: a look in about a minute")

    p.set_defaults(handler=cmd_compare_em)
