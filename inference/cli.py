"""The ``vae`` command: ``vae train``, ``vae evaluate RUN``, ``vae sample RUN -n 64``.

Bad input ends in one line on stderr, ``vae: error: ...``, and exit status 2.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Optional, Sequence

from .cli_options import OneLineParser, add_run_options, add_train_options, apply_config_file, config_from_args, \
    given_options
from .errors import UserError
from .evaluation import evaluate_elbo
from .resume import TrainingInterrupted

EXIT_USAGE = 2
# vae train's options beside the config, in the 'run' section of a dumped config file
RUN_OPTIONS = ("out", "checkpoint_every", "nproc", "tensorboard", "plots")
EXIT_INTERRUPTED = 130


def cmd_train(args) -> int:
    from . import distributed
    from .objectives import build_objective
    from .runs import check_output_folder, resume_run, train_run

    if args.checkpoint_every < 0:
        raise UserError(f"--checkpoint-every must be >= 0, got {args.checkpoint_every}")
    if args.nproc < 1:
        raise UserError(f"--nproc must be >= 1, got {args.nproc}")
    if args.nproc > 1 and not distributed.launched():  # check here, then start the job; each process trains
        if not args.resume:
            distributed.check_objective(build_objective(config_from_args(args).objective))  # validated too
            check_output_folder(Path(args.out), args.force)
        status = distributed.launch(args.nproc, distributed.without_option(args.argv, "--nproc"))
        if status:
            out = args.resume or args.out
            print(f"vae: error: the {args.nproc}-process job failed (exit status {status}); any checkpoint in {out} "
                  f"is the last complete one: vae train --resume {out} --nproc {args.nproc}", file=sys.stderr)
        return status
    if args.resume:
        out = Path(args.resume)
        metrics = resume_run(out, quiet=args.quiet, checkpoint_every=args.checkpoint_every,
                             tensorboard=args.tensorboard, plots=args.plots)
    else:
        out = Path(args.out)
        metrics = train_run(config_from_args(args), out, force=args.force, quiet=args.quiet,
                            checkpoint_every=args.checkpoint_every, tensorboard=args.tensorboard, plots=args.plots)
    last = metrics[-1]
    if distributed.main_process():
        print(f"trained {last['epoch']} epochs into {out}: test ELBO {last['test_elbo']:.2f} nats "
              f"(distortion {last['test_distortion']:.2f}, rate {last['test_rate']:.2f})")
    return 0


def cmd_config(args) -> int:
    from .config_files import RUN_SECTION, dumps

    if not args.dump:
        raise UserError("say what to do: 'vae config --dump [options]' prints the resolved config")
    raw = config_from_args(args).to_dict()
    raw[RUN_SECTION] = {key: getattr(args, key) for key in RUN_OPTIONS}
    print(dumps(raw, args.format), end="")
    return 0


def cmd_report(args) -> int:
    from .report import write_report

    print(f"wrote {write_report(Path(args.run), args.out)}")
    return 0


def cmd_evaluate(args) -> int:
    from .collapse import posterior_collapse
    from .marginal_likelihood import importance_log_likelihood
    from .runs import EVALUATION, load_run, write_json

    if args.batch_size <= 0 or args.iw_samples < 0:
        raise UserError("--batch-size must be positive and --iw-samples >= 0")
    run = load_run(Path(args.run), device=args.device)
    run.config.train.eval_batch_size = args.batch_size
    x, y = run.data.test_x, run.labels()
    if args.limit:
        x, y = x[: args.limit], None if y is None else y[: args.limit]
    report = evaluate_elbo(run.model, run.guide, x, args.batch_size, args.seed, y=y)
    collapse = posterior_collapse(run.model, run.guide, x, args.batch_size, args.seed, y=y)
    rows = [("-ELBO = D + R", -report.elbo, report.bits_per_dim(-report.elbo)),
            ("distortion D", report.distortion, report.bits_per_dim(report.distortion)),
            ("rate R", report.rate, report.bits_per_dim(report.rate))]
    figures = {"seed": args.seed, "elbo": report.to_dict(), "collapse": collapse.to_dict()}
    if args.iw_samples:
        ll = importance_log_likelihood(run.model, run.guide, x, args.iw_samples, seed=args.seed, y=y)
        rows.append((f"-log p(x), k={ll.num_samples}", -ll.log_likelihood, ll.bits_per_dim))
        figures["log_likelihood"] = ll.to_dict()
    print(f"{run.data.name}: {report.num_data} test points        nats   bits/dim")
    for name, nats, bits in rows:
        print(f"  {name:<26} {nats:10.3f} {bits:10.4f}")
    if args.iw_samples:
        print(f"  (Monte Carlo standard error of log p(x): {ll.standard_error:.3f} nats)")
    print(f"  active units {collapse.active_units} of {len(collapse.activity)} (Cov_x E_q[z_u] > {collapse.threshold})")
    out = Path(args.json) if args.json else run.path / EVALUATION
    write_json(out, figures)
    print(f"wrote {out}")
    return 0


def cmd_sample(args) -> int:
    from .ex_post import ex_post_report, fit_gaussian_mixture, report_table, training_codes
    from .images import save_decoded, save_prior_samples
    from .runs import SAMPLES, SAMPLES_EX_POST, load_run

    if args.n <= 0:
        raise UserError(f"-n must be positive, got {args.n}")
    run = load_run(Path(args.run), device=args.device)
    model_cfg = run.config.model
    if args.label is not None and not model_cfg.conditional:
        raise UserError("--label needs a conditional VAE (trained with --conditional)")
    if args.label is not None and not 0 <= args.label < model_cfg.num_classes:
        raise UserError(f"--label must be in 0..{model_cfg.num_classes - 1}, got {args.label}")
    if args.ex_post < 0:
        raise UserError(f"--ex-post must be a number of mixture components >= 1 (0: sample the prior), got {args.ex_post}")
    if not args.ex_post and not run.can_sample:
        raise UserError(f"the {model_cfg.prior} prior of this run has no samples (an autoencoder without a prior); "
                        f"fit a density to its codes instead: --ex-post 10")
    label = args.label if args.label is not None else run.sample_label
    out = Path(args.out) if args.out else run.path / (SAMPLES_EX_POST if args.ex_post else SAMPLES)
    if not out.parent.is_dir():
        raise UserError(f"folder {out.parent} does not exist; create it or choose another --out")
    if not args.ex_post:
        save_prior_samples(run.model, out, n=args.n, seed=args.seed, label=label)
        print(f"wrote {args.n} samples to {out}")
        return 0
    train_codes = training_codes(run)
    mixture = fit_gaussian_mixture(train_codes, args.ex_post, seed=args.seed)
    report = ex_post_report(run, mixture, train_codes, seed=args.seed)
    save_decoded(run.model, mixture.sample(args.n, args.seed), out, label=label)
    print(f"Gaussian mixture of {report['components']} components fitted by EM ({report['em_iterations']} "
          f"iterations) to {train_codes.shape[0]} training codes; on the test codes:")
    print(report_table(report, model_cfg.prior))
    print(f"wrote {args.n} samples to {out}")
    return 0


def cmd_rd_sweep(args) -> int:
    from .rd_sweep import parse_betas, run_sweep

    betas = parse_betas(args.betas)
    rows = run_sweep(config_from_args(args), betas, Path(args.out), force=args.force, quiet=args.quiet,
                     log=lambda line: print(line, file=sys.stderr))
    print(f"{'beta':>8s} {'rate R':>9s} {'distortion D':>13s} {'R + D':>9s}   (test, nats per image)")
    for row in rows:
        print(f"{row['beta']:8g} {row['rate']:9.2f} {row['distortion']:13.2f} {row['neg_elbo']:9.2f}")
    print(f"wrote {Path(args.out) / 'rd.json'}, rd.csv and rd.png")
    return 0


def cmd_compress(args) -> int:
    from .bits_back import BitsBackCoder, encode_lossless
    from .checkpoint import atomic_write
    from .entropy_coding import encode_codes, model_rate_bits, require_entropy_model
    from .runs import load_run

    if args.test_images <= 0 or args.start < 0:
        raise UserError("--test-images must be positive and --start >= 0")
    run = load_run(Path(args.run))
    x = run.data.test_x[args.start: args.start + args.test_images]
    if x.shape[0] == 0:
        raise UserError(f"--start {args.start} is past the {run.data.test_x.shape[0]} test images")
    if args.lossless:
        data, result = encode_lossless(BitsBackCoder(run.model, run.guide), x)
        promised = -run.evaluate().elbo / 0.6931471805599453
        detail = f"net {result.net_bits_per_image:.1f} bits per image by bits-back (test -ELBO: {promised:.1f} bits)"
    else:
        require_entropy_model(run.model, run.guide)
        codes = run.guide.code(x)
        data = encode_codes(run.model.prior, codes)
        detail = f"the entropy model's rate: {float(model_rate_bits(run.model.prior, codes).mean()):.1f} bits per image"
    atomic_write(Path(args.output), lambda f: f.write(data))
    print(f"wrote {len(data)} bytes for {x.shape[0]} images to {args.output}: "
          f"{8 * len(data) / x.shape[0]:.1f} bits per image ({detail})")
    return 0


def cmd_decompress(args) -> int:
    import torch

    from .bits_back import LOSSLESS_MAGIC, decode_lossless
    from .entropy_coding import decode_codes, require_entropy_model
    from .images import save_grid
    from .runs import load_run

    run = load_run(Path(args.run))
    try:
        data = Path(args.file).read_bytes()
    except OSError as err:
        raise UserError(f"cannot read {args.file}: {err.strerror}") from None
    if data[:4] == LOSSLESS_MAGIC:
        images = decode_lossless(run.model, run.guide, data)
    else:
        require_entropy_model(run.model, run.guide)
        codes = decode_codes(run.model.prior, data)
        with torch.no_grad():
            images = run.model.decode_mean(codes.float().to(run.device)).clamp(0, 1).cpu()
    save_grid(images, Path(args.output), nrow=int(max(1, images.shape[0] ** 0.5)))
    print(f"decoded {images.shape[0]} images from {args.file} into {args.output}")
    return 0


def cmd_rd_compare(args) -> int:
    from .rd_compare import run_comparison
    from .rd_sweep import parse_betas

    results = run_comparison(config_from_args(args), parse_betas(args.betas), Path(args.out), force=args.force,
                             log=lambda line: print(line, file=sys.stderr))
    for family, rows in results["families"].items():
        for row in rows:
            print(f"{family:15s} beta {row['beta']:7g}  rate {row['rate_bits']:8.2f} bits  "
                  f"squared error {row['squared_error']:8.2f}")
    print(f"wrote {Path(args.out) / 'rd_compare.json'}, rd_compare.png and l2_vs_l1.png")
    return 0


def cmd_diagnose(args) -> int:
    from .diagnostics import choose_points, diagnose
    from .runs import load_run

    for name in ("chains", "draws", "warmup", "guide_samples", "iw_samples"):
        if getattr(args, name) <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    run = load_run(Path(args.run))
    indices = choose_points(run.data.test_x.shape[0], args.points, args.indices, args.seed)
    out = run.path / "diagnostics"
    s = diagnose(run, out, indices, args.chains, args.draws, args.warmup, args.guide_samples, args.iw_samples,
                 args.seed)
    ref, k, mean = s["reference"], s["khat"], s["mean"]
    print(f"{len(indices)} test points; NUTS reference: {s['reference_note']} (max R-hat {ref['max_rhat']:.3f}, "
          f"min bulk ESS {ref['min_ess_bulk']:.0f}, {ref['divergences']} divergences)")
    print(f"guide vs NUTS: mean error {mean['mean_error_in_sd']:.3f} posterior sd, Gaussian KL {mean['gaussian_kl']:.3f}"
          f" nats; PSIS k-hat > 0.7 for {100 * k['share_above_0.7']:.0f}% of points, 0.5-0.7 for "
          f"{100 * k['share_0.5_to_0.7']:.0f}%")
    print(f"gaps (nats per point): amortization {mean['amortization_gap']:.3f}, approximation "
          f"{mean['approximation_gap']:.3f}; active units {s['collapse']['active_units']} of "
          f"{s['collapse']['latent_dim']}; {s['seconds']:.0f} s")
    print(f"wrote {out}/ (reference.nc, guide.nc, summary.json, pair.png, khat.png, kl_per_dim.png, ppc.png)")
    return 0


def cmd_compare_em(args) -> int:
    from .em.compare import QUICK, EMComparisonConfig, write_comparison

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


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="vae", description="Variational autoencoders as Pyro programs.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    add_train_options(sub.add_parser("train", help="train a VAE by SVI into a run folder"))
    p = sub.add_parser("config", help="print the config 'vae train' would use with these options (--dump)")
    add_train_options(p)
    p.add_argument("--dump", action="store_true", help="print the full resolved config")
    p.add_argument("--format", default="yaml", help="yaml, toml or json")
    p = sub.add_parser("evaluate", help="test ELBO = -(D + R), importance-sampled log p(x), active units")
    p.add_argument("run")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--iw-samples", type=int, default=0,
                   help="importance samples for log p(x) (5000 as in the IWAE paper; 0: skip)")
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N test points only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="where to write the figures (default RUN/evaluation.json)")
    p = sub.add_parser("report", help="one self-contained HTML page of a run: config, metrics, plots, grids")
    p.add_argument("run")
    p.add_argument("--out", default=None, help="HTML file to write (default RUN/report.html)")
    p = sub.add_parser("sample", help="a grid of images decoded from z ~ p(z) (or a mixture fitted to the codes)")
    p.add_argument("run")
    p.add_argument("-n", type=int, default=64)
    p.add_argument("--label", type=int, default=None, help="class to draw (conditional VAE)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="PNG to write (default RUN/samples.png, RUN/samples_ex_post.png)")
    p.add_argument("--ex-post", type=int, default=0, metavar="K",
                   help="decode z from a K-component Gaussian mixture fitted by EM to the training codes "
                        "(Ghosh et al. 2020) instead of the prior; works for autoencoders without a prior")
    p = sub.add_parser("rd-sweep", help="one beta-ELBO run per beta; test rate and distortion, table and plot")
    add_run_options(p)
    p.add_argument("--betas", default="0.1,0.3,1,3,10", help="comma-separated beta values")
    p.add_argument("--out", default="runs/rd-sweep", help="folder of the runs (beta-<b>/) and rd.json, rd.csv, rd.png")
    p.add_argument("--force", action="store_true", help="retrain every beta even if its run is finished")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p = sub.add_parser("rd-compare", help="VAE vs rate-distortion autoencoder in one RD plane; L2 vs L1 pictures")
    add_run_options(p)
    p.set_defaults(likelihood_scale=0.1)
    p.add_argument("--betas", default="1,10,100", help="comma-separated beta values (both families)")
    p.add_argument("--out", default="runs/rd-compare")
    p.add_argument("--force", action="store_true", help="retrain every run even if finished")
    p = sub.add_parser("diagnose", help="NUTS reference posteriors, PSIS k-hat, gaps, collapse, PPC (ArviZ)")
    p.add_argument("run")
    p.add_argument("--points", type=int, default=20, help="random test points to examine")
    p.add_argument("--indices", type=int, nargs="+", default=None, help="these test points instead")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=500, help="NUTS draws per chain")
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--guide-samples", type=int, default=1000)
    p.add_argument("--iw-samples", type=int, default=5000, help="importance samples for log p(x)")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("compress", help="rate-distortion autoencoder: test images to bytes (ANS coding)")
    p.add_argument("run")
    p.add_argument("--test-images", type=int, default=100, help="how many test images to code")
    p.add_argument("--start", type=int, default=0, help="first test image")
    p.add_argument("--lossless", action="store_true",
                   help="a VAE (bernoulli, normal prior, diagonal_normal guide): bits-back ANS, exact images")
    p.add_argument("-o", "--output", required=True, help="file to write")
    p = sub.add_parser("decompress", help="bytes from 'vae compress' back to images (a PNG grid)")
    p.add_argument("run")
    p.add_argument("file")
    p.add_argument("-o", "--output", required=True, help="PNG to write")
    p = sub.add_parser("compare-em", help="EM vs SVI: pPCA, mixture of Bernoullis, nonlinear decoder")
    p.add_argument("--out", default="runs/compare-em", help="folder for comparison.json and comparison.png")
    p.add_argument("--force", action="store_true", help="overwrite a comparison already in --out")
    p.add_argument("--dataset", default="mnist-embedded")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--settings", nargs="+", default=["ppca", "mixture", "nonlinear"])
    p.add_argument("--nonlinear-epochs", type=int, default=None, help="passes over the 1,000 points (default 20)")
    p.add_argument("--quick", action="store_true", help="small budgets: a look in about a minute")
    return parser


COMMANDS = {"train": cmd_train, "config": cmd_config, "report": cmd_report, "evaluate": cmd_evaluate, "sample": cmd_sample, "compare-em": cmd_compare_em,
            "rd-sweep": cmd_rd_sweep, "compress": cmd_compress, "decompress": cmd_decompress,
            "rd-compare": cmd_rd_compare, "diagnose": cmd_diagnose}


def main(argv: Optional[Sequence[str]] = None) -> int:
    warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")
    warnings.filterwarnings("ignore", category=FutureWarning, module="torch.jit")  # pyro.infer.mcmc imports
    try:
        args = build_parser().parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)
        apply_config_file(args, given_options(build_parser(), args.argv))
        return COMMANDS[args.command](args)
    except UserError as err:
        from .distributed import main_process  # in a data-parallel job, say which process speaks

        print(f"vae{'' if main_process() else ' (rank ' + os.environ['RANK'] + ')'}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:  # a full disk, a folder that cannot be written: atomic writes left the old files
        print(f"vae: error: cannot write {err.filename or 'a file'}: {err.strerror or err}; free space or "
              f"choose another folder", file=sys.stderr)
        return EXIT_USAGE
    except TrainingInterrupted as stopped:
        print(f"vae: {stopped}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("vae: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
