"""A run: a model, its guide, the data they are trained on, and the private param store of the program.

The toolkit's own components keep their parameters in their modules (``state_dict``). A user's
component may read ``pyro.param("sigma", ...)`` instead; a run keeps such parameters in its own param
store (``store``, an ``pyro_vae.inference.param_state.ParamState``), so two runs in one process never share them
and the user's global store is left alone. The run's model and guide carry that store
(``pyro_vae.inference.param_state.bind``): every call of them, by the toolkit's evaluators, by ``SVI`` or by the
user's own code, reads the run's trained values. ``with run.params():`` makes the store current for a
whole block; ``weights.pt`` saves its values, and loading a run puts them back at once.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pyro
import torch
from torch import nn

from pyro_vae.models.networks import describe

from pyro_vae.inference.config.sections import RunConfig
from pyro_vae.inference.data.checks import check_fits, check_labels, standardize
from pyro_vae.inference.data.datasets import ImageData, prepare
from pyro_vae.inference.data.given import from_dataset
from pyro_vae.inference.data.loaders import load_dataset
from pyro_vae.inference.errors import UserError
from pyro_vae.inference.evaluate.elbo import evaluate_elbo
from pyro_vae.inference.runs.build import build_model_and_guide, resolve_device
from pyro_vae.inference.runs.sizes import check_model_fits
from pyro_vae.inference.runs.files import load_module_state, load_state
from pyro_vae.inference.runs.digest import check_config, check_weights
from pyro_vae.inference.runs.layout import CONFIG, DATA, WEIGHTS, check_entries, read_json
from pyro_vae.inference.runs import lock
from pyro_vae.inference import process_group
from pyro_vae.inference.deprecation import moved_names
from pyro_vae.inference.param_state import ParamState, bind


@dataclass
class Run:
    """A model, its guide and the data they were trained on, as loaded or trained."""

    config: RunConfig
    model: nn.Module
    guide: nn.Module
    data: ImageData
    device: torch.device
    path: Optional[Path] = None
    store: ParamState = field(default_factory=ParamState)
    config_stamp: Optional[tuple] = field(default=None, repr=False)  # lock.stamp of path/config.json when loaded

    def __post_init__(self):
        bind(self.model, self.store)
        bind(self.guide, self.store)

    @property
    def pending_params(self) -> dict:
        """Deprecated (0.3.0), always ``{}``; saved ``pyro.param`` values are restored when the run loads (``load_params``)."""
        warnings.warn("Run.pending_params is deprecated: a loaded run's pyro.param values are restored at once; "
                      "use Run.load_params(saved) to restore saved values", DeprecationWarning, stacklevel=2)
        return {}

    @pending_params.setter
    def pending_params(self, saved: dict) -> None:
        warnings.warn("Run.pending_params is deprecated: use Run.load_params(saved)", DeprecationWarning, stacklevel=2)
        self.load_params(dict(saved))

    @property
    def param_state(self) -> dict:
        """The run's param store as Pyro's ``scope`` state (``{"params", "constraints"}``, the live dicts)."""
        return self.store.state

    @property
    def can_sample(self) -> bool:
        """False for a prior without samples (the flat prior of the plain autoencoder family)."""
        return getattr(self.model.prior, "can_sample", True)

    @property
    def sample_label(self) -> Optional[int]:
        """The class a conditional VAE's pictures of prior samples are drawn for (0); None when unconditional."""
        return 0 if self.config.model.conditional else None

    def labels(self, split: str = "test") -> Optional[torch.Tensor]:
        """The labels a conditional VAE is conditioned on; None for an unconditional one."""
        return getattr(self.data, f"{split}_y") if self.config.model.conditional else None

    def params(self):
        """The run's own param store is Pyro's current one inside the block (re-entrant: an inner block sees the
        live store, not the state saved when the outer one began)."""
        return self.store.active()

    def load_params(self, saved: dict) -> None:
        """Saved ``pyro.param`` values (``weights.pt``'s ``params``): the program creates each (with its constraint)
        on one test point, then takes the saved value."""
        if not saved:
            return
        y = self.labels()
        with self.params():
            with torch.no_grad():
                evaluate_elbo(self.model, self.guide, self.data.test_x[:1], y=None if y is None else y[:1])
            store = pyro.get_param_store()
            for name, value in saved.items():
                if name not in store:
                    raise UserError(f"{self.path / WEIGHTS if self.path else 'the weights'} hold the parameter "
                                    f"{name!r}, which this run's program does not read")
                store[name] = value.to(self.device)

    def store_params(self) -> dict:
        """The run's ``pyro.param`` values (constrained) that are not module parameters."""
        own = {id(t) for m in (self.model, self.guide) for t in m.parameters()}
        with self.params():
            store = pyro.get_param_store()
            return {name: store[name].detach().clone() for name in store.keys()
                    if id(store[name].unconstrained()) not in own}  # type: ignore[attr-defined]  # Pyro's

    def adding_results(self, out: Optional[Path] = None):
        """A context in which a command writes what it found (to ``out``) into this loaded run's folder: refused
        in one line if the folder was trained anew since it was loaded (``lock.adding_to``). Output outside the
        folder, or a run not loaded from one, needs no guard."""
        if self.path is None or (out is not None and not Path(out).resolve().is_relative_to(self.path.resolve())):
            return contextlib.nullcontext()
        return lock.adding_to(self.path, self.path / CONFIG, self.config_stamp)

    def fingerprint(self) -> bytes:
        """SHA-256 of what decoding depends on: the model and guide config, the data's shape, and every tensor
        of the model, the guide and the run's ``pyro.param`` store (``pyro_vae.inference.coding.container``)."""
        sections = self.config.to_dict()
        digest = hashlib.sha256(json.dumps({"model": sections["model"], "guide": sections["guide"],
                                            "event_shape": list(self.data.event_shape)}, sort_keys=True).encode())
        for part, state in (("model", self.model.state_dict()), ("guide", self.guide.state_dict()),
                            ("params", self.store_params())):
            for name in sorted(state):
                tensor = state[name].detach().cpu().contiguous()
                digest.update(f"{part}.{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
                digest.update(tensor.numpy().tobytes() if tensor.dtype != torch.bfloat16 else
                              tensor.float().numpy().tobytes())
        return digest.digest()

    def evaluate(self, seed: int = 0):
        """Test ELBO, distortion and rate; in a data-parallel job each rank scores its shard and the sums meet."""
        def on(x, y, s):
            return evaluate_elbo(self.model, self.guide, x, self.config.train.eval_batch_size, s, y=y)

        with self.params():
            if process_group.current().active:
                return process_group.sharded_evaluate(on, self.data.test_x, self.labels(), seed)
            return on(self.data.test_x, self.labels(), seed)


def setup(config: RunConfig, device: Optional[str] = None, data=None) -> Run:
    """Seed, load and prepare the data, build model and guide on the device: a run ready to train.

    Parameters
    ----------
    config : RunConfig
        What to build; checked first (``RunConfig.validate``: a checked copy, the caller's is left as it is).
    device : str, optional
        ``"cpu"``, ``"cuda"`` or ``"auto"``; default ``config.train.device``.
    data : Dataset, DataLoader, (train, test) or ImageData, optional
        Data given in Python instead of the files ``config.data`` names (``pyro_vae.inference.data.given``): read
        on demand, a ``DataLoader``'s batch size, shuffling and workers taken as the run's.

    Returns
    -------
    Run
        The untrained model and guide (seeded by ``config.train.seed``), the data as the config prepares it
        (binarized, standardized, on the device or streamed from the host) and the config.

    Raises
    ------
    UserError
        A config, data or device the toolkit cannot train, in one line.
    """
    config = config.validate()  # a checked copy, its defaults resolved
    dev = process_group.local_device(resolve_device(device or config.train.device))
    if data is None:
        data = load_run_data(config)
    else:
        data, config = given_data(config, data)
        data = prepare_data(config, data)
    data = place(data, dev, config.train.data_placement)
    try:
        check_model_fits(config, data.event_shape, data.train_x.shape[0], dev)
        pyro.set_rng_seed(config.train.seed)
        model, guide = build_model_and_guide(config.model, config.guide, data.event_shape)
    except ValueError as err:  # e.g. a conv network for images whose size it cannot take
        raise UserError(str(err)) from None
    model, guide = model.to(dev), guide.to(dev)
    return Run(config, model, guide, data, dev)


def place(data: ImageData, device: torch.device, placement: str = "auto") -> ImageData:
    """Everything on ``device``, except training images that are to be streamed from the host."""
    on_device = placement == "device" or device.type != "cuda" or (
        placement == "auto" and data.train_x.nbytes < 0.5 * torch.cuda.mem_get_info(device)[0])
    if on_device:
        return data.to(device)
    return data.replace(**{k: getattr(data, k).to(device) for k in ("train_y", "test_x", "test_y")})


def load_run_data(config: RunConfig) -> ImageData:
    """The data ``config`` names, checked against its likelihood (and labels against a conditional VAE), then
    binarized and standardized as it says."""
    return prepare_data(config, load_dataset(config.data))


def prepare_data(config: RunConfig, data: ImageData) -> ImageData:
    """``data`` checked against the likelihood (and labels against a conditional VAE), binarized and standardized
    as ``config`` says."""
    data = check_fits(data, config.model.likelihood, config.data.binarize)
    if config.model.conditional:
        check_labels(data, config.model.num_classes)
    data = prepare(data, config.data.binarize)
    return standardize(data) if config.data.standardize else data


def load_weights(run: Run, state: dict, where: Path) -> None:
    for part in ("model", "guide"):
        if not isinstance(state.get(part), dict):
            raise UserError(f"{where} has no {part} state; it was not written by 'vae train'")
    built_for = state.get("event_shape")
    if built_for is not None and tuple(built_for) != tuple(run.data.event_shape):
        raise UserError(f"the networks in {where} were built for data of shape {describe(built_for)}, but the data "
                        f"now has shape {describe(run.data.event_shape)}; the data changed since training: restore "
                        f"it, or train a new run on it")
    load_module_state(run.model, state["model"], "model")
    load_module_state(run.guide, state["guide"], "guide")
    params = state.get("params", {})
    if not isinstance(params, dict) or not all(torch.is_tensor(v) for v in params.values()):
        raise UserError(f"{where} has a malformed 'params' entry; it was not written by 'vae train'")
    run.load_params(dict(params))


def given_data(config: RunConfig, data) -> tuple[ImageData, RunConfig]:
    """Data given in Python as ``ImageData``, and the config with ``dataset: python`` and what a ``DataLoader``
    states (its batch size, shuffling and workers; a batch size that differs from a non-default config's is
    refused in one line)."""
    config = config.copy()
    if not isinstance(data, ImageData):
        train, test = data if isinstance(data, tuple) and len(data) == 2 else (data, None)
        data, settings = from_dataset(train, test, test_fraction=config.data.test_fraction,
                                      labels=config.model.conditional)
        asked, default = config.train.batch_size, type(config.train)().batch_size
        if "batch_size" in settings and asked not in (default, settings["batch_size"]):
            raise UserError(f"the DataLoader's batch_size {settings['batch_size']} and the config's train.batch_size "
                            f"{asked} differ; set one of them")
        for section, key in (("train", "batch_size"), ("data", "shuffle"), ("data", "workers")):
            if key in settings:
                setattr(getattr(config, section), key, settings[key])
    config.data.dataset, config.data.data_dir = "python", None
    return data, config.validate()


def load_run(path: Path, device: str = "cpu", data=None) -> Run:
    """Rebuild model and guide from ``path/config.json`` and load ``path/weights.pt``: the two read as one
    snapshot (``pyro_vae.inference.runs.lock``), so a run still training gives the config and weights of one epoch.

    Parameters
    ----------
    path : path-like
        A run folder written by ``vae train`` or ``train_run``.
    device : str
        Where to load it: ``"cpu"`` (the default), ``"cuda"`` or ``"auto"``.
    data : Dataset, DataLoader, (train, test) or ImageData, optional
        The data of a run trained on data given in Python (``setup(config, data=...)``).

    Returns
    -------
    Run
        The trained model and guide with their data and config; ``run.path`` is the folder.

    Raises
    ------
    UserError
        No such folder, or one without a config or weights (named in one line).
    """
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"run folder {path} does not exist")
    with lock.snapshot(path):
        check_entries(path)  # no link, pipe or device in it: nothing read or written through one
        missing = next((name for name in (CONFIG, WEIGHTS) if not (path / name).is_file()), None)
        writer = lock.writer_active(path) if missing else None
        if writer:
            raise UserError(f"run folder {path} has no {missing} yet: {writer} is training it; try again when "
                            f"its first epoch has ended")
        config = RunConfig.load(path / CONFIG)
        read_json(path, DATA)  # its record of the data checked, whoever reads it later
        state = load_state(path / WEIGHTS)  # on the CPU; load_weights copies into the modules on the device
        check_weights(state, path / WEIGHTS)  # entries and values; the config it records: below, once loaded
        raw_config = read_json(path, CONFIG)
        config_stamp = lock.stamp(path / CONFIG)
    if data is None and config.data.dataset == "python":
        raise UserError(f"{path} was trained on data given in Python; load it with load_run(path, data=...) and the "
                        f"same Dataset")
    run = setup(config, device, data)
    if data is not None:
        check_same_data(path, run.data)
    run.path, run.config_stamp = path, config_stamp
    load_weights(run, state, path / WEIGHTS)
    check_config(state, path / CONFIG, raw_config, path / WEIGHTS)  # after the networks' own shape checks
    return run


def check_same_data(path: Path, data: ImageData) -> None:
    """Data given in Python again for the run in ``path``: as many training and test points of the same shape as
    its ``data.json`` records, else one line (a checkpoint's permutation would read other points, or none)."""
    recorded = read_json(path, DATA)  # checked: a damaged record is named, not skipped
    if recorded is None:
        return  # a run of a release before data.json: nothing to compare with
    before = (recorded["train"], recorded["test"], tuple(recorded["event_shape"]))
    now = (len(data.train_x), len(data.test_x), tuple(data.event_shape))
    if now != before:
        raise UserError(f"the data given has {now[0]} training and {now[1]} test points of shape {now[2]}, but {path} "
                        f"was trained on {before[0]} and {before[1]} of shape {before[2]}; give the same Dataset")


__getattr__ = moved_names(__name__, {"save_weights": "pyro_vae.inference.runs.writer"})
