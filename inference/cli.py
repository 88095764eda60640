"""The ``vae`` command: ``vae train``, ``vae evaluate RUN``, ``vae sample RUN -n 64``.

Bad input ends in one line on stderr, ``vae: error: ...``, and exit status 2.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Optional, Sequence

from guides import GUIDES
from models import LIKELIHOODS, PRIORS

from .config import BINARIZATIONS, DATASETS, DEVICES, FAMILIES, RunConfig, apply_family
from .errors import UserError
from .evaluation import evaluate_elbo
from .resume import TrainingInterrupted

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage is in ``--help``)."""

    def error(self, message: str):
        raise UserError(f"{message} (see '{self.prog} --help')")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a VAE by SVI into a run folder")
    add_run_options(p)
    p.add_argument("--out", default="runs/default", help="run folder to write (default: runs/default)")
    p.add_argument("--force", action="store_true", help="overwrite a run already in --out")
    p.add_argument("--resume", metavar="RUN", default=None,
                   help="continue RUN from its checkpoint exactly where it stopped (other options come from RUN)")
    p.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints (0: epoch ends only)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The flags of a RunConfig (data, model, guide, objective, training), shared by train and rd-sweep."""
    defaults = RunConfig()
    p.add_argument("--dataset", default=defaults.data.dataset, help=f"one of {', '.join(DATASETS)}")
    p.add_argument("--data-dir", default=None, help="folder of IDX .gz files, or torchvision's download root")
    p.add_argument("--binarize", default=defaults.data.binarize, help=f"one of {', '.join(BINARIZATIONS)}")
    p.add_argument("--epochs", type=int, default=defaults.train.epochs, help="passes over the training set")
    p.add_argument("--batch-size", type=int, default=defaults.train.batch_size, help="minibatch size B (the plate scales by N/B)")
    p.add_argument("--latent-dim", type=int, default=defaults.model.latent_dim, help="size Z of the latent code")
    p.add_argument("--hidden-dim", type=int, default=defaults.model.hidden_dim, help="decoder and encoder width")
    p.add_argument("--num-hidden-layers", type=int, default=defaults.model.num_hidden_layers,
                   help="MLP hidden layers (0: linear encoder and decoder)")
    p.add_argument("--activation", default=defaults.model.activation, help="hidden-layer nonlinearity")
    p.add_argument("--arch", default=defaults.model.arch, help="mlp or conv (encoder and decoder)")
    p.add_argument("--channels", type=int, default=defaults.model.channels, help="conv: first-layer channels")
    p.add_argument("--upsample", default=defaults.model.upsample, help="conv decoder: transposed or pixel_shuffle")
    p.add_argument("--likelihood", default=defaults.model.likelihood, help=f"one of {', '.join(LIKELIHOODS)}")
    p.add_argument("--likelihood-scale", type=float, default=defaults.model.likelihood_scale,
                   help="sigma of gaussian, b of laplace, initial sigma of the learned Gaussians")
    p.add_argument("--prior", default=defaults.model.prior, help=f"one of {', '.join(PRIORS)}")
    p.add_argument("--prior-components", type=int, default=defaults.model.prior_components,
                   help="mixture components of the mog and vamp priors")
    p.add_argument("--prior-flows", type=int, default=defaults.model.prior_flows, help="layers of the flow prior")
    p.add_argument("--guide", default=defaults.guide.guide, help=f"one of {', '.join(GUIDES)}")
    p.add_argument("--guide-flows", type=int, default=defaults.guide.flows, help="layers of the iaf guide")
    p.add_argument("--conditional", action="store_true", help="conditional VAE on the labels: p(x|z,y), q(z|x,y)")
    obj = defaults.objective
    p.add_argument("--objective", default=obj.name, help="elbo, mean_field, beta or iwae")
    p.add_argument("--num-particles", type=int, default=obj.num_particles,
                   help="L samples of the ELBO, or k of the IWAE bound")
    p.add_argument("--beta", type=float, default=obj.beta, help="weight of the rate in D + beta R (objective beta)")
    p.add_argument("--sampled-kl", action="store_true", help="objective beta: Monte Carlo KL instead of closed form")
    p.add_argument("--free-bits", type=float, default=obj.free_bits, help="nats per latent dimension (objective beta)")
    p.add_argument("--kl-schedule", default=obj.kl_schedule, help="constant, linear or cyclical (objective beta)")
    p.add_argument("--warmup-steps", type=int, default=obj.warmup_steps, help="length of the KL warm-up or cycle")
    p.add_argument("--dreg", action="store_true", help="objective iwae: doubly reparameterized gradients")
    p.add_argument("--contractive-weight", type=float, default=obj.contractive_weight,
                   help="objective contractive: lambda of the encoder-Jacobian penalty")
    p.add_argument("--adversarial-lr", type=float, default=obj.adversarial_lr,
                   help="objective adversarial: Adam rate of the discriminator and generator steps")
    p.add_argument("--discriminator-steps", type=int, default=obj.discriminator_steps,
                   help="objective adversarial: discriminator steps per minibatch")
    p.add_argument("--family", default="vae", help=f"autoencoder family preset: {', '.join(FAMILIES)} "
                   "(sets prior, guide, objective; see the README)")
    p.add_argument("--corruption", default=defaults.guide.corruption, help="denoising: none, mask or gaussian")
    p.add_argument("--corruption-level", type=float, default=defaults.guide.corruption_level,
                   help="masking probability or noise standard deviation")
    p.add_argument("--lr", type=float, default=defaults.train.lr, help="Adam learning rate")
    p.add_argument("--clip-norm", type=float, default=None, help="clip each parameter's gradient norm to this")
    p.add_argument("--min-scale", type=float, default=defaults.guide.min_scale, help="floor on the guide's scales")
    p.add_argument("--seed", type=int, default=defaults.train.seed, help="seeds initialization, batches and draws")
    p.add_argument("--device", default=defaults.train.device, help=f"one of {', '.join(DEVICES)}")
    p.add_argument("--compile", default=defaults.train.compile,
                   help="SVI engine: off (Pyro's SVI), trace (captured graph), inductor (compiled), auto")
    p.add_argument("--data-placement", default=defaults.train.data_placement,
                   help="training images on the device, or streamed from pinned host memory (auto, device, host)")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    return RunConfig.from_dict(apply_family(_raw_config(args), args.family))


def _raw_config(args: argparse.Namespace) -> dict:
    return ({
        "data": {"dataset": args.dataset, "data_dir": args.data_dir, "binarize": args.binarize},
        "model": {"latent_dim": args.latent_dim, "hidden_dim": args.hidden_dim, "activation": args.activation,
                  "arch": args.arch, "channels": args.channels, "upsample": args.upsample,
                  "num_hidden_layers": args.num_hidden_layers, "likelihood": args.likelihood,
                  "likelihood_scale": args.likelihood_scale, "prior": args.prior,
                  "prior_components": args.prior_components, "prior_flows": args.prior_flows,
                  "conditional": args.conditional},
        "guide": {"guide": args.guide, "hidden_dim": args.hidden_dim, "num_hidden_layers": args.num_hidden_layers,
                  "arch": args.arch, "channels": args.channels,
                  "activation": args.activation, "flows": args.guide_flows, "min_scale": args.min_scale,
                  "corruption": args.corruption, "corruption_level": args.corruption_level},
        "objective": {"name": args.objective, "num_particles": args.num_particles, "beta": args.beta,
                      "analytic_kl": not args.sampled_kl, "free_bits": args.free_bits,
                      "kl_schedule": args.kl_schedule, "warmup_steps": args.warmup_steps, "dreg": args.dreg,
                      "contractive_weight": args.contractive_weight, "adversarial_lr": args.adversarial_lr,
                      "discriminator_steps": args.discriminator_steps},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                  "device": args.device, "clip_norm": args.clip_norm, "compile": args.compile,
                  "data_placement": args.data_placement},
    })


def cmd_train(args) -> int:
    from .runs import resume_run, train_run

    if args.checkpoint_every < 0:
        raise UserError(f"--checkpoint-every must be >= 0, got {args.checkpoint_every}")
    if args.resume:
        out = Path(args.resume)
        metrics = resume_run(out, quiet=args.quiet, checkpoint_every=args.checkpoint_every)
    else:
        out = Path(args.out)
        metrics = train_run(config_from_args(args), out, force=args.force, quiet=args.quiet,
                            checkpoint_every=args.checkpoint_every)
    last = metrics[-1]
    print(f"trained {last['epoch']} epochs into {out}: test ELBO {last['test_elbo']:.2f} nats "
          f"(distortion {last['test_distortion']:.2f}, rate {last['test_rate']:.2f})")
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
    from .images import save_prior_samples
    from .runs import load_run

    if args.n <= 0:
        raise UserError(f"-n must be positive, got {args.n}")
    run = load_run(Path(args.run), device=args.device)
    model_cfg = run.config.model
    if args.label is not None and not model_cfg.conditional:
        raise UserError("--label needs a conditional VAE (trained with --conditional)")
    if args.label is not None and not 0 <= args.label < model_cfg.num_classes:
        raise UserError(f"--label must be in 0..{model_cfg.num_classes - 1}, got {args.label}")
    if not getattr(run.model.prior, "can_sample", True):
        raise UserError(f"the {model_cfg.prior} prior of this run has no samples (an autoencoder without a prior); "
                        f"decode codes of test images instead")
    label = args.label if args.label is not None else (0 if model_cfg.conditional else None)
    out = Path(args.out) if args.out else run.path / "samples.png"
    if not out.parent.is_dir():
        raise UserError(f"folder {out.parent} does not exist; create it or choose another --out")
    save_prior_samples(run.model, out, n=args.n, seed=args.seed, label=label)
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
    _add_train(sub)
    p = sub.add_parser("evaluate", help="test ELBO = -(D + R), importance-sampled log p(x), active units")
    p.add_argument("run")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--iw-samples", type=int, default=0,
                   help="importance samples for log p(x) (5000 as in the IWAE paper; 0: skip)")
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N test points only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="where to write the figures (default RUN/evaluation.json)")
    p = sub.add_parser("sample", help="a grid of images decoded from z ~ p(z)")
    p.add_argument("run")
    p.add_argument("-n", type=int, default=64)
    p.add_argument("--label", type=int, default=None, help="class to draw (conditional VAE)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="PNG to write (default RUN/samples.png)")
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


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "sample": cmd_sample, "compare-em": cmd_compare_em,
            "rd-sweep": cmd_rd_sweep, "compress": cmd_compress, "decompress": cmd_decompress,
            "rd-compare": cmd_rd_compare, "diagnose": cmd_diagnose}


def main(argv: Optional[Sequence[str]] = None) -> int:
    warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")
    warnings.filterwarnings("ignore", category=FutureWarning, module="torch.jit")  # pyro.infer.mcmc imports
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UserError as err:
        print(f"vae: error: {err}", file=sys.stderr)
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
