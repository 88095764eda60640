"""Public names are where a user looks for them, and the packages say their version."""
import tomllib

import pyro_vae.guides as guides
import pyro_vae.inference as inference
import pyro_vae.models as models

from .conftest import ROOT


def test_every_exported_name_resolves_and_every_registered_class_is_exported():
    for package in (models, guides, inference):
        assert all(getattr(package, name) is not None for name in package.__all__)
    exported = {getattr(models, n) for n in models.__all__} | {getattr(guides, n) for n in guides.__all__}
    for registry in (models.PRIORS, models.LIKELIHOODS, guides.GUIDES):
        own = [registry.get(n) for n in registry.names() if registry.get(n).__module__.startswith(("pyro_vae.models", "pyro_vae.guides"))]
        assert own and all(cls in exported for cls in own), registry.kind  # (tests register classes of their own)
    assert {"SVITrainer", "make_trainer", "train", "train_run", "evaluate_elbo", "importance_log_likelihood",
            "posterior_collapse", "ProgramLoss", "ENGINES"} <= set(inference.__all__)


def test_the_packages_report_the_projects_version():
    from importlib.metadata import version as installed

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert models.__version__ == installed("pyro-vae-toolkit") == version
    assert guides.__version__ is models.__version__ and inference.__version__ is models.__version__  # one copy


def test_a_removed_public_name_warns_and_names_its_replacement():
    import pytest
    import torch

    from pyro_vae.inference import RunConfig, setup

    run = setup(RunConfig.from_dict({"model": {"latent_dim": 2, "hidden_dim": 8}, "guide": {"hidden_dim": 8}}))
    with pytest.warns(DeprecationWarning, match="Run.load_params"):
        assert run.pending_params == {}
    with pytest.warns(DeprecationWarning, match="Run.load_params"), pytest.raises(Exception, match="does not read"):
        run.pending_params = {"nowhere": torch.tensor(1.0)}  # still does what it did: restores saved values
