"""RunConfig: JSON round trip and validation before anything is built (the bad settings themselves are rows of
the table of refusals, tests/inference/cli/test_bad_input.py); a property-based test of the validation."""
import json

from hypothesis import given, settings, strategies as st

from pyro_vae.inference import RunConfig, UserError


def test_round_trip_through_json():
    cfg = RunConfig()
    cfg.model.latent_dim, cfg.train.lr, cfg.data.binarize = 7, 3e-4, "static"
    again = RunConfig.from_dict(json.loads(cfg.to_json()))
    assert again == cfg and again.model.latent_dim == 7


def test_integer_learning_rate_is_accepted_as_float():
    lr = RunConfig.from_dict({"train": {"lr": 1}}).train.lr
    assert type(lr) is float and lr == 1.0  # (1 == 1.0 alone would hold for the int too)


def test_each_objective_declares_its_knobs_once_and_the_run_config_and_flags_follow():
    """An objective's knob lives in its own Config (type, default, help): ObjectiveConfig, the config key and
    the flag's help line are made from it, so nothing else names it."""
    import dataclasses

    from pyro_vae.inference.cli.main import build_parser
    from pyro_vae.inference.config.sections import ObjectiveConfig
    from pyro_vae.inference.objectives import OBJECTIVES

    made = ObjectiveConfig.options()  # the section's own field (name) and its components' options
    train_help = " ".join(build_parser()._subparsers._group_actions[0].choices["train"].format_help().split())
    declared = set()
    for name in OBJECTIVES.names():
        for knob in dataclasses.fields(OBJECTIVES.get(name).Config):
            declared.add(knob.name)
            assert " ".join(knob.metadata["help"].split()) in train_help, knob.name
    assert set(made) == declared | {"name"}
    assert RunConfig.from_dict({"objective": {"name": "iwae", "dreg": True, "num_particles": 5}}).objective.dreg


# ---- property-based ----

VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 500), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(max_size=8), st.sampled_from(["bernoulli", "vamp", "iwae", "beta", "none", "conv"]))
FIELDS = {section: list(cls().to_dict()) for section, cls in RunConfig.SECTIONS.items()}


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(list(FIELDS)),
                       st.dictionaries(st.sampled_from(sorted({f for fs in FIELDS.values() for f in fs} | {"junk"})),
                                       VALUES, max_size=4), max_size=4))
def test_config_validation_either_accepts_and_round_trips_or_refuses_clearly(raw):
    try:
        cfg = RunConfig.from_dict(raw)
    except UserError as err:
        assert str(err) and "\n" not in str(err)
        return
    assert RunConfig.from_dict(json.loads(cfg.to_json())) == cfg
