"""vae train and vae config: train a run folder (one process or a torchrun job), print the resolved config."""
from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Optional

from pyro_vae.models.registry import option

from pyro_vae.inference.cli.command import COMMANDS, Command
from pyro_vae.inference.cli.options import config_from_args
from pyro_vae.inference.errors import UserError
from pyro_vae.inference.runs.paths import output_folder_problem


@dataclass
class TrainOptions:
    """``vae train``'s options beside the config (also those of ``vae config --dump``, which prints what train
    would use); all but ``force``, ``resume`` and ``quiet`` go in the 'run' section of a dumped config file."""

    out: str = option("runs/default", "run folder to write", check=output_folder_problem)
    force: bool = option(False, "overwrite a run already in --out")
    resume: Optional[str] = option(None, "continue RUN from its checkpoint exactly where it stopped (other options "
                                   "come from RUN)", metavar="RUN")
    checkpoint_every: int = option(200, "steps between checkpoints (0: epoch ends only)", minimum=0)
    quiet: bool = option(False, "no progress bar or per-epoch lines (train.log is kept; a note: line still shows)")
    tensorboard: Optional[bool] = option(None, "TensorBoard events in RUN/tensorboard (default: when tensorboard is "
                                         "installed)", paired=True)
    plots: bool = option(True, "curves, latent space, interpolations, neighbours (and manifold for 2-D codes) as "
                         "PNG", paired=True)
    nproc: int = option(1, "data-parallel processes on this machine (torchrun; gloo on CPU, NCCL on GPUs)", minimum=1)


RUN_OPTIONS = tuple(f.name for f in fields(TrainOptions) if f.name not in ("force", "resume", "quiet"))
RESUME_OPTIONS = ("resume", "quiet", "checkpoint_every", "tensorboard", "plots", "nproc")  # what --resume takes


def check_resume_options(given: set[str]) -> None:
    """Refuse the options ``vae train --resume RUN`` would not use (the run's ``config.json`` says the rest): given
    with it, they were dropped without a word (``--epochs 3`` trained the epochs RUN had)."""
    def flags(dests) -> str:
        return ", ".join("--" + dest.replace("_", "-") for dest in dests)

    dropped = sorted(given - {*RESUME_OPTIONS, "command", "handler"})
    if dropped:
        raise UserError(f"--resume continues RUN as its config.json says, so {flags(dropped)} cannot be given with it "
                        f"(it takes {flags(RESUME_OPTIONS[1:])}); to train longer, raise train.epochs in "
                        f"RUN/config.json")


@COMMANDS.register("train")
class TrainCommand(Command):
    help = "train a VAE by SVI into a run folder"
    run_config = True
    Options = TrainOptions

    def run(self, args) -> int:
        from pyro_vae.inference.cli.launch import launch, without_option
        from pyro_vae.inference import process_group
        from pyro_vae.inference.objectives import build_objective
        from pyro_vae.inference.config.sections import RunConfig
        from pyro_vae.inference.runs import layout
        from pyro_vae.inference.runs.build import resolve_device
        from pyro_vae.inference.runs.folder import resume_run, train_run
        from pyro_vae.inference.runs.writer import check_output_folder
        from pyro_vae.inference.training.parallel import check_objective

        if args.resume:
            check_resume_options(getattr(args, "given", set()))
        if args.nproc > 1 and not process_group.launched():  # check here, then start the job; each process trains
            if args.resume:
                device = RunConfig.load(Path(args.resume) / layout.CONFIG).train.device
            else:
                config = config_from_args(args)  # validated too
                check_objective(build_objective(config.objective))
                check_output_folder(Path(args.out), args.force)
                device = config.train.device
            process_group.check_processes(args.nproc, resolve_device(device))
            status = launch(args.nproc, without_option(args.argv, "--nproc"))
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
        if process_group.main_process():
            print(f"trained {last['epoch']} epochs into {out}: test ELBO {last['test_elbo']:.2f} nats "
                  f"(distortion {last['test_distortion']:.2f}, rate {last['test_rate']:.2f})")
        return 0


@COMMANDS.register("config")
class ConfigCommand(Command):
    help = "print the config 'vae train' would use with these options (--dump)"
    run_config = True

    @dataclass
    class Options(TrainOptions):
        dump: bool = option(False, "print the full resolved config")
        format: str = option("yaml", "yaml, toml or json", choices=("yaml", "toml", "json"))

    def run(self, args) -> int:
        from pyro_vae.inference.config.files import RUN_SECTION, dumps

        if not args.dump:
            raise UserError("say what to do: 'vae config --dump [options]' prints the resolved config")
        raw = config_from_args(args).to_dict()
        raw[RUN_SECTION] = {key: getattr(args, key) for key in RUN_OPTIONS}
        print(dumps(raw, args.format), end="")
        return 0
