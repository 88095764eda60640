"""The flags are made from the config fields: one place per option, every flag and command with a help line."""
import argparse
import typing
from dataclasses import fields
from typing import Optional

import pytest

from pyro_vae.inference.cli.main import build_parser
from pyro_vae.inference.cli.options import config_from_args, flag_values
from pyro_vae.inference.config.sections import RunConfig, choice_names
from pyro_vae.inference.objectives import OBJECTIVES
from pyro_vae.models import LIKELIHOODS, PRIORS
from pyro_vae.guides import GUIDES


def _subparsers():
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _other_value(f, kind):
    """A command-line word for field ``f`` that differs from its default, and the value the field should get."""
    if kind is bool:
        return None, not f.default
    choices = f.metadata.get("choices")
    if choices is not None:
        name = [n for n in choice_names(choices) if n != f.default][-1]
        return name, name
    if kind is str or kind == Optional[str]:
        return "/some/where", "/some/where"
    if kind == Optional[list[int]]:  # --image-size H W
        return ["12", "20"], [12, 20]
    base = float if kind in (float, Optional[float]) else int
    value = base((f.default or 1) * 3 + 2)
    return str(value), value


def test_every_config_field_is_set_by_its_flag_through_the_real_parser():
    """Each field's flag, given a value other than its default on the command line, lands in that field (shared
    flags in every field they name; --sampled-kl as analytic_kl = False), converted to the field's type."""
    argv, expected = ["train"], {}
    for section, cls in RunConfig.SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            flag = f.metadata.get("negated") or f.metadata.get("flag") or "--" + f.name.replace("_", "-")
            word, value = _other_value(f, hints[f.name])
            if flag not in argv:
                argv += [flag] if word is None else [flag, *word] if isinstance(word, list) else [flag, word]
            expected.setdefault(section, {})[f.name] = value
    args = build_parser().parse_args(argv)
    args.given = {a.lstrip("-").replace("-", "_") for a in argv[1:] if a.startswith("--")}
    got = flag_values(args)
    for section, values in expected.items():
        for name, value in values.items():
            assert got[section][name] == value and type(got[section][name]) is type(value), (section, name)


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


def test_a_parser_built_by_hand_gives_the_default_config_when_no_flag_is_given():
    """A negated flag (``--sampled-kl``, ``--no-cuda-graph``) that is not given sets nothing, also when the
    parse did not record which flags were given (a user's own ``build_parser().parse_args``)."""
    from pyro_vae.inference import RunConfig
    from pyro_vae.inference.cli.main import build_parser
    from pyro_vae.inference.cli.options import config_from_args

    args = build_parser().parse_args(["train"])
    assert args.sampled_kl is False and args.no_cuda_graph is False
    assert config_from_args(args) == RunConfig().validate()
    sampled = config_from_args(build_parser().parse_args(["train", "--objective", "beta", "--sampled-kl"]))
    assert sampled.objective.analytic_kl is False and sampled.train.cuda_graph is True
