"""The flags are made from the config fields: one place per option, every flag and command with a help line."""
import argparse
import subprocess
import sys
from dataclasses import fields

import pytest

from inference.cli.main import build_parser
from inference.cli.options import FLAG_FIELDS, config_from_args
from inference.config.sections import RunConfig
from inference.objectives import OBJECTIVES
from models import LIKELIHOODS, PRIORS
from guides import GUIDES

from .conftest import ROOT


def _subparsers():
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def test_every_config_field_has_exactly_one_flag():
    set_by_flags = sorted((s, f) for pairs in FLAG_FIELDS.values() for s, f in pairs)
    every_field = sorted((s, f.name) for s, cls in RunConfig.SECTIONS.items() for f in fields(cls))
    assert set_by_flags == every_field


def test_every_command_and_every_flag_has_a_help_line():
    sub = _subparsers()
    assert all(action.help for action in sub._choices_actions)
    for name, parser in sub.choices.items():
        for action in parser._actions:
            assert action.help, (name, action.option_strings or action.dest)


@pytest.mark.parametrize("flag, registry", [("--objective", OBJECTIVES), ("--likelihood", LIKELIHOODS),
                                            ("--prior", PRIORS), ("--guide", GUIDES)])
def test_the_help_of_a_component_flag_lists_every_registered_name(flag, registry):
    train = _subparsers().choices["train"]
    action = next(a for a in train._actions if flag in a.option_strings)
    assert all(name in action.help for name in registry.names())


def test_component_names_take_a_dash_or_an_underscore():
    parser = build_parser()
    argv = ["train", "--likelihood", "continuous-bernoulli", "--binarize", "none", "--guide", "full-covariance",
            "--objective", "mean-field", "--family", "denoising-vae"]
    args = parser.parse_args(argv)
    args.given = {"likelihood", "binarize", "guide", "objective"}
    config = config_from_args(args)
    assert (config.model.likelihood, config.guide.guide, config.objective.name) == \
        ("continuous_bernoulli", "full_covariance", "mean_field")
    assert config.guide.corruption == "mask"  # the denoising_vae preset


def test_the_command_line_imports_no_heavy_library_before_a_command_needs_it():
    """vae --help starts about as fast as importing torch and pyro: no torchvision, ArviZ, matplotlib, TensorBoard."""
    code = ("import sys; from inference.cli.main import build_parser; build_parser().format_help(); "
            "print(sorted(m for m in ('torchvision', 'arviz', 'matplotlib', 'tensorboard', 'torch._dynamo') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
