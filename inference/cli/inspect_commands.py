"""vae evaluate, sample, report and diagnose: what a trained run folder holds."""
from __future__ import annotations

import argparse
from pathlib import Path

from pyro_vae.inference.cli.options import run_command
from pyro_vae.inference.errors import UserError

MAX_IW_SAMPLES = 1_000_000  # vae evaluate --iw-samples: 10^6 draws per point already take hours on a CPU

def cmd_report(args) -> int:
    from pyro_vae.inference.report.html import write_report

    print(f"wrote {write_report(Path(args.run), args.out)}")
    return 0


def cmd_evaluate(args) -> int:
    from pyro_vae.inference.evaluate.elbo import evaluate_elbo
    from pyro_vae.inference.evaluate.collapse import posterior_collapse
    from pyro_vae.inference.evaluate.marginal_likelihood import importance_log_likelihood
    from pyro_vae.inference.runs.folder import EVALUATION, load_run, write_json

    if args.batch_size <= 0 or args.iw_samples < 0:
        raise UserError("--batch-size must be positive and --iw-samples >= 0")
    if args.iw_samples > MAX_IW_SAMPLES:  # streamed in bounded memory, but days of decoding: refused at once
        raise UserError(f"--iw-samples {args.iw_samples:,} is more than {MAX_IW_SAMPLES:,} importance samples per "
                        f"point; its standard error falls as 1/sqrt(k), and k = 5000 (the IWAE paper's) is usually "
                        f"within 0.01 nats: ask for fewer")
    run = load_run(Path(args.run), device=args.device)
    args.hold(run.params())  # the trained pyro.params for every method of the run's programs
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
    layers = collapse.active_by_layer() if len(collapse.layers) > 1 else {}
    by_layer = f"; by layer: {', '.join(f'{name} {a} of {n}' for name, (a, n) in layers.items())}" if layers else ""
    print(f"  active units {collapse.active_units} of {len(collapse.activity)} (Cov_x E_q[z_u] > {collapse.threshold})"
          f"{by_layer}")
    if run.data.scale is not None:  # --standardize: densities of the standardized values
        log_det = float(run.data.scale.double().log().sum())
        figures["standardized_log_det_scale"] = log_det
        print(f"  (standardized data: densities are of the standardized values; subtract {log_det:.3f} nats from "
              f"log p(x) for the data's own units)")
    out = Path(args.json) if args.json else run.path / EVALUATION
    with run.adding_results(out):
        write_json(out, figures)
    print(f"wrote {out}")
    return 0


def cmd_sample(args) -> int:
    from pyro_vae.inference.experiments.ex_post import ex_post_report, fit_gaussian_mixture, report_table, training_codes
    from pyro_vae.inference.report.outputs import check_picture_count, save_decoded_codes, save_samples
    from pyro_vae.inference.runs.folder import SAMPLES, SAMPLES_EX_POST, load_run

    if args.n <= 0:
        raise UserError(f"-n must be positive, got {args.n}")
    check_picture_count(args.n)  # before the run is loaded: at once
    run = load_run(Path(args.run), device=args.device)
    args.hold(run.params())  # the trained pyro.params for every method of the run's programs
    check_picture_count(args.n, run)
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
    written = f"wrote {args.n} samples to {out}" if run.data.is_image else \
        f"wrote {args.n} samples to {out} (heat map) and {out.with_suffix('.csv')} (their decoded means E[x | z], " \
        f"not draws of x)"
    if not args.ex_post:
        with run.adding_results(out):
            save_samples(run, out, n=args.n, seed=args.seed, label=label)
        print(written)
        return 0
    train_codes = training_codes(run)
    mixture = fit_gaussian_mixture(train_codes, args.ex_post, seed=args.seed)
    report = ex_post_report(run, mixture, train_codes, seed=args.seed)
    with run.adding_results(out):
        save_decoded_codes(run, mixture.sample(args.n, args.seed), out, label=label)
    print(f"Gaussian mixture of {report['components']} components fitted by EM ({report['em_iterations']} "
          f"iterations) to {train_codes.shape[0]} training codes; on the test codes:")
    print(report_table(report, model_cfg.prior))
    print(written)
    return 0


def cmd_diagnose(args) -> int:
    from pyro_vae.inference.diagnostics import SPLITS, choose_points, diagnose, worst_points
    from pyro_vae.inference.diagnostics.points import POINTS, SCREEN, split_size
    from pyro_vae.inference.diagnostics.report import COMPARED
    from pyro_vae.inference.runs.folder import DIAGNOSTICS, load_run

    if args.iw_samples is not None:
        raise UserError("vae diagnose estimates log p(x) from its --guide-samples draws (the ones PSIS k-hat judges), "
                        "so it has no --iw-samples; use --guide-samples")
    for name in ("chains", "draws", "warmup", "guide_samples", "screen"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    ways = [flag for flag, value in (("--points", args.points), ("--indices", args.indices), ("--worst", args.worst))
            if value is not None]
    if len(ways) > 1:
        raise UserError(f"choose the points one way: {' or '.join(ways)}, not both")
    if args.screen is not None and args.worst is None:
        raise UserError("--screen sets how many points --worst screens; give --worst N too")
    run = load_run(Path(args.run))
    args.hold(run.params())  # the trained pyro.params for every method of the run's programs
    splits = SPLITS if args.split == "both" else (args.split,)
    points, screening = {}, {}
    count = POINTS if args.points is None else args.points
    screen = SCREEN if args.screen is None else args.screen
    for split in splits:
        if args.worst is not None:
            points[split], screening[split] = worst_points(run, split, args.worst, screen, args.seed)
        else:
            points[split] = choose_points(split_size(run, split), count, args.indices, args.seed, split)
    out = run.path / DIAGNOSTICS
    s = diagnose(run, out, points, args.chains, args.draws, args.warmup, args.guide_samples, args.seed,
                 screening or None, writing=run.adding_results)
    total = sum(len(part["points"]) for part in s["splits"].values())
    print(f"one NUTS run over all {total} points: {next(iter(s['splits'].values()))['reference']['divergences']} "
          f"divergences")
    for split, part in s["splits"].items():
        ref = part["reference"]
        print(f"{split}: {len(part['points'])} points; NUTS reference: {part['reference_note']} (max R-hat "
              f"{ref['max_rhat']:.3f}, min bulk ESS {ref['min_ess_bulk']:.0f})")
        for name, layer in (part["by_layer"] or {}).items():
            active = s["collapse"]["layers"][name]["active_units"]
            print(f"  {name} ({layer['units']} units, {active} active): mean error {layer['mean_error_in_sd']:.3f} "
                  f"posterior sd, Gaussian KL {layer['gaussian_kl']:.3f} nats")
    print(f"{'':36s}" + "".join(f"{split:>10s}" for split in s["splits"]))
    for name, values in s["comparison"].items():
        print(f"  {COMPARED[name]:34s}" + "".join(f"{values[split]:10.3f}" for split in s["splits"]))
    print(f"active units {s['collapse']['active_units']} of {s['collapse']['latent_dim']}; {s['seconds']:.0f} s")
    print(f"wrote {out}/ (summary.json, splits.png, energy.png, kl_per_dim.png, ppc.png; per split: reference.nc, "
          f"guide.nc, summary.json, pair.png, khat.png, ppc_arviz.png)")
    return 0


def add_commands(sub) -> None:
    """This group's subcommands, each with its handler."""
    p = run_command(sub, "evaluate", cmd_evaluate, "test ELBO = -(D + R), importance-sampled log p(x), active units")
    p.add_argument("--batch-size", type=int, default=1000, help="test points per pass [default: 1000]")
    p.add_argument("--iw-samples", type=int, default=0,
                   help="importance samples for log p(x) (5000 as in the IWAE paper; 0: skip)")
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N test points only")
    p.add_argument("--seed", type=int, default=0, help="seeds the guide's draws [default: 0]")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto [default: cpu]")
    p.add_argument("--json", default=None, help="where to write the figures (default RUN/evaluation.json)")
    p = run_command(sub, "report", cmd_report, "one self-contained HTML page of a run: config, metrics, plots, grids")
    p.add_argument("--out", default=None, help="HTML file to write (default RUN/report.html)")
    p = run_command(sub, "sample", cmd_sample,
                    "a grid of images decoded from z ~ p(z) (or a mixture fitted to the codes)")
    p.add_argument("-n", type=int, default=64, help="how many images [default: 64]")
    p.add_argument("--label", type=int, default=None, help="class to draw (conditional VAE)")
    p.add_argument("--seed", type=int, default=0, help="seeds the draws of z [default: 0]")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto [default: cpu]")
    p.add_argument("--out", default=None, help="PNG to write (default RUN/samples.png, RUN/samples_ex_post.png)")
    p.add_argument("--ex-post", type=int, default=0, metavar="K",
                   help="decode z from a K-component Gaussian mixture fitted by EM to the training codes "
                        "(Ghosh et al. 2020) instead of the prior; works for autoencoders without a prior")
    p = run_command(sub, "diagnose", cmd_diagnose, "NUTS reference posteriors, PSIS k-hat, gaps, collapse, PPC (ArviZ), "
                    "on training and test points")
    p.add_argument("--split", choices=("train", "test", "both"), default="both",
                   help="whose points: the training set's, the test set's or both, side by side [default: both]")
    p.add_argument("--points", type=int, default=None, help="random points to examine, per split [default: 20]")
    p.add_argument("--indices", type=int, nargs="+", default=None, help="these points of each split instead")
    p.add_argument("--worst", type=int, default=None, metavar="N",
                   help="the N points of largest PSIS k-hat after a fast k-hat pass (guide draws only) instead")
    p.add_argument("--screen", type=int, default=None, metavar="M",
                   help="with --worst: random points of each split screened [default: 1000]")
    p.add_argument("--chains", type=int, default=4, help="NUTS chains per point [default: 4]")
    p.add_argument("--draws", type=int, default=500, help="NUTS draws per chain [default: 500]")
    p.add_argument("--warmup", type=int, default=500, help="NUTS adaptation steps [default: 500]")
    p.add_argument("--guide-samples", type=int, default=5000,
                   help="draws of the guide per point, for its moments, PSIS k-hat, ELBO and the importance-sampled "
                        "log p(x) alike [default: 5000]")
    p.add_argument("--iw-samples", type=int, default=None, help=argparse.SUPPRESS)  # gone: refused with a pointer
    p.add_argument("--seed", type=int, default=0, help="seeds the choice of points and every draw [default: 0]")
