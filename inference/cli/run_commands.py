"""vae train and vae config: train a run folder (one process or a torchrun job), print the resolved config."""
from __future__ import annotations

import sys
from pathlib import Path

from pyro_vae.inference.cli.options import add_train_options, config_from_args
from pyro_vae.inference.errors import UserError

# vae train's options beside the config, in the 'run' section of a dumped config file
RUN_OPTIONS = ("out", "checkpoint_every", "nproc", "tensorboard", "plots")

def cmd_train(args) -> int:
    from pyro_vae.inference.cli.launch import launch, without_option
    from pyro_vae.inference.training import parallel as distributed
    from pyro_vae.inference.objectives import build_objective
    from pyro_vae.inference.runs.folder import check_output_folder, resume_run, train_run

    if args.checkpoint_every < 0:
        raise UserError(f"--checkpoint-every must be >= 0, got {args.checkpoint_every}")
    if args.nproc < 1:
        raise UserError(f"--nproc must be >= 1, got {args.nproc}")
    if args.nproc > 1 and not distributed.launched():  # check here, then start the job; each process trains
        if not args.resume:
            distributed.check_objective(build_objective(config_from_args(args).objective))  # validated too
            check_output_folder(Path(args.out), args.force)
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
    if distributed.main_process():
        print(f"trained {last['epoch']} epochs into {out}: test ELBO {last['test_elbo']:.2f} nats "
              f"(distortion {last['test_distortion']:.2f}, rate {last['test_rate']:.2f})")
    return 0


def cmd_config(args) -> int:
    from pyro_vae.inference.config.files import RUN_SECTION, dumps

    if not args.dump:
        raise UserError("say what to do: 'vae config --dump [options]' prints the resolved config")
    raw = config_from_args(args).to_dict()
    raw[RUN_SECTION] = {key: getattr(args, key) for key in RUN_OPTIONS}
    print(dumps(raw, args.format), end="")
    return 0


def add_commands(sub) -> None:
    """This group's subcommands, each with its handler."""
    p = sub.add_parser("train", help="train a VAE by SVI into a run folder")
    add_train_options(p)
    p.set_defaults(handler=cmd_train)
    p = sub.add_parser("config", help="print the config 'vae train' would use with these options (--dump)")
    add_train_options(p)
    p.add_argument("--dump", action="store_true", help="print the full resolved config")
    p.add_argument("--format", default="yaml", help="yaml, toml or json [default: yaml]")
    p.set_defaults(handler=cmd_config)
