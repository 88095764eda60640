"""Public names are where a user looks for them, and the packages say their version."""
import tomllib

import guides
import inference
import models

from .conftest import ROOT


def test_every_exported_name_resolves_and_every_registered_class_is_exported():
    for package in (models, guides, inference):
        assert all(getattr(package, name) is not None for name in package.__all__)
    exported = {getattr(models, n) for n in models.__all__} | {getattr(guides, n) for n in guides.__all__}
    for registry in (models.PRIORS, models.LIKELIHOODS, guides.GUIDES):
        own = [registry.get(n) for n in registry.names() if registry.get(n).__module__.startswith(("models", "guides"))]
        assert own and all(cls in exported for cls in own), registry.kind  # (tests register classes of their own)
    assert {"SVITrainer", "make_trainer", "train", "train_run", "evaluate_elbo", "importance_log_likelihood",
            "posterior_collapse", "ProgramLoss", "ENGINES"} <= set(inference.__all__)


def test_the_packages_report_the_projects_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert models.__version__ == guides.__version__ == inference.__version__ == version
