"""vae evaluate, report, sample and diagnose: what a trained run folder holds. Each handler loads the run,
calls the library function (``evaluate_run``, ``write_report``, ``sample_run``, ``diagnose_run``) and prints."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pyro_vae.models.registry import SEED_MAX, option

from pyro_vae.inference.cli.command import COMMANDS, Command
from pyro_vae.inference.errors import UserError
from pyro_vae.inference.runs.layout import output_file_problem


def _device_option():
    from pyro_vae.inference.config.sections import DEVICE_NAMES, device_problem

    return option("cpu", DEVICE_NAMES, check=device_problem)


def _seed_option(help: str):
    return option(0, help, minimum=0, maximum=SEED_MAX)


@COMMANDS.register("evaluate")
class EvaluateCommand(Command):
    help = "test ELBO = -(D + R), importance-sampled log p(x), active units"
    reads_run = True

    @dataclass
    class Options:
        batch_size: int = option(1000, "test points per pass", above=0)
        iw_samples: int = option(0, "importance samples for log p(x) (5000 as in the IWAE paper; 0: skip)", minimum=0)
        limit: Optional[int] = option(None, "evaluate the first N test points only", above=0)
        seed: int = _seed_option("seeds the guide's draws")
        device: str = _device_option()
        json: Optional[str] = option(None, "where to write the figures (default RUN/evaluation.json)",
                                      check=output_file_problem)

    def run(self, args) -> int:
        from pyro_vae.inference.evaluate.run_evaluation import evaluate_run
        from pyro_vae.inference.runs.files import write_json
        from pyro_vae.inference.runs.layout import EVALUATION, weights_sha256
        from pyro_vae.inference.runs.run import load_run

        scored = weights_sha256(Path(args.run))  # (read first: a later training's weights are flagged, not mislabelled)
        run = load_run(Path(args.run), device=args.device)
        args.hold(run.params())  # the trained pyro.params for every method of the run's programs
        found = evaluate_run(run, args.batch_size, args.iw_samples, args.limit, args.seed)
        self.print_figures(found)
        out = Path(args.json) if args.json else run.path / EVALUATION
        with run.adding_results(out):
            write_json(out, {**found.figures(), **({"weights_sha256": scored} if scored else {})})
        print(f"wrote {out}")
        return 0

    @staticmethod
    def print_figures(found) -> None:
        print(f"{found.data_name}: {found.elbo.num_data} test points        nats   bits/dim")
        for name, nats, bits in found.rows():
            print(f"  {name:<26} {nats:10.3f} {bits:10.4f}")
        if found.log_likelihood is not None:
            print(f"  (Monte Carlo standard error of log p(x): {found.log_likelihood.standard_error:.3f} nats)")
        collapse = found.collapse
        layers = collapse.active_by_layer() if len(collapse.layers) > 1 else {}
        by_layer = f"; by layer: {', '.join(f'{name} {a} of {n}' for name, (a, n) in layers.items())}" if layers else ""
        print(f"  active units {collapse.active_units} of {len(collapse.activity)} (Cov_x E_q[z_u] > "
              f"{collapse.threshold}){by_layer}")
        if found.standardized_log_det is not None:  # --standardize: densities of the standardized values
            print(f"  (standardized data: densities are of the standardized values; subtract "
                  f"{found.standardized_log_det:.3f} nats from log p(x) for the data's own units)")


@COMMANDS.register("report")
class ReportCommand(Command):
    help = "one self-contained HTML page of a run: config, metrics, plots, grids"
    reads_run = True

    @dataclass
    class Options:
        out: Optional[str] = option(None, "HTML file to write (default RUN/report.html)", check=output_file_problem)

    def run(self, args) -> int:
        from pyro_vae.inference.report.html import write_report

        print(f"wrote {write_report(Path(args.run), args.out)}")
        return 0


@COMMANDS.register("sample")
class SampleCommand(Command):
    help = "a grid of images decoded from z ~ p(z) (or a mixture fitted to the codes)"
    reads_run = True

    @dataclass
    class Options:
        n: int = option(64, "how many images", flag="-n", above=0)
        label: Optional[int] = option(None, "class to draw (conditional VAE)", minimum=0)
        seed: int = _seed_option("seeds the draws of z")
        device: str = _device_option()
        out: Optional[str] = option(None, "PNG to write (default RUN/samples.png, RUN/samples_ex_post.png)",
                                     check=output_file_problem)
        ex_post: int = option(0, "decode z from a K-component Gaussian mixture fitted by EM to the training codes "
                              "(Ghosh et al. 2020) instead of the prior; works for autoencoders without a prior",
                              metavar="K", minimum=0)

    def run(self, args) -> int:
        from pyro_vae.inference.experiments.ex_post import report_table
        from pyro_vae.inference.report.outputs import check_picture_count
        from pyro_vae.inference.report.samples import sample_run
        from pyro_vae.inference.runs.run import load_run

        check_picture_count(args.n)  # before the run is loaded: at once
        run = load_run(Path(args.run), device=args.device)
        args.hold(run.params())  # the trained pyro.params for every method of the run's programs
        found = sample_run(run, args.n, args.seed, args.label, args.ex_post, args.out)
        if found.ex_post is not None:
            report = found.ex_post
            print(f"Gaussian mixture of {report['components']} components fitted by EM ({report['em_iterations']} "
                  f"iterations) to {found.train_codes} training codes; on the test codes:")
            print(report_table(report, run.config.model.prior))
        print(found.describe())
        return 0


@COMMANDS.register("diagnose")
class DiagnoseCommand(Command):
    help = "NUTS reference posteriors, PSIS k-hat, gaps, collapse, PPC (ArviZ), on training and test points"
    reads_run = True

    @dataclass
    class Options:
        split: str = option("both", "whose points: the training set's, the test set's or both, side by side",
                            choices=("train", "test", "both"))
        points: Optional[int] = option(None, "random points to examine, per split [default: 20]", above=0)
        indices: Optional[list[int]] = option(None, "these points of each split instead", metavar="INDICES",
                                              minimum=0)
        worst: Optional[int] = option(None, "the N points of largest PSIS k-hat after a fast k-hat pass (guide "
                                      "draws only) instead", metavar="N", above=0)
        screen: Optional[int] = option(None, "with --worst: random points of each split screened [default: 1000]",
                                       metavar="M", above=0)
        chains: int = option(4, "NUTS chains per point (R-hat compares them: at least 2)", minimum=2)
        draws: int = option(500, "NUTS draws per chain (R-hat splits each chain: at least 4)", minimum=4)
        warmup: int = option(500, "NUTS adaptation steps", above=0)
        guide_samples: int = option(5000, "draws of the guide per point, for its moments, PSIS k-hat, ELBO and the "
                                    "importance-sampled log p(x) alike (at least 2)", minimum=2)
        iw_samples: Optional[int] = option(None, "")  # gone: refused with a pointer to --guide-samples
        seed: int = _seed_option("seeds the choice of points and every draw")

    def run(self, args) -> int:
        from pyro_vae.inference.diagnostics.report import COMPARED
        from pyro_vae.inference.diagnostics.run_diagnosis import check_choices, diagnose_run
        from pyro_vae.inference.runs.files import check_folder_to_replace
        from pyro_vae.inference.runs.layout import DIAGNOSTICS
        from pyro_vae.inference.runs.run import load_run

        if args.iw_samples is not None:
            raise UserError("vae diagnose estimates log p(x) from its --guide-samples draws (the ones PSIS k-hat "
                            "judges), so it has no --iw-samples; use --guide-samples")
        check_choices(args.points, args.indices, args.worst, args.screen, args.chains, args.draws, args.warmup,
                      args.guide_samples)  # before the run loads: at once
        run = load_run(Path(args.run))
        check_folder_to_replace(run.path / DIAGNOSTICS)  # before NUTS runs, not after
        args.hold(run.params())  # the trained pyro.params for every method of the run's programs
        s = diagnose_run(run, args.split, args.points, args.indices, args.worst, args.screen, args.chains,
                         args.draws, args.warmup, args.guide_samples, args.seed)
        total = sum(len(part["points"]) for part in s["splits"].values())
        print(f"one NUTS run over all {total} points: "
              f"{next(iter(s['splits'].values()))['reference']['divergences']} divergences")
        for split, part in s["splits"].items():
            ref = part["reference"]
            print(f"{split}: {len(part['points'])} points; NUTS reference: {part['reference_note']} (max R-hat "
                  f"{ref['max_rhat']:.3f}, min bulk ESS {ref['min_ess_bulk']:.0f})")
            for name, layer in (part["by_layer"] or {}).items():
                active = s["collapse"]["layers"][name]["active_units"]
                print(f"  {name} ({layer['units']} units, {active} active): mean error "
                      f"{layer['mean_error_in_sd']:.3f} posterior sd, Gaussian KL {layer['gaussian_kl']:.3f} nats")
        print(f"{'':36s}" + "".join(f"{split:>10s}" for split in s["splits"]))
        for name, values in s["comparison"].items():
            print(f"  {COMPARED[name]:34s}" + "".join(f"{values[split]:10.3f}" for split in s["splits"]))
        print(f"active units {s['collapse']['active_units']} of {s['collapse']['latent_dim']}; {s['seconds']:.0f} s")
        print(f"wrote {run.path / DIAGNOSTICS}/ (summary.json, splits.png, energy.png, kl_per_dim.png, ppc.png; "
              f"per split: reference.nc, guide.nc, summary.json, pair.png, khat.png, ppc_arviz.png)")
        return 0
