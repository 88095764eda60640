"""Recipes: named, documented settings for the classic papers' models, one YAML config file each in
``inference/config/recipes/`` (its comment says which paper and what differs from it).

``vae train --recipe burda-2015-iwae-2layer`` starts from one: defaults, then the ``--family`` preset, then
the recipe, then ``--config``, then the flags given. ``vae config --dump --recipe NAME`` prints it resolved;
``bench/leaderboard.py`` trains and scores each of them alike.
"""
from __future__ import annotations

from pathlib import Path

from pyro_vae.inference.config.files import RUN_SECTION, read_config_file
from pyro_vae.inference.errors import UserError

RECIPES_DIR = Path(__file__).parent / "recipes"


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def recipe_path(name: str) -> Path:
    path = RECIPES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"unknown recipe {name!r}; choose one of: {', '.join(recipe_names())}")
    return path


def read_recipe(name: str) -> dict:
    """The recipe's config sections (unvalidated, as a config file's)."""
    raw = read_config_file(recipe_path(name))
    if RUN_SECTION in raw:
        raise UserError(f"recipe {name!r} has a '{RUN_SECTION}' section; recipes hold config sections only")
    return raw


def recipe_summary(name: str) -> str:
    """The first line of the recipe's comment: the paper and the model."""
    first = recipe_path(name).read_text().splitlines()[0]
    return first.lstrip("# ").strip()
