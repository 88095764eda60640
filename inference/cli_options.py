"""The options of the ``vae`` commands and how they resolve into a ``RunConfig``.

A value comes from, last one winning: the defaults, the ``--family`` preset, the ``--config`` file, the
flags given on the command line. ``FLAG_FIELDS`` says which config field each flag sets.
"""
from __future__ import annotations

import argparse
from typing import Sequence

from guides import GUIDES
from models import LIKELIHOODS, PRIORS

from .config import BINARIZATIONS, DATASETS, DEVICES, FAMILIES, RunConfig, apply_family
from .config_files import RUN_SECTION, merge, read_config_file
from .errors import UserError


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage is in ``--help``)."""

    def error(self, message: str):
        raise UserError(f"{message} (see '{self.prog} --help')")


def add_train_options(p: argparse.ArgumentParser) -> None:
    """``vae train``'s flags (also those of ``vae config --dump``, which prints what train would use)."""
    add_run_options(p)
    p.add_argument("--out", default="runs/default", help="run folder to write (default: runs/default)")
    p.add_argument("--force", action="store_true", help="overwrite a run already in --out")
    p.add_argument("--resume", metavar="RUN", default=None,
                   help="continue RUN from its checkpoint exactly where it stopped (other options come from RUN)")
    p.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints (0: epoch ends only)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines (train.log is kept)")
    p.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=None,
                   help="TensorBoard events in RUN/tensorboard (default: when tensorboard is installed)")
    p.add_argument("--plots", action=argparse.BooleanOptionalAction, default=True,
                   help="curves, latent space, interpolations, neighbours (and manifold for 2-D codes) as PNG")
    p.add_argument("--nproc", type=int, default=1,
                   help="data-parallel processes on this machine (torchrun; gloo on CPU, NCCL on GPUs)")


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The flags of a RunConfig (data, model, guide, objective, training), shared by train and rd-sweep."""
    defaults = RunConfig()
    p.add_argument("--config", metavar="FILE", default=None,
                   help="YAML, TOML or JSON file of config sections (and a 'run' section of other options); "
                        "flags given here override it")
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


FLAG_FIELDS = {  # flag dest -> the (section, key) fields it sets
    "dataset": [("data", "dataset")], "data_dir": [("data", "data_dir")], "binarize": [("data", "binarize")],
    "latent_dim": [("model", "latent_dim")], "hidden_dim": [("model", "hidden_dim"), ("guide", "hidden_dim")],
    "activation": [("model", "activation"), ("guide", "activation")], "arch": [("model", "arch"), ("guide", "arch")],
    "channels": [("model", "channels"), ("guide", "channels")], "upsample": [("model", "upsample")],
    "num_hidden_layers": [("model", "num_hidden_layers"), ("guide", "num_hidden_layers")],
    "likelihood": [("model", "likelihood")], "likelihood_scale": [("model", "likelihood_scale")],
    "prior": [("model", "prior")], "prior_components": [("model", "prior_components")],
    "prior_flows": [("model", "prior_flows")], "conditional": [("model", "conditional")],
    "guide": [("guide", "guide")], "guide_flows": [("guide", "flows")], "min_scale": [("guide", "min_scale")],
    "corruption": [("guide", "corruption")], "corruption_level": [("guide", "corruption_level")],
    "objective": [("objective", "name")], "num_particles": [("objective", "num_particles")],
    "beta": [("objective", "beta")], "sampled_kl": [("objective", "analytic_kl")],
    "free_bits": [("objective", "free_bits")], "kl_schedule": [("objective", "kl_schedule")],
    "warmup_steps": [("objective", "warmup_steps")], "dreg": [("objective", "dreg")],
    "contractive_weight": [("objective", "contractive_weight")],
    "adversarial_lr": [("objective", "adversarial_lr")], "discriminator_steps": [("objective", "discriminator_steps")],
    "epochs": [("train", "epochs")], "batch_size": [("train", "batch_size")], "lr": [("train", "lr")],
    "seed": [("train", "seed")], "device": [("train", "device")], "clip_norm": [("train", "clip_norm")],
    "compile": [("train", "compile")], "data_placement": [("train", "data_placement")],
}
NEGATED = {"sampled_kl"}  # --sampled-kl sets analytic_kl = False


def given_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The dests of the flags actually written in ``argv`` (not filled in from defaults)."""
    for action in _all_actions(parser):
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def _all_actions(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if action.dest != "help":
            yield action
        for sub in (action.choices or {}).values() if isinstance(action, argparse._SubParsersAction) else ():
            yield from _all_actions(sub)


def apply_config_file(args: argparse.Namespace, given: set[str]) -> None:
    """Read ``--config``: keep its config sections in ``args.file_config``; its ``run`` section sets the
    command's other options that the command line did not give."""
    args.file_config, args.given = {}, given
    if not getattr(args, "config", None):
        return
    raw = read_config_file(args.config)
    for key, value in raw.pop(RUN_SECTION, {}).items():
        if key in FLAG_FIELDS or not hasattr(args, key) or key in ("command", "config"):
            raise UserError(f"config file {args.config}: run.{key} is not an option of 'vae {args.command}' "
                            f"(config fields go in their sections)")
        if key not in given:
            setattr(args, key, value)
    args.file_config = raw


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Defaults, then the family preset, then the config file, then the flags given."""
    flags: dict = {}
    for dest in FLAG_FIELDS:
        if dest in getattr(args, "given", FLAG_FIELDS):
            value = getattr(args, dest)
            for section, key in FLAG_FIELDS[dest]:
                flags.setdefault(section, {})[key] = (not value) if dest in NEGATED else value
    raw = merge(merge(apply_family({}, args.family), getattr(args, "file_config", {})), flags)
    return RunConfig.from_dict(raw)
