"""RunConfig: JSON round trip and validation before anything is built."""
import json

import pytest

from pyro_vae.inference import RunConfig, UserError


def test_round_trip_through_json():
    cfg = RunConfig()
    cfg.model.latent_dim, cfg.train.lr, cfg.data.binarize = 7, 3e-4, "static"
    again = RunConfig.from_dict(json.loads(cfg.to_json()))
    assert again == cfg and again.model.latent_dim == 7


@pytest.mark.parametrize("raw, message", [
    ({"model": {"latent_dim": 0}}, "model.latent_dim must be positive"),
    ({"model": {"latent_dim": "20"}}, "model.latent_dim must be int"),
    ({"model": {"latent_dim": True}}, "model.latent_dim must be int"),
    ({"model": {"likelihood": "cauchy"}}, "unknown likelihood 'cauchy'"),
    ({"guide": {"guide": "flow"}}, "unknown guide 'flow'"),
    ({"train": {"lr": -1.0}}, "train.lr must be positive"),
    ({"train": {"epochs": 2, "momentum": 0.9}}, "unknown key 'momentum'"),
    ({"optimizer": {}}, "unknown section 'optimizer'"),
    ({"data": {"dataset": "cifar"}}, "unknown dataset 'cifar'"),
    ({"data": {"dataset": "idx"}}, "needs --data-dir"),
    ([1, 2], "must be a JSON object"),
    ({"objective": {"name": "elbo", "beta": 4.0}}, "objective.beta does not apply to objective 'elbo'"),
    ({"objective": {"name": "elbo", "dreg": True}}, "objective.dreg does not apply to objective 'elbo'"),
    ({"objective": {"name": "iwae", "num_particles": 0}}, "objective.num_particles must be positive"),
    ({"objective": {"name": "beta", "kl_schedule": "cosine"}}, "unknown KL schedule"),
    ({"objective": {"name": "renyi"}}, "unknown objective 'renyi'"),
    ({"model": {"activation": "gelu"}}, "unknown activation 'gelu'"),
    ({"data": {"binarize": "none"}}, "models binary pixels but --binarize is 'none'"),
    ({"model": {"likelihood": "discretized_logistic"}, "data": {"binarize": "static"}},
     "models 8-bit grey levels .*; use --binarize none"),
    ({"model": {"likelihood": "laplace", "likelihood_scale": 0.0}}, "likelihood_scale must be positive"),
])
def test_bad_configs_are_refused_with_a_message_naming_the_problem(raw, message):
    with pytest.raises(UserError, match=message):
        RunConfig.from_dict(raw)


def test_integer_learning_rate_is_accepted_as_float():
    assert RunConfig.from_dict({"train": {"lr": 1}}).train.lr == 1.0


def test_each_objective_declares_its_knobs_once_and_the_run_config_and_flags_follow():
    """An objective's knob lives in its own Config (type, default, help): ObjectiveConfig, the config key and
    the flag's help line are made from it, so nothing else names it."""
    import dataclasses

    from pyro_vae.inference.cli.main import build_parser
    from pyro_vae.inference.config.sections import ObjectiveConfig
    from pyro_vae.inference.objectives import OBJECTIVES

    made = {f.name: f for f in dataclasses.fields(ObjectiveConfig)}
    train_help = " ".join(build_parser()._subparsers._group_actions[0].choices["train"].format_help().split())
    declared = set()
    for name in OBJECTIVES.names():
        for knob in dataclasses.fields(OBJECTIVES.get(name).Config):
            declared.add(knob.name)
            assert made[knob.name].default == knob.default and made[knob.name].metadata == knob.metadata
            assert " ".join(knob.metadata["help"].split()) in train_help, knob.name
    assert set(made) == declared | {"name"}
    assert RunConfig.from_dict({"objective": {"name": "iwae", "dreg": True, "num_particles": 5}}).objective.dreg
