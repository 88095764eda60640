"""A command's options are of their declared type wherever they come from (a config file's run section is not
parsed by the flags): a string where a boolean belongs, an empty path, a limit of 0 are refused in one line, and
nothing on disk changes."""
from typing import Optional

import pytest

from pyro_vae.inference.cli.options import type_problem

from tests.helpers import refuse


@pytest.mark.parametrize("kind, value, problem", [
    (bool, "no", "must be true or false"), (bool, 1, "must be true or false"), (bool, False, None),
    (int, True, "must be a whole number"), (int, 2.5, "must be a whole number"), (int, 3, None),
    (float, 2, None), (float, "2", "must be a number"), (Optional[int], None, None),
    (Optional[str], "", "must not be empty"), (str, "runs/a", None), (Optional[list[int]], [2, 3], None)])
def test_a_value_of_another_type_is_named(kind, value, problem):
    assert type_problem(kind, value) == problem


def test_force_no_in_a_config_file_does_not_overwrite_a_run(capsys, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text('{"kept": true}')
    config = tmp_path / "c.yaml"
    config.write_text(f'run:\n  force: "no"\n  out: {out}\n')
    err = refuse(capsys, ["train", "--config", config, "--epochs", "1"])
    assert "--force must be true or false, got 'no' (from the config file's run section" in err
    assert (out / "config.json").read_text() == '{"kept": true}' and sorted(p.name for p in out.iterdir()) == \
        ["config.json"]


def test_an_empty_output_path_and_a_limit_below_one_are_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "--out must not be empty, got ''" in refuse(capsys, ["train", "--out", "", "--epochs", "1"])
    assert list(tmp_path.iterdir()) == []  # nothing written into the current folder
    for limit in ("0", "-1"):
        assert f"--limit must be positive, got {limit}" in refuse(capsys, ["evaluate", tmp_path, "--limit", limit])
