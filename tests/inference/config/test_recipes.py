"""Recipes: each paper's settings load, validate and train on the embedded digits; flags override them."""
import json
import math

import pytest

from pyro_vae.inference import RunConfig, setup, train
from pyro_vae.inference.cli.main import main
from pyro_vae.inference.config.files import merge
from pyro_vae.inference.config.recipes import read_recipe, recipe_names, recipe_summary
from pyro_vae.inference.evaluate.marginal_likelihood import importance_log_likelihood

from tests.helpers import refuse

PAPERS = {"kingma-welling-2013": "Kingma & Welling 2013", "burda-2015-vae": "Burda", "burda-2015-iwae": "Burda",
          "burda-2015-vae-2layer": "Burda", "burda-2015-iwae-2layer": "Burda",
          "tomczak-welling-2018-vampprior": "Tomczak & Welling 2018", "tomczak-welling-2018-normal": "Tomczak & Welling 2018",
          "kingma-2016-iaf": "Kingma et al. 2016",
          "toolkit-best": "toolkit", "vae-default": "toolkit's default"}


def test_every_paper_the_issue_names_has_a_recipe_that_says_so():
    assert set(recipe_names()) == set(PAPERS)
    for name, paper in PAPERS.items():
        assert paper in recipe_summary(name), name


def _log_px(run) -> float:
    """Importance-sampled test log p(x), k = 50 on 200 points: the yardstick of every recipe (an IWAE's guide
    can score a poor one-sample ELBO while its model and bound improve: Rainforth et al. 2018)."""
    with run.params():
        return importance_log_likelihood(run.model, run.guide, run.data.test_x[:200], 50).log_likelihood


@pytest.mark.slow  # ten training runs, one per recipe: make test, not make test-fast
@pytest.mark.parametrize("name", sorted(PAPERS))
def test_each_recipe_validates_and_one_epoch_raises_its_test_log_likelihood(name):
    """One epoch of the embedded digits, in batches of 500 (the recipe's own batch size is a few times slower)."""
    cfg = RunConfig.from_dict(merge(read_recipe(name), {"train": {"epochs": 1, "compile": "off",
                                                                  "batch_size": 500}})).validate()
    run = setup(cfg)
    before = _log_px(run)
    metrics = train(run)
    after = _log_px(run)
    assert math.isfinite(metrics[-1]["train_objective"]) and after > before + 20, (before, after)


def test_the_recipe_then_the_flags(capsys):
    assert main(["config", "--dump", "--recipe", "burda-2015-iwae-2layer", "--num-particles", "5",
                 "--format", "json"]) == 0
    raw = json.loads(capsys.readouterr().out)
    assert raw["model"]["hierarchy"] == [100] and raw["model"]["latent_dim"] == 50
    assert raw["objective"] == {**raw["objective"], "name": "iwae", "num_particles": 5}  # the flag wins
    assert "unknown recipe 'burda'; choose one of: burda-2015-iwae," in refuse(capsys, ["config", "--dump",
                                                                                      "--recipe", "burda"])
