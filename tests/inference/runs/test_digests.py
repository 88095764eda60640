"""weights.pt and checkpoint.pt prove themselves: a flipped bit, a config.json edited after training, another run's
checkpoint, counters that cannot belong to the run, NaN weights, an entry the files never hold: each ends
``vae evaluate``/``sample``/``compress``/``train --resume`` with exit status 2 and one line naming the file, and
leaves the folder byte for byte as it was. Files of earlier releases (no digest, no config) load as before."""
import json
import shutil

import pytest
import torch

from pyro_vae.inference.cli.main import main
from pyro_vae.inference.runs.files import load_state, save_state

from tests.helpers import DATA, refuse

TRAIN = ["train", "--epochs", "1", "--latent-dim", "3", "--hidden-dim", "32", "--batch-size", "512", "--quiet",
         "--no-plots", "--no-tensorboard"]
NUM_DATA, BATCHES = 4500, 9  # mnist-embedded's training points (its test set: 500); batches of 512 an epoch


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-epoch run, and another one like it but for its seed."""
    root = tmp_path_factory.mktemp("digests")
    assert main([*TRAIN, "--out", str(root / "run")]) == 0
    assert main([*TRAIN, "--seed", "1", "--out", str(root / "other")]) == 0
    return root


@pytest.fixture
def run(trained, tmp_path):
    shutil.copytree(trained / "run", tmp_path / "run")
    return tmp_path / "run"


def files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def flip_a_bit_of_a_tensor(path, part="model"):
    """Flip one bit in the middle of the bytes of the largest tensor of ``path[part]``, found in the file by its
    bytes (torch.load still reads the file: the zip format checks nothing)."""
    state = torch.load(path, weights_only=True)
    tensor = max(state[part].values(), key=lambda t: t.numel())
    stored = tensor.numpy().tobytes()
    data = bytearray(path.read_bytes())
    at = data.find(stored)
    assert at >= 0 and data.find(stored, at + 1) < 0
    data[at + len(stored) // 2] ^= 0x08
    path.write_bytes(bytes(data))
    damaged = torch.load(path, weights_only=True)  # loads without a word by itself
    assert not all(torch.equal(damaged[part][k], state[part][k]) for k in state[part])


def commands(run, tmp_path):
    return {"evaluate": ["evaluate", run], "sample": ["sample", run, "-n", "4", "--out", tmp_path / "s.png"],
            "compress": ["compress", run, "--lossless", "--test-images", "2", "-o", tmp_path / "c.bin"]}


def rewrite(path, change):
    """``path`` (weights or checkpoint) changed by ``change(state)`` and saved again, with a valid digest."""
    state = load_state(path)
    change(state)
    save_state(path, state)


def test_a_flipped_bit_in_the_weights_is_named_by_every_command(run, tmp_path, capsys):
    flip_a_bit_of_a_tensor(run / "weights.pt")
    before = files(run)
    for argv in commands(run, tmp_path).values():
        err = refuse(capsys, argv)
        assert f"{run / 'weights.pt'} is damaged (its content does not match the digest" in err
    assert files(run) == before and not (tmp_path / "s.png").exists() and not (tmp_path / "c.bin").exists()


def test_a_flipped_bit_in_the_checkpoint_stops_resume(run, capsys):
    flip_a_bit_of_a_tensor(run / "checkpoint.pt", "guide")
    config = json.loads((run / "config.json").read_text())
    config["train"]["epochs"] = 2  # a run to extend: the checkpoint is read
    (run / "config.json").write_text(json.dumps(config))
    before = files(run)
    err = refuse(capsys, ["train", "--resume", run])
    assert f"{run / 'checkpoint.pt'} is damaged" in err and "retrain or restore it" in err
    assert files(run) == before


@pytest.mark.parametrize("section, key, value, shown", [("guide", "min_scale", 2e-05, "guide.min_scale"),
                                                        ("train", "seed", 1, "train.seed")])
def test_a_config_edited_after_training_is_refused(run, capsys, section, key, value, shown):
    config = json.loads((run / "config.json").read_text())
    was = config[section][key]
    config[section][key] = value
    (run / "config.json").write_text(json.dumps(config, indent=2))
    before = files(run)
    err = refuse(capsys, ["evaluate", run])
    assert f"not the config weights.pt was written under ({shown} is {json.dumps(value)}, was {json.dumps(was)})" \
        in err
    config["train"]["epochs"] = 2
    (run / "config.json").write_text(json.dumps(config, indent=2))
    err = refuse(capsys, ["train", "--resume", run])
    assert f"not the config checkpoint.pt was written under ({shown} is" in err
    assert files(run) == {**before, "config.json": (run / "config.json").read_bytes()}


def test_more_epochs_and_a_reformatted_config_are_not_edits_that_matter(run, capsys):
    """Extending a run (its documented way) resumes and the extended run loads; the digest is of the JSON's
    content, not its layout."""
    config = json.loads((run / "config.json").read_text())
    config["train"]["epochs"] = 2
    (run / "config.json").write_text(json.dumps(config))  # one line, unsorted
    assert main(["train", "--resume", str(run), "--quiet", "--no-plots", "--no-tensorboard"]) == 0
    assert [m["epoch"] for m in torch.load(run / "checkpoint.pt", weights_only=True)["metrics"]] == [1, 2]
    assert main(["evaluate", str(run)]) == 0
    capsys.readouterr()


def test_another_runs_checkpoint_is_refused(trained, run, capsys):
    """The other run's networks fit this one's: only what the checkpoint records of its run tells them apart."""
    shutil.copy(trained / "other" / "checkpoint.pt", run / "checkpoint.pt")
    before = files(run)
    err = refuse(capsys, ["train", "--resume", run])
    assert "not the config checkpoint.pt was written under (train.seed is 0, was 1)" in err
    assert files(run) == before


def _mid_epoch(state, steps_per_epoch, step, num_data):
    """``state`` (at the end of epoch 1) as if ``step`` steps of epoch 2 were taken."""
    state.update(perm=torch.randperm(num_data), step_in_epoch=step, steps=steps_per_epoch + step,
                 epoch_values=[-500.0] * step)


COUNTER_CASES = {
    "negative epoch": (lambda s: s.update(epoch=-1, metrics=[]), "its epoch -1 is outside 0..2"),
    "epoch past the config": (lambda s: s.update(epoch=3), "its epoch 3 is outside 0..2"),
    "steps off by one": (lambda s: s.update(steps=s["steps"] + 1), "its step count 10 is not that of epoch 1, step 0"),
    "another batch size, mid-epoch": (lambda s: _mid_epoch(s, 18, 3, NUM_DATA),  # written under batch size 256
                                      "its step count 21 is not that of epoch 1, step 3 with 9 batches"),
    "another batch size recorded": (lambda s: s.update(batch_size=100), "written under batch size 100, the run's "
                                                                        "config says 512"),
    "a step past the epoch": (lambda s: _mid_epoch(s, 9, 10, NUM_DATA), "its step 10 is outside an epoch of 9"),
    "a position without an order": (lambda s: s.update(step_in_epoch=2, steps=11, epoch_values=[0.0, 0.0]),
                                    "at epoch 1, step 2 without the epoch's data order"),
    "an order of other data": (lambda s: _mid_epoch(s, 9, 3, NUM_DATA - 1), "not an order of the 4500"),
    "an order that repeats a point": (lambda s: (_mid_epoch(s, 9, 3, NUM_DATA), s["perm"].__setitem__(0, s["perm"][1])),
                                      "not an order of the 4500"),
    "per-step values missing": (lambda s: (_mid_epoch(s, 9, 3, NUM_DATA), s.update(epoch_values=[1.0])),
                                "it holds 1 per-step values at epoch 1, step 3"),
    "a metrics row missing": (lambda s: s.update(metrics=[]), "its metrics are not one row for each of its 1 epochs"),
    "an entry missing": (lambda s: s.pop("rng"), "is not a complete training checkpoint (no 'rng')"),
    "steps missing": (lambda s: s.pop("steps"), "(no 'steps')"),
    "an epoch of the wrong type": (lambda s: s.update(epoch="1"), "malformed 'epoch' entry (not an integer)"),
    "an order of the wrong type": (lambda s: s.update(perm=list(range(NUM_DATA))), "malformed 'perm' entry"),
    "metrics of the wrong type": (lambda s: s.update(metrics=[1]), "malformed 'metrics' entry (not a list of dicts)"),
    "random states damaged": (lambda s: s["rng"]["numpy"].update(keys=torch.zeros(3, dtype=torch.int64)),
                              "malformed random states"),
    "an entry it never holds": (lambda s: s.update(extra=1), "unexpected entry 'extra'; it is not a checkpoint"),
    "NaN parameters": (lambda s: s["model"][sorted(s["model"])[-1]].fill_(float("nan")),
                       "holds NaN or infinite values (model"),
}


def test_the_checkpoint_counters_fit_the_run(run, capsys):
    """What ``vae train`` counts, independently of the checks: 9 steps an epoch of 4,500 points in batches of
    512 (36 in batches of 128, as the run of an earlier release logged), a checkpoint at the end of epoch 1 at
    step 9, and that checkpoint resumes (the extended run: the test above)."""
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert (state["epoch"], state["steps"], state["metrics"][0]["steps"], state["batch_size"]) == (1, 9, 9, 512)
    assert json.loads((DATA / "run_2026_12_v2" / "metrics.jsonl").read_text())["steps"] == 36


@pytest.mark.parametrize("case", sorted(COUNTER_CASES))
def test_a_checkpoint_that_cannot_belong_to_the_run_is_refused_in_one_line(run, capsys, case):
    change, said = COUNTER_CASES[case]
    config = json.loads((run / "config.json").read_text())
    config["train"]["epochs"] = 2
    (run / "config.json").write_text(json.dumps(config))

    def as_an_old_release_wrote_it(state):  # nothing recorded of its run: the counters alone tell
        state.pop("config"), state.pop("batch_size")
        change(state)

    rewrite(run / "checkpoint.pt", as_an_old_release_wrote_it)
    before = files(run)
    err = refuse(capsys, ["train", "--resume", run])
    assert str(run / "checkpoint.pt") in err and said in err, err
    assert files(run) == before


@pytest.mark.parametrize("how", ["nan", "inf"])
def test_weights_that_are_not_finite_are_refused(run, tmp_path, capsys, how):
    def spoil(state):
        for part in ("model", "guide"):
            for tensor in state[part].values():
                tensor.fill_(float(how)) if how == "nan" else tensor.view(-1)[0].fill_(float("inf"))

    rewrite(run / "weights.pt", spoil)
    before = files(run)
    for argv in commands(run, tmp_path).values():
        assert f"{run / 'weights.pt'} holds NaN or infinite values (" in refuse(capsys, argv)
    assert files(run) == before


def test_an_entry_the_weights_never_hold_is_refused(run, capsys):
    rewrite(run / "weights.pt", lambda s: s.update(optimizer={}))
    err = refuse(capsys, ["evaluate", run])
    assert f"{run / 'weights.pt'} has an unexpected entry 'optimizer'; it is not a weights file" in err


@pytest.mark.parametrize("name", ["run_2026_11_v1", "run_2026_12_v2"])
def test_files_of_earlier_releases_carry_no_digest_and_still_load(tmp_path, capsys, name):
    from pyro_vae.inference.runs.writer import load_checkpoint

    raw = torch.load(DATA / name / "weights.pt", weights_only=True)
    assert "digest" not in raw and "config" not in raw
    assert main(["evaluate", str(DATA / name), "--json", str(tmp_path / "e.json")]) == 0
    _, state = load_checkpoint(DATA / name / "checkpoint.pt")
    state.check(1, NUM_DATA, 128, DATA / name / "checkpoint.pt")  # their counters fit their runs
    assert state.batch_size is None and "vae: error" not in capsys.readouterr().err
