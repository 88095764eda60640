"""Config dataclasses, one per component, that round-trip to JSON (as pythae).

``RunConfig.from_dict`` validates types, ranges and registry names before
anything is built, so a hand-edited ``config.json`` fails with a clear message.

**One place per option.** Each field is declared once, with ``option(default, help, ...)``: its type
(the annotation), default, help line and choices (a tuple, or a registry whose names are read when the
help is shown). The ``vae`` flags and their help are made from these fields (``inference/cli/options.py``):
``--<field-name>`` unless ``flag=`` says otherwise; fields of several sections that share a flag (the
encoder's and decoder's ``--hidden-dim``) are set together. Component names accept ``-`` for ``_``. An
objective's knobs are declared in its own ``Config`` (``inference/objectives/``); ``ObjectiveConfig`` is made
from them (``objective_knobs``).
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from pyro_vae.guides import GUIDES
from pyro_vae.guides.corruption import CORRUPTIONS
from pyro_vae.models import LIKELIHOODS, PRIORS
from pyro_vae.models.likelihoods import BINARY, COUNT, DATA_KINDS, EIGHT_BIT, REAL
from pyro_vae.models.conv import UPSAMPLERS
from pyro_vae.models.networks import ACTIVATIONS as NETWORK_ACTIVATIONS

from pyro_vae.inference.config.hierarchy import HIERARCHY_GUIDES, check_hierarchy
from pyro_vae.inference.config.option import choice_names, option  # noqa: F401  (choice_names: the CLI reads it here)
from pyro_vae.inference.errors import UserError
from pyro_vae.inference.objectives import OBJECTIVES, SCHEDULES, misplaced_options, objective_knobs

DATASETS = ("mnist-embedded", "mnist", "fashion-mnist", "kmnist", "idx", "folder", "cifar10", "svhn", "celeba",
            "array")
IMAGE_SETS = tuple(d for d in DATASETS if d != "array")
BINARIZATIONS = ("auto", "dynamic", "static", "none")
CHANNEL_MODES = ("keep", "grey", "rgb")
DEVICES = ("auto", "cpu", "cuda")
COMPILE_MODES = ("auto", "off", "trace", "inductor")  # inference/training/engines.py
PLACEMENTS = ("auto", "device", "host")
ACTIVATIONS = tuple(NETWORK_ACTIVATIONS)
ARCHS = ("mlp", "conv")


class ConfigError(UserError):
    pass


def _check_type(where: str, name: str, value: Any, annotation: Any) -> Any:
    optional = typing.get_origin(annotation) is typing.Union and type(None) in typing.get_args(annotation)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where}.{name} must not be null")
    base = next(a for a in typing.get_args(annotation) if a is not type(None)) if optional else annotation
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base in (int, float, str, bool) and (not isinstance(value, base) or (base is int and isinstance(value, bool))):
        raise ConfigError(f"{where}.{name} must be {base.__name__}, got {value!r}")
    if typing.get_origin(base) is list:
        item = typing.get_args(base)[0]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, item) and not isinstance(v, bool)
                                                           for v in value):
            raise ConfigError(f"{where}.{name} must be a list of {item.__name__}, got {value!r}")
        return list(value)
    return value


class _Section:
    """Shared JSON round trip: ``to_dict``/``from_dict`` with unknown-key and type checks."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Any, where: str = ""):
        where = where or cls.__name__
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} must be a JSON object, got {type(raw).__name__}")
        hints = typing.get_type_hints(cls)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"{where} has unknown key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")
        values = {k: _check_type(where, k, v, hints[k]) for k, v in raw.items()}
        named = {f.name for f in fields(cls) if hasattr(f.metadata.get("choices"), "names")}
        values = {k: v.replace("-", "_") if k in named and isinstance(v, str) else v for k, v in values.items()}
        obj = cls(**values)
        obj.validate()
        return obj

    def validate(self) -> None:
        pass


def _one_of(what: str, value: str, choices) -> None:
    """Refuse a name that is not among ``choices`` (a tuple or a registry), listing them."""
    if value not in choices:
        raise ConfigError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")


def _positive(where: str, **values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ConfigError(f"{where}.{name} must be positive, got {value}")


def _check_network(where: str, arch: str, hidden_dim: int, num_hidden_layers: int, activation: str) -> None:
    _positive(where, hidden_dim=hidden_dim)
    _one_of("architecture", arch, ARCHS)
    if num_hidden_layers < 0:
        raise ConfigError(f"{where}.num_hidden_layers must be >= 0, got {num_hidden_layers}")
    _one_of("activation", activation, ACTIVATIONS)


@dataclass
class DataConfig(_Section):
    """Which data, and how its values become observations (``inference/data/``)."""

    dataset: str = option("mnist-embedded", "the data: the embedded 5,000 MNIST digits; a folder of IDX .gz files "
                          "(idx); a folder of images with train/ and test/ (folder); a torchvision set read from "
                          "--data-dir; an .npz, .npy or .csv file (array)", choices=DATASETS)
    data_dir: Optional[str] = option(None, "the data's folder (IDX files, images, torchvision's files or download "
                                     "root), or the array file")
    binarize: str = option("auto", "grey levels to binary pixels: a fresh Bernoulli draw per batch (dynamic), "
                           "one draw (static), keep the values (none); auto: dynamic for a likelihood of binary "
                           "pixels, else none", choices=BINARIZATIONS)
    image_size: Optional[list[int]] = option(None, "resize every image to H x W (torchvision's resize)",
                                             metavar=("H", "W"))
    channels_mode: str = option("keep", "image channels: as the files have them (keep), grey, or rgb",
                                choices=CHANNEL_MODES)
    test_fraction: float = option(0.1, "array: share of an .npy/.csv file (or an .npz without test_x) held out "
                                  "as the test set, drawn with a fixed seed")
    standardize: bool = option(False, "real-valued data: shift and scale each feature to mean 0, sd 1 on the "
                               "training set (undone in samples and reconstructions)")

    def validate(self):
        _one_of("dataset", self.dataset, DATASETS)
        _one_of("binarization", self.binarize, BINARIZATIONS)
        _one_of("channels mode", self.channels_mode, CHANNEL_MODES)
        if self.dataset in ("idx", "folder", "array") and not self.data_dir:
            what = {"idx": "a folder of IDX .gz files", "folder": "a folder with train/ and test/ image folders",
                    "array": "an .npz, .npy or .csv file"}[self.dataset]
            raise ConfigError(f"dataset {self.dataset!r} needs --data-dir, {what}")
        if self.image_size is not None and (len(self.image_size) != 2 or min(self.image_size) < 1):
            raise ConfigError(f"data.image_size must be two positive numbers H W, got {self.image_size}")
        if self.dataset == "array" and (self.image_size is not None or self.channels_mode != "keep"):
            raise ConfigError("--image-size and --channels-mode apply to images; an array is used as its file has it")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"data.test_fraction must be in (0, 1), got {self.test_fraction}")


@dataclass
class ModelConfig(_Section):
    """p(x, z): latent size, decoder MLP, likelihood and prior by name."""

    latent_dim: int = option(20, "size Z of the latent code")
    arch: str = option("mlp", "encoder and decoder networks", choices=ARCHS)
    hidden_dim: int = option(400, "width of the encoder's and decoder's hidden layers")
    num_hidden_layers: int = option(1, "MLP hidden layers of encoder and decoder (0: linear)")
    channels: int = option(32, "conv: channels after the first layer (doubled after the second)")
    upsample: str = option("transposed", "conv decoder: transposed convolution or depth-to-space", choices=UPSAMPLERS)
    activation: str = option("relu", "hidden-layer nonlinearity of encoder and decoder", choices=ACTIVATIONS)
    likelihood: str = option("bernoulli", "p(x | z)", choices=LIKELIHOODS)
    likelihood_scale: float = option(1.0, "sigma of gaussian, b of laplace, initial sigma of the learned Gaussians, "
                                     "initial inverse dispersion theta of the negative binomials")
    likelihood_components: int = option(5, "mixture components K of discretized_logistic_mixture")
    prior: str = option("normal", "p(z)", choices=PRIORS)
    prior_components: int = option(10, "mixture components K of the mog and vamp priors")
    prior_flows: int = option(2, "autoregressive layers of the flow prior")
    hierarchy: Optional[list[int]] = option(None, "stochastic layers below the top one (of --latent-dim units), "
                                            "from x up: '--hierarchy 100 --latent-dim 50' is Burda et al.'s two-layer "
                                            "VAE; each link has --num-hidden-layers layers twice as wide as the "
                                            "layer above it", metavar="UNITS")
    conditional: bool = option(False, "conditional VAE on the labels: p(x | z, y), q(z | x, y) (seed 002)")
    num_classes: int = option(10, "label classes of the conditional VAE")

    def validate(self):
        _check_network("model", self.arch, self.hidden_dim, self.num_hidden_layers, self.activation)
        _positive("model", channels=self.channels)
        _one_of("upsampling", self.upsample, UPSAMPLERS)
        _positive("model", latent_dim=self.latent_dim, likelihood_scale=self.likelihood_scale,
                  prior_components=self.prior_components, prior_flows=self.prior_flows,
                  likelihood_components=self.likelihood_components,
                  num_classes=self.num_classes)
        if self.conditional and self.prior == "vamp":
            raise ConfigError("the VampPrior's pseudo-inputs carry no label; use another prior with --conditional")
        _one_of("likelihood", self.likelihood, LIKELIHOODS)
        _one_of("prior", self.prior, PRIORS)


@dataclass
class GuideConfig(_Section):
    """q(z | x): guide by name and its encoder MLP."""

    guide: str = option("diagonal_normal", "q(z | x)", choices=GUIDES)
    arch: str = option("mlp", "encoder and decoder networks", choices=ARCHS)
    hidden_dim: int = option(400, "width of the encoder's and decoder's hidden layers")
    num_hidden_layers: int = option(1, "MLP hidden layers of encoder and decoder (0: linear)")
    channels: int = option(32, "conv: channels after the first layer (doubled after the second)")
    activation: str = option("relu", "hidden-layer nonlinearity of encoder and decoder", choices=ACTIVATIONS)
    flows: int = option(2, "inverse autoregressive layers of the iaf guide", flag="--guide-flows")
    min_scale: float = option(1e-5, "floor on the guide's standard deviations")
    corruption: str = option("none", "denoising: corrupt the encoder's input by masking or Gaussian noise",
                             choices=CORRUPTIONS)
    corruption_level: float = option(0.3, "masking probability, or the noise's standard deviation")
    hierarchy_guide: str = option("bottom_up", "a --hierarchy's guide: bottom_up, q(z1|x) q(z2|z1) (Burda et al. "
                                  "2015), or ladder, top-down along the model's own layers (Sonderby et al. 2016)",
                                  choices=HIERARCHY_GUIDES)

    def validate(self):
        _one_of("guide.hierarchy_guide", self.hierarchy_guide, HIERARCHY_GUIDES)
        _check_network("guide", self.arch, self.hidden_dim, self.num_hidden_layers, self.activation)
        _one_of("corruption", self.corruption, CORRUPTIONS)
        if not 0 <= self.corruption_level < (1 if self.corruption == "mask" else float("inf")):
            raise ConfigError(f"guide.corruption_level must be in [0, 1) for masking and >= 0 for noise, "
                              f"got {self.corruption_level}")
        _positive("guide", channels=self.channels)
        _positive("guide", flows=self.flows, min_scale=self.min_scale)
        _one_of("guide", self.guide, GUIDES)


class _ObjectiveSection(_Section):
    def validate(self):
        _one_of("objective", self.name, OBJECTIVES)
        _positive("objective", num_particles=self.num_particles, beta=self.beta, adversarial_lr=self.adversarial_lr,
                  discriminator_steps=self.discriminator_steps)
        if self.contractive_weight < 0:
            raise ConfigError(f"objective.contractive_weight must be >= 0, got {self.contractive_weight}")
        if self.free_bits < 0 or self.warmup_steps < 0:
            raise ConfigError("objective.free_bits and objective.warmup_steps must be >= 0")
        _one_of("KL schedule", self.kl_schedule, SCHEDULES)
        misplaced = misplaced_options(self)
        if misplaced:
            own = [f.name for f in fields(OBJECTIVES.get(self.name).Config)]
            raise ConfigError(f"objective.{misplaced[0]} does not apply to objective {self.name!r}; its options are "
                              f"{', '.join(own)} (each objective's own config: inference/objectives/)")


# The loss SVI minimizes, by name, and the knobs of every objective: made from the objectives' own ``Config``s,
# so a knob is declared once, in its objective (``option(...)``), and its flag, help and config key follow.
ObjectiveConfig = dataclasses.make_dataclass(
    "ObjectiveConfig",
    [("name", str, option("elbo", "the loss SVI minimizes (see the README's Objectives)", flag="--objective",
                          choices=OBJECTIVES)), *objective_knobs()],
    bases=(_ObjectiveSection,),
    namespace={"__doc__": "The loss SVI minimizes, by name (``pyro_vae.inference.objectives``), and its settings (each "
                          "objective's own ``Config``: ``objective_knobs``).", "__module__": __name__})


@dataclass
class TrainConfig(_Section):
    """SVI: epochs, minibatch, Adam learning rate, seed and device."""

    epochs: int = option(10, "passes over the training set")
    batch_size: int = option(128, "minibatch size B (the data plate scales the batch by N / B)")
    lr: float = option(1e-3, "Adam learning rate")
    seed: int = option(0, "seeds initialization, data order and every draw")
    device: str = option("auto", "where to train (auto: CUDA when present)", choices=DEVICES)
    eval_batch_size: int = option(1000, "test points per evaluation pass")
    clip_norm: Optional[float] = option(None, "clip each parameter's gradient to this norm (Pyro's clip_args rule)")
    compile: str = option("auto", "SVI engine: off (Pyro's interpreter), trace (captured graph), inductor "
                          "(compiled), auto (inductor for long runs, else trace)", choices=COMPILE_MODES)
    cuda_graph: bool = option(True, "on CUDA, step eagerly instead of replaying each step (loss, gradients, "
                              "Adam) as one recorded CUDA graph", negated="--no-cuda-graph")
    data_placement: str = option("auto", "training images on the device, or streamed from pinned host memory "
                                 "(auto: on the device when they take under half its free memory)",
                                 choices=PLACEMENTS)

    def validate(self):
        _positive("train", epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                  eval_batch_size=self.eval_batch_size)
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise ConfigError(f"train.clip_norm must be positive, got {self.clip_norm}")
        _one_of("device", self.device, DEVICES)
        _one_of("data placement", self.data_placement, PLACEMENTS)
        _one_of("compile mode", self.compile, COMPILE_MODES)


# The autoencoder family of seeds 000 and 002, each a (model, guide, objective) setting (``vae train --family``).
FAMILIES = {
    "vae": {},
    "plain": {"model": {"prior": "flat"}, "guide": {"guide": "delta"}},
    "linear": {"data": {"binarize": "none"}, "model": {"prior": "flat", "likelihood": "gaussian", "num_hidden_layers": 0},
               "guide": {"guide": "delta", "num_hidden_layers": 0}},
    "denoising": {"model": {"prior": "flat"}, "guide": {"guide": "delta", "corruption": "mask"}},
    "denoising_vae": {"guide": {"corruption": "mask"}},
    "sparse": {"model": {"prior": "laplace"}, "guide": {"guide": "delta"}},
    "contractive": {"model": {"prior": "flat"}, "guide": {"guide": "delta"}, "objective": {"name": "contractive"}},
    "adversarial": {"model": {"prior": "normal"}, "guide": {"guide": "delta"}, "objective": {"name": "adversarial"}},
}


def apply_family(raw: dict, family: str) -> dict:
    """``raw`` (a RunConfig dict) with the family's settings laid over it (``denoising-vae`` = ``denoising_vae``)."""
    family = family.replace("-", "_")
    _one_of("family", family, FAMILIES)
    out = {section: dict(values) for section, values in raw.items()}
    for section, values in FAMILIES[family].items():
        out.setdefault(section, {}).update(values)
    return out


@dataclass
class RunConfig:
    """Everything needed to rebuild and retrain a run: ``config.json`` in the run folder."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    guide: GuideConfig = field(default_factory=GuideConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    SECTIONS = {"data": DataConfig, "model": ModelConfig, "guide": GuideConfig, "objective": ObjectiveConfig,
                "train": TrainConfig}

    def to_dict(self) -> dict:
        return {name: getattr(self, name).to_dict() for name in self.SECTIONS}

    @classmethod
    def from_dict(cls, raw: Any) -> "RunConfig":
        if not isinstance(raw, dict):
            raise ConfigError("a run config must be a JSON object with sections data, model, guide, objective, train")
        unknown = sorted(set(raw) - set(cls.SECTIONS))
        if unknown:
            raise ConfigError(f"config has unknown section {unknown[0]!r}; known: {', '.join(cls.SECTIONS)}")
        return cls(**{name: sec.from_dict(raw.get(name, {}), name) for name, sec in cls.SECTIONS.items()}).validate()

    def validate(self) -> "RunConfig":
        for name in self.SECTIONS:
            getattr(self, name).validate()
        self._check_likelihood_matches_data()
        self._check_prior_matches_guide()
        self._check_objective_matches_components()
        check_hierarchy(self)
        return self

    def _check_prior_matches_guide(self) -> None:
        """Every prior x guide pair either trains or is refused here, before anything is loaded."""
        prior, guide = self.model.prior, self.guide.guide
        check = getattr(PRIORS.get(prior), "pairing_problem", lambda guide_cls: None)
        problem = check(GUIDES.get(guide))
        if problem:
            fits = [g for g in GUIDES.names() if not check(GUIDES.get(g))]
            instead = f"--guide {' or '.join(fits)}, or another --prior" if fits else "another --prior"
            raise ConfigError(f"prior {prior!r} with guide {guide!r}: {problem}; use {instead}")

    def _check_objective_matches_components(self) -> None:
        """Every objective (with its options) x prior x guide either trains or is refused here: each objective
        says what it needs (``pairing_problem``)."""
        problem = OBJECTIVES.get(self.objective.name).pairing_problem(
            self.objective, PRIORS.get(self.model.prior), GUIDES.get(self.guide.guide))
        if problem:
            raise ConfigError(f"objective {self.objective.name!r} with prior {self.model.prior!r} and guide "
                              f"{self.guide.guide!r}: {problem}")

    def _check_likelihood_matches_data(self) -> None:
        """The pairings of likelihood and data that can be refused before the data is read (the values are
        checked once read: ``pyro_vae.inference.data.checks``). Resolves ``binarize: auto``."""
        kind, name, data = LIKELIHOODS.get(self.model.likelihood).data, self.model.likelihood, self.data
        if data.binarize == "auto":
            data.binarize = "dynamic" if kind == BINARY else "none"
        binarized, images = data.binarize != "none", data.dataset in IMAGE_SETS
        if kind == BINARY and not binarized and images:
            raise ConfigError(f"likelihood {name!r} models binary pixels but --binarize is 'none'; use --binarize "
                              f"dynamic or static, or --likelihood continuous_bernoulli for grey levels")
        if kind == EIGHT_BIT and binarized:
            raise ConfigError(f"likelihood {name!r} models {DATA_KINDS[kind]}; use --binarize none")
        if kind == COUNT and images:
            raise ConfigError(f"likelihood {name!r} models counts, but {data.dataset!r} holds images with grey levels "
                              f"in [0, 1]; count likelihoods need --dataset array with integer counts")
        if data.standardize and binarized:
            raise ConfigError("--standardize makes real values of mean 0, which cannot be binarized; use --binarize none")
        if data.standardize and kind != REAL:
            raise ConfigError(f"--standardize makes real values of mean 0, which likelihood {name!r} does not model "
                              f"({DATA_KINDS[kind]}); use a Gaussian or Laplace likelihood, or drop --standardize")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def load(cls, path: Path) -> "RunConfig":
        try:
            raw = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise UserError(f"no config file at {path}; is this a run folder written by 'vae train'?") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise UserError(f"cannot read config {path}: {err}") from None
        return cls.from_dict(raw)
