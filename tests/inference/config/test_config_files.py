"""Config files: a dumped config reads back; flags given override the file, the file the defaults and the family;
bad files are refused in one line; TOML leaves out nulls."""
import pytest
import yaml

from pyro_vae.inference import RunConfig
from pyro_vae.inference.config.files import dumps, load_run_config

from tests.helpers import vae_main


def _dump(capsys, *args) -> dict:
    status, out, err = vae_main(capsys, "config", "--dump", *args)
    assert status == 0, err
    return yaml.safe_load(out)


@pytest.mark.parametrize("fmt", ["yaml", "toml", "json"])
def test_a_dumped_config_reads_back_to_the_same_config(capsys, tmp_path, fmt):
    status, text, err = vae_main(capsys, "config", "--dump", "--format", fmt, "--latent-dim", "3", "--prior", "mog",
                                 "--epochs", "4")
    assert status == 0, err
    path = tmp_path / f"run.{fmt}"
    path.write_text(text)
    assert vae_main(capsys, "config", "--dump", "--format", fmt, "--config", path)[1] == text
    config = load_run_config(path)
    assert (config.model.latent_dim, config.model.prior, config.train.epochs, config.train.clip_norm) == (3, "mog", 4,
                                                                                                        None)


def test_flags_given_override_the_file_and_the_file_overrides_defaults_and_family(capsys, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: {latent_dim: 7, prior: laplace}\ntrain: {epochs: 3, lr: 0.01}\n"
                    "run: {family: sparse, checkpoint_every: 17}\n")
    resolved = _dump(capsys, "--config", path, "--epochs", "10")  # 10 is also the default: given, so it wins
    assert resolved["model"]["latent_dim"] == 7 and resolved["train"]["lr"] == 0.01
    assert resolved["train"]["epochs"] == 10
    assert resolved["guide"]["guide"] == "delta"  # from the sparse family named in the file's run section
    assert resolved["run"]["checkpoint_every"] == 17
    assert _dump(capsys, "--config", path, "--checkpoint-every", "5")["run"]["checkpoint_every"] == 5
    assert _dump(capsys, "--family", "plain")["model"]["prior"] == "flat"
    assert _dump(capsys, "--family", "plain", "--prior", "laplace")["model"]["prior"] == "laplace"  # a flag beats the preset


@pytest.mark.parametrize("name, text, message", [
    ("bad.yaml", "model: {latent_dim: [", "is not valid YAML"),
    ("bad.toml", "[model\nlatent_dim = 2", "is not valid TOML"),
    ("bad.ini", "[model]", "neither YAML, TOML nor JSON"),
    ("section.yaml", "modle: {latent_dim: 2}", "unknown section 'modle'"),
    ("key.yaml", "model: {latent_dims: 2}", "model has unknown key 'latent_dims'"),
    ("type.yaml", "train: {epochs: many}", "train.epochs must be int"),
    ("run.yaml", "run: {latent_dim: 2}", "run.latent_dim is not an option of 'vae train'"),
    ("flat.yaml", "epochs: 3", "must map section names"),
    ("deep.json", "[" * 100_000 + "]" * 100_000, "nests more than 32 levels deep"),  # json.loads: RecursionError
    ("deep.yaml", "train:\n" + "".join(" " * (i + 2) + f"k{i}:\n" for i in range(40)), "nests more than 32 levels"),
    ("cycle.yaml", "run: &a {x: *a}", "nests more than 32 levels deep"),  # an object inside itself: walked for ever
    ("laughs.yaml", "train:\n  a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"  {c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefghi", "bcdefghij")),
     "repeats a list or table through a YAML alias"),  # 9**10 items if printed
    ("digits.json", '{"train": {"seed": ' + "9" * 5000 + "}}", "Exceeds the limit (4300 digits)"),
    ("twice.yaml", "train:\n  epochs: 1\n  epochs: 2\n", "key 'epochs' is written twice (line 3)"),  # (PyYAML: last)
    ("twice.json", '{"train": {"epochs": 1, "epochs": 2}}', "key 'epochs' is written twice"),  # (json: the last)
    ("twice-section.yaml", "train: {epochs: 1}\ntrain: {seed: 2}\n", "key 'train' is written twice"),
    ("exponent.yaml", "train: {lr: 1e-3}", "train.lr must be float, got '1e-3' (YAML 1.1 reads 1e-3 as text: an "
                                           "exponent needs a dot and a sign, 1.0e-3; write 0.001)"),
    ("exponent-dot.yaml", "train: {epochs: 1.0e2}", "train.epochs must be int, got '1.0e2' (YAML 1.1 reads 1.0e2 as "
                                                    "text: an exponent needs a dot and a sign, 1.0e-3; write 100)"),
])
def test_bad_config_files_are_refused_in_one_line_and_nothing_is_written(capsys, tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    status, _, err = vae_main(capsys, "train", "--config", path, "--out", tmp_path / "out")
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
    status, _, err = vae_main(capsys, "train", "--config", tmp_path / "none.yaml", "--out", tmp_path / "out")
    assert status == 2 and "no config file at" in err


def test_toml_leaves_out_null_values_and_reads_them_back_as_defaults():
    raw = RunConfig().validate().to_dict()  # validated: binarize 'auto' resolved, as a run folder records it
    text = dumps(raw, "toml")
    assert "clip_norm" not in text and "data_dir" not in text
    import tomllib

    assert RunConfig.from_dict(tomllib.loads(text)).to_dict() == raw
