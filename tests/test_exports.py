"""Public names are where a user looks for them, and the packages say their version."""
import tomllib

import pyro_vae.guides as guides
import pyro_vae.inference as inference
import pyro_vae.models as models

from tests.helpers import ROOT


def test_every_registered_class_is_exported():
    exported = {getattr(models, n) for n in models.__all__} | {getattr(guides, n) for n in guides.__all__}
    for registry in (models.PRIORS, models.LIKELIHOODS, guides.GUIDES):
        own = [registry.get(n) for n in registry.names()
               if registry.get(n).__module__.startswith(("pyro_vae.models", "pyro_vae.guides"))]
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


MOVED_IN_0_4 = [  # (module, name, where it lives now): each old name warns, naming the new place, and is the new thing
    ("pyro_vae.inference.runs.folder", "load_run", "pyro_vae.inference.runs.run"),
    ("pyro_vae.inference.runs.folder", "CONFIG", "pyro_vae.inference.runs.layout"),
    ("pyro_vae.inference.runs.folder", "read_metrics", "pyro_vae.inference.runs.layout"),
    ("pyro_vae.inference.runs.folder", "write_json", "pyro_vae.inference.runs.files"),
    ("pyro_vae.inference.runs.folder", "check_output_folder", "pyro_vae.inference.runs.writer"),
    ("pyro_vae.inference.training.checkpoint", "TrainingState", "pyro_vae.inference.training.state"),
    ("pyro_vae.inference.training.checkpoint", "CHECKPOINT", "pyro_vae.inference.runs.layout"),
    ("pyro_vae.inference.training.checkpoint", "save_checkpoint", "pyro_vae.inference.runs.writer"),
    ("pyro_vae.inference.runs.run", "save_weights", "pyro_vae.inference.runs.writer"),
    ("pyro_vae.inference.data.datasets", "load_dataset", "pyro_vae.inference.data.loaders"),
]


def test_names_moved_in_0_4_warn_and_still_are_what_they_were():
    import importlib

    import pytest

    for module, name, now in MOVED_IN_0_4:
        with pytest.warns(DeprecationWarning, match=now.replace(".", r"\.")):
            old = getattr(importlib.import_module(module), name)
        assert old is getattr(importlib.import_module(now), name), (module, name)


def test_train_into_a_folder_the_0_3_way_warns_and_writes_the_same_run_folder(tmp_path):
    import pytest

    from pyro_vae.inference import RunConfig, setup, train
    from pyro_vae.inference.runs.layout import read_metrics
    from pyro_vae.inference.runs.writer import RunFolder

    raw = {"model": {"latent_dim": 2, "hidden_dim": 8}, "guide": {"hidden_dim": 8},
           "train": {"epochs": 1, "batch_size": 500, "compile": "off"}}
    with pytest.warns(DeprecationWarning, match="RunFolder"):
        old = train(setup(RunConfig.from_dict(raw)), out=tmp_path / "old")
    new = train(setup(RunConfig.from_dict(raw)), monitors=[RunFolder(tmp_path / "new")])
    assert [m["test_elbo"] for m in old] == [m["test_elbo"] for m in new]  # the same run (seconds differ)
    assert [m["test_elbo"] for m in read_metrics(tmp_path / "old")] == [m["test_elbo"] for m in new]
