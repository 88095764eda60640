"""A user's Dataset or DataLoader as a run's data (inference/data/given.py): trained exactly as the same data in
memory, the loader's settings taken, and what the trainer cannot do as the loader would refused in one line."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset, WeightedRandomSampler

from pyro_vae.inference import RunConfig, UserError
from pyro_vae.inference.data.datasets import ImageData, load_embedded_mnist
from pyro_vae.inference.data.given import from_dataset
from pyro_vae.inference.runs.folder import train_run
from pyro_vae.inference.runs.run import load_run, setup
from pyro_vae.inference.training.loop import train


@pytest.fixture(scope="module")
def digits():
    data = load_embedded_mnist()
    train, test = torch.arange(0, 4500, 9)[:400], torch.arange(0, 500, 5)[:100]
    return data.train_x[train], data.train_y[train], data.test_x[test], data.test_y[test]


class Digits(Dataset):
    """A user's Dataset: (image, label) items, each read when asked for."""

    def __init__(self, x, y, broken=None):
        self.x, self.y, self.broken = x, y, broken

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        if i == self.broken:
            raise KeyError(f"no file for item {i}")
        return self.x[i].clone(), int(self.y[i])


def _config(workers=2, **train):
    return RunConfig.from_dict({"train": {"epochs": 2, "seed": 0, "compile": "off", "batch_size": 50, **train},
                                "data": {"workers": workers}})


def _params(run) -> dict:
    return {k: v.detach().clone() for part in (run.model, run.guide) for k, v in part.state_dict().items()}


@pytest.mark.parametrize("workers", [0, 2])
def test_a_dataset_trains_exactly_as_the_same_data_in_memory(digits, workers):
    """The same points as ImageData in memory and as a user's Dataset read item by item (in DataLoader workers
    or not): the same permutation, binarization and steps, so bit-identical parameters and figures."""
    x, y, tx, ty = digits
    in_memory = setup(_config(), data=ImageData("digits", x, y, tx, ty))  # setup seeds the global RNG: train next
    a = train(in_memory)
    given = setup(_config(), data=(DataLoader(Digits(x, y), batch_size=50, shuffle=True, num_workers=workers),
                                   Digits(tx, ty)))
    assert given.config.data.workers == workers and given.config.data.dataset == "python"
    b = train(given)
    assert [m["test_elbo"] for m in a] == [m["test_elbo"] for m in b]
    pa, pb = _params(in_memory), _params(given)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_a_loaders_settings_are_the_runs_and_shuffle_false_keeps_the_order(digits):
    x, y, tx, ty = digits
    data, settings = from_dataset(DataLoader(Digits(x, y), batch_size=40, shuffle=False, num_workers=0))
    assert settings == {"batch_size": 40, "shuffle": False, "workers": 0}
    assert len(data.train_x) + len(data.test_x) == len(x)  # a tenth held out with a fixed seed
    assert torch.equal(data.test_x[:], x[torch.from_numpy(data.source_rows[1])])
    run = setup(RunConfig.from_dict({"train": {"epochs": 1, "compile": "off"}}),
                data=DataLoader(Digits(x, y), batch_size=40, shuffle=False))
    assert run.config.train.batch_size == 40 and run.config.data.shuffle is False
    from pyro_vae.inference.data.stream import MinibatchStream

    stream = MinibatchStream(run.data.train_x, 40, shuffle=False)
    assert torch.equal(stream.permutation(), torch.arange(len(run.data.train_x)))


def test_labels_come_from_targets_or_one_pass_and_a_conditional_run_trains(digits):
    x, y, tx, ty = digits
    data, _ = from_dataset(Digits(x, y), Digits(tx, ty), labels=True)
    assert data.labelled and torch.equal(data.train_y, y) and torch.equal(data.test_y, ty)
    with_targets = Digits(x, y)
    with_targets.targets = (y + 1) % 10  # read instead of the items when there
    assert torch.equal(from_dataset(with_targets, labels=True)[0].train_y[:5], ((y + 1) % 10)[
        torch.from_numpy(from_dataset(with_targets)[0].source_rows[0][:5])])
    config = RunConfig.from_dict({"model": {"conditional": True, "num_classes": 10},
                                  "train": {"epochs": 1, "compile": "off"}})
    assert np.isfinite(train(setup(config, data=(Digits(x, y), Digits(tx, ty))))[-1]["test_elbo"])


def test_a_run_trained_on_a_dataset_reloads_with_it_and_the_cli_says_how(tmp_path, digits):
    from tests.helpers import run_vae

    x, y, tx, ty = digits
    train_run(_config(epochs=1), tmp_path / "run", quiet=True, plots=False, tensorboard=False,
              data=(Digits(x, y), Digits(tx, ty)))
    again = load_run(tmp_path / "run", data=(Digits(x, y), Digits(tx, ty)))
    assert again.evaluate().elbo == pytest.approx(
        float(__import__("json").loads((tmp_path / "run" / "metrics.jsonl").read_text())["test_elbo"]))
    with pytest.raises(UserError, match=r"load_run\(path, data=...\)"):
        load_run(tmp_path / "run")
    done = run_vae("evaluate", tmp_path / "run")
    assert done.returncode == 2 and "Traceback" not in done.stderr and "data given in Python" in done.stderr


def _loader(data, **kw):
    return DataLoader(data, **{"batch_size": 50, **kw})


class Stream(IterableDataset):
    """A user's IterableDataset of (x, y) items; its size from ``num_data`` (or none, ``declared=None``)."""

    def __init__(self, x, y, declared="same"):
        self.x, self.y = x, y
        if declared is not None:
            self.num_data = len(x) if declared == "same" else declared

    def __iter__(self):
        return ((self.x[i], int(self.y[i])) for i in range(len(self.x)))


def test_an_iterable_dataset_is_copied_once_and_trains_exactly_as_the_same_data_in_memory(digits):
    """Read through once (through the user's DataLoader, in its batches of 50) into a float32 copy: the run then
    trains exactly as the same points in memory, and the labels come with the items."""
    x, y, tx, ty = digits
    in_memory = setup(_config(), data=ImageData("digits", x, y, tx, ty))
    a = train(in_memory)
    streamed = setup(_config(), data=(DataLoader(Stream(x, y), batch_size=50), Digits(tx, ty)))
    assert torch.equal(streamed.data.train_x[:], x)
    b = train(streamed)
    assert [m["test_elbo"] for m in a] == [m["test_elbo"] for m in b]
    data, settings = from_dataset(Stream(x, y), labels=True)
    rows = torch.from_numpy(data.source_rows[0])
    assert settings == {} and torch.equal(data.train_y, y[rows]) and torch.equal(data.train_x[:], x[rows])


@pytest.mark.parametrize("make, words", [
    (lambda ds: _loader(ds, sampler=WeightedRandomSampler(torch.ones(len(ds)), len(ds))),
     "samples with WeightedRandomSampler"),
    (lambda ds: _loader(ds, collate_fn=lambda items: items), "has a collate_fn"),
    (lambda ds: _loader(ds, batch_size=64, drop_last=True), "drop_last=True, which leaves 16 of its 400"),
    (lambda ds: DataLoader(ds, batch_sampler=[[0, 1]]), "batch_sampler of its own"),
    (lambda ds: Stream(ds.x, ds.y, declared=None), "does not say how many points it gives"),
    (lambda ds: Stream(ds.x, ds.y, declared=399), "gave more than the 399 points it declares"),
    (lambda ds: Stream(ds.x, ds.y, declared=401), "gave 400 points but declares 401"),
    (lambda ds: [1, 2, 3], "holds a int, not a tensor"),
    (lambda ds: TensorDataset(torch.zeros(3, dtype=torch.complex64)), "complex64 tensor"),
    (lambda ds: TensorDataset(torch.zeros(3)), "is a scalar"),
    (lambda ds: 42, "the training data is a int"),
])
def test_what_the_trainer_cannot_read_as_given_is_refused_in_one_line(digits, make, words):
    x, y, _, _ = digits
    with pytest.raises(UserError, match=words) as err:
        setup(_config(), data=make(Digits(x, y)))
    assert "\n" not in str(err.value)


def test_a_batch_size_that_differs_from_the_configs_is_refused(digits):
    x, y, _, _ = digits
    with pytest.raises(UserError, match="batch_size 32 and the config's train.batch_size 50 differ"):
        setup(_config(), data=_loader(Digits(x, y), batch_size=32))


@pytest.mark.parametrize("workers", [0, 2])
def test_an_item_that_fails_mid_epoch_stops_training_naming_it(digits, workers):
    x, y, tx, ty = digits

    class Shapes(Digits):
        def __getitem__(self, i):
            item = super().__getitem__(i)
            return (item[0][:, :10], item[1]) if i == 333 else item

    for data, words in ((Digits(x, y, broken=333), "item 333 of the training dataset raised KeyError: 'no file for"),
                        (Shapes(x, y), r"item 333 of the training dataset has shape \(1, 10, 28\), item 0 has")):
        run = setup(_config(workers=workers), data=(data, Digits(tx, ty)))
        with pytest.raises(UserError, match=words) as err:
            train(run)
        assert "\n" not in str(err.value) and str(err.value).startswith("training stopped at epoch 1")


@pytest.mark.parametrize("held_out", [False, True])
def test_an_item_the_likelihood_cannot_model_is_named_by_its_own_index_when_read(digits, held_out):
    """Values are checked as the items are read (no pass of its own over a user's dataset): a grey level of 3
    for a Bernoulli likelihood is refused naming the dataset's item, also when it sits in a held-out split."""
    x, y, tx, ty = digits
    x = x.clone()
    x[123, 0, 5, 5] = 3.0
    data = Digits(x, y) if held_out else (Digits(x, y), Digits(tx, ty))
    with pytest.raises(UserError, match=r"models .*item 123 of the training dataset holds 3") as err:
        train(setup(_config(workers=0, epochs=1), data=data))
    assert "\n" not in str(err.value)


def test_a_conditional_vae_on_items_without_labels_is_refused_not_trained_on_zeros(digits):
    x, y, tx, ty = digits
    config = RunConfig.from_dict({"model": {"conditional": True, "num_classes": 10}, "train": {"compile": "off"}})
    with pytest.raises(UserError, match="item 0 of the training dataset has no integer label y"):
        setup(config, data=TensorDataset(x))
    with pytest.raises(UserError, match="gave no labels y"):
        setup(config, data=(_Unlabelled(x), Digits(tx, ty)))


class _Unlabelled(IterableDataset):
    """An IterableDataset of images alone (no labels)."""

    def __init__(self, x):
        self.x, self.num_data = x, len(x)

    def __iter__(self):
        return iter(self.x)


def test_a_run_reloaded_or_resumed_with_other_data_is_refused(tmp_path, digits):
    from pyro_vae.inference.runs.folder import resume_run

    x, y, tx, ty = digits
    train_run(_config(epochs=1), tmp_path / "run", quiet=True, plots=False, tensorboard=False,
              data=(Digits(x, y), Digits(tx, ty)))
    for again in (lambda d: load_run(tmp_path / "run", data=d),
                  lambda d: resume_run(tmp_path / "run", quiet=True, plots=False, tensorboard=False, data=d)):
        with pytest.raises(UserError, match=r"the data given has 399 training and 100 test points .* was trained on "
                                            r"400 and 100"):
            again((Digits(x[:399], y[:399]), Digits(tx, ty)))
