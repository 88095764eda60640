"""Config dataclasses, one per section, that round-trip to JSON (as pythae).

``RunConfig.from_dict`` checks keys, types, bounds and registry names before anything is built, so a
hand-edited ``config.json`` fails with a clear message; ``RunConfig.validate`` returns the checked config
with its defaults resolved (``binarize: auto``) and changes nothing in place.

**One place per option.** Each field is declared once, with ``option(default, help, ...)``: its type
(the annotation), default, help line, choices (``Choices``, or a registry whose names are read when the help
is shown) and bounds. A component's options live in its own ``Config`` (``pyro_vae.models.registry``) and
are keys of the section that names it (``inference/config/section.py``). The ``vae`` flags and their help
are made from these fields (``inference/cli/options.py``): ``--<field-name>`` unless ``flag=`` says
otherwise; fields of several sections that share a flag (the encoder's and decoder's ``--hidden-dim``:
``NetworkOptions``, declared once) are set together. Component names accept ``-`` for ``_``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Optional

from pyro_vae.guides import GUIDES
from pyro_vae.guides.corruption import CORRUPTIONS
from pyro_vae.models import LIKELIHOODS, PRIORS
from pyro_vae.models.conv import UPSAMPLERS
from pyro_vae.models.likelihoods import BINARY, COUNT, DATA_KINDS, EIGHT_BIT, REAL
from pyro_vae.models.networks import ACTIVATIONS as NETWORK_ACTIVATIONS
from pyro_vae.models.registry import SEED_MAX, Choices, choice_names, declared_options, option  # noqa: F401  (choice_names: read by the CLI)

from pyro_vae.inference.config.hierarchy import HIERARCHY_GUIDES, check_hierarchy
from pyro_vae.inference.config.section import Section, one_of
from pyro_vae.inference.data.loaders import DATASETS
from pyro_vae.inference.errors import ConfigError, UserError
from pyro_vae.inference.objectives import OBJECTIVES, misplaced_options
from pyro_vae.inference.engine_names import ENGINES

BINARIZATIONS = Choices("binarization", ("auto", "dynamic", "static", "none"))
CHANNEL_MODES = Choices("channels mode", ("keep", "grey", "rgb"))
DEVICES = Choices("device", ("auto", "cpu", "cuda"))  # training's; a trained run loads on device_problem's names
DEVICE_NAMES = "cpu, cuda, cuda:N (GPU N), mps or auto"


def device_problem(name: Any) -> Optional[str]:
    """Why ``name`` is not a device a trained run can be loaded on (None: it is): ``auto``, ``cpu``, ``cuda``,
    ``cuda:N`` or ``mps`` (whether this machine has it: ``resolve_device``)."""
    if not isinstance(name, str):
        return None
    kind, _, index = name.partition(":")
    if name in ("auto", "cpu", "cuda", "mps") or kind == "cuda" and index.isascii() and index.isdigit() and len(index) < 6:
        return None
    return f"must be {DEVICE_NAMES}"
PLACEMENTS = Choices("data placement", ("auto", "device", "host"))
STREAMING = Choices("streaming", ("auto", "always", "never"))
ACTIVATIONS = Choices("activation", tuple(NETWORK_ACTIVATIONS))
ARCHS = Choices("architecture", ("mlp", "conv"))
_SECTION = dict(init=False, repr=False, eq=False)  # Section makes __init__, __repr__ and __eq__


@dataclass(**_SECTION)
class DataConfig(Section):
    """Which data (a loader of ``DATASETS``, ``inference/data/loaders.py``), and how its values become
    observations."""

    SECTION = "data"
    COMPONENTS = {"dataset": DATASETS}

    dataset: str = option("mnist-embedded", "the data: the embedded 5,000 MNIST digits; a folder of IDX .gz files "
                          "(idx); a folder of images with train/ and test/ (folder); a torchvision set read from "
                          "--data-dir; an .npz, .npy or .csv file (array); an AnnData .h5ad file of counts "
                          "(anndata); python: data given in Python (setup(config, data=...))", choices=DATASETS)
    data_dir: Optional[str] = option(None, "the data's folder (IDX files, images, torchvision's files or download "
                                     "root), or the array file")
    binarize: str = option("auto", "grey levels to binary pixels: a fresh Bernoulli draw per batch (dynamic), "
                           "one draw (static), keep the values (none); auto: dynamic for a likelihood of binary "
                           "pixels, else none", choices=BINARIZATIONS)
    image_size: Optional[list[int]] = option(None, "resize every image to H x W (torchvision's resize)",
                                             metavar=("H", "W"), above=0)
    channels_mode: str = option("keep", "image channels: as the files have them (keep), grey, or rgb",
                                choices=CHANNEL_MODES)
    test_fraction: float = option(0.1, "array: share of an .npy/.csv file (or an .npz without test_x) held out "
                                  "as the test set, drawn with a fixed seed", above=0)
    standardize: bool = option(False, "real-valued data: shift and scale each feature to mean 0, sd 1 on the "
                               "training set (undone in samples and reconstructions)")
    stream: str = option("auto", "folder, array and anndata data: read from disk batch by batch (always), hold it in "
                         "memory (never), or stream when it would take more than --memory-budget (auto)",
                         choices=STREAMING)
    memory_budget: float = option(0.5, "auto streaming: the share of the memory available at start-up the data "
                                  "may take as float32 before it is streamed instead", above=0, maximum=1)
    workers: int = option(2, "processes decoding streamed images (or reading a Dataset's items) while training "
                          "(0: in the training process)", minimum=0)
    shuffle: bool = option(True, "keep the data's own order each epoch (as a DataLoader with shuffle=False) "
                           "instead of a new random order", negated="--no-shuffle")

    def check_rules(self):
        """Refuse a loader without the ``data_dir`` it needs, a bad ``image_size``, image options for an array, and
        a ``test_fraction`` outside (0, 1)."""
        loader = DATASETS.get(self.dataset)
        if loader.data_dir and not self.data_dir:
            raise ConfigError(f"dataset {self.dataset!r} needs --data-dir, {loader.data_dir}")
        if self.image_size is not None and (len(self.image_size) != 2 or min(self.image_size) < 1):
            raise ConfigError(f"data.image_size must be two positive numbers H W, got {self.image_size}")
        if not loader.images and (self.image_size is not None or self.channels_mode != "keep"):
            raise ConfigError("--image-size and --channels-mode apply to images; an array is used as its file has it")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"data.test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.stream == "always" and not loader.streams:
            raise ConfigError(f"--stream always reads folder, array and anndata data from disk; dataset "
                              f"{self.dataset!r} is read into memory")
        for name, (_, declared, owners) in declared_options(DATASETS).items():  # a loader's own option, elsewhere
            if self.dataset not in owners and getattr(self, name) != declared.default:
                raise ConfigError(f"data.{name} (--{name.replace('_', '-')}) applies to dataset "
                                  f"{' or '.join(map(repr, owners))}, not {self.dataset!r}")


@dataclass(**_SECTION)
class NetworkOptions(Section):
    """The encoder's and decoder's networks: declared once, keys of both the model and the guide section (one
    flag sets both)."""

    arch: str = option("mlp", "encoder and decoder networks", choices=ARCHS)
    hidden_dim: int = option(400, "width of the encoder's and decoder's hidden layers", above=0)
    num_hidden_layers: int = option(1, "MLP hidden layers of encoder and decoder (0: linear)", minimum=0)
    channels: int = option(32, "conv: channels after the first layer (doubled after the second)", above=0)
    activation: str = option("relu", "hidden-layer nonlinearity of encoder and decoder", choices=ACTIVATIONS)


@dataclass(**_SECTION)
class ModelConfig(NetworkOptions):
    """p(x, z): latent size, decoder network, likelihood and prior by name (and their options)."""

    SECTION = "model"
    COMPONENTS = {"likelihood": LIKELIHOODS, "prior": PRIORS}

    latent_dim: int = option(20, "size Z of the latent code", above=0)
    upsample: str = option("transposed", "conv decoder: transposed convolution or depth-to-space",
                           choices=Choices("upsampling", tuple(UPSAMPLERS)))
    likelihood: str = option("bernoulli", "p(x | z)", choices=LIKELIHOODS)
    prior: str = option("normal", "p(z)", choices=PRIORS)
    hierarchy: Optional[list[int]] = option(None, "stochastic layers below the top one (of --latent-dim units), "
                                            "from x up: '--hierarchy 100 --latent-dim 50' is Burda et al.'s two-layer "
                                            "VAE; each link has --num-hidden-layers layers twice as wide as the "
                                            "layer above it", metavar="UNITS")
    conditional: bool = option(False, "conditional VAE on the labels: p(x | z, y), q(z | x, y) (seed 002)")
    num_classes: int = option(10, "label classes of the conditional VAE", above=0)

    def check_rules(self):
        """Refuse the VampPrior with a conditional VAE (its pseudo-inputs carry no label)."""
        if self.conditional and self.prior == "vamp":
            raise ConfigError("the VampPrior's pseudo-inputs carry no label; use another prior with --conditional")


@dataclass(**_SECTION)
class GuideConfig(NetworkOptions):
    """q(z | x): guide by name (and its options) and its encoder network."""

    SECTION = "guide"
    COMPONENTS = {"guide": GUIDES}

    guide: str = option("diagonal_normal", "q(z | x)", choices=GUIDES)
    corruption: str = option("none", "denoising: corrupt the encoder's input by masking or Gaussian noise",
                             choices=Choices("corruption", tuple(CORRUPTIONS)))
    corruption_level: float = option(0.3, "masking probability, or the noise's standard deviation", minimum=0)
    hierarchy_guide: str = option("bottom_up", "a --hierarchy's guide: bottom_up, q(z1|x) q(z2|z1) (Burda et al. "
                                  "2015), or ladder, top-down along the model's own layers (Sonderby et al. 2016)",
                                  choices=Choices("hierarchy guide", HIERARCHY_GUIDES))

    def check_rules(self):
        """Refuse a ``corruption_level`` outside [0, 1) for masking or below 0 for noise."""
        if not 0 <= self.corruption_level < (1 if self.corruption == "mask" else float("inf")):
            raise ConfigError(f"guide.corruption_level must be in [0, 1) for masking and >= 0 for noise, "
                              f"got {self.corruption_level}")


@dataclass(**_SECTION)
class ObjectiveConfig(Section):
    """The loss SVI minimizes, by name (``pyro_vae.inference.objectives``), and its settings (each objective's own
    ``Config``)."""

    SECTION = "objective"
    COMPONENTS = {"name": OBJECTIVES}

    name: str = option("elbo", "the loss SVI minimizes (see docs/guide/objectives.md)", flag="--objective",
                       choices=OBJECTIVES)

    def check_rules(self):
        """Refuse an option set away from its default that the chosen objective does not use."""
        misplaced = misplaced_options(self)
        if misplaced:
            own = [f.name for f in fields(OBJECTIVES.get(self.name).Config)]
            raise ConfigError(f"objective.{misplaced[0]} does not apply to objective {self.name!r}; its options are "
                              f"{', '.join(own)} (each objective's own config: inference/objectives/)")


@dataclass(**_SECTION)
class TrainConfig(Section):
    """SVI: epochs, minibatch, Adam learning rate, seed, device and engine (a name of ``ENGINES``, whose classes
    are loaded when training starts: ``pyro_vae.inference.engine_names``)."""

    SECTION = "train"

    epochs: int = option(10, "passes over the training set", above=0)
    batch_size: int = option(128, "minibatch size B (the data plate scales the batch by N / B)", above=0)
    lr: float = option(1e-3, "Adam learning rate", above=0)
    seed: int = option(0, "seeds initialization, data order and every draw", minimum=0, maximum=SEED_MAX)
    device: str = option("auto", "where to train (auto: CUDA when present)", choices=DEVICES)
    eval_batch_size: int = option(1000, "test points per evaluation pass", above=0)
    clip_norm: Optional[float] = option(None, "clip each parameter's gradient to this norm (Pyro's clip_args rule)",
                                        above=0)
    compile: str = option("auto", "SVI engine: off (Pyro's interpreter), trace (captured graph), inductor "
                          "(compiled), auto (inductor for long runs, else trace)", choices=ENGINES)
    cuda_graph: bool = option(True, "on CUDA, step eagerly instead of replaying each step (loss, gradients, "
                              "Adam) as one recorded CUDA graph", negated="--no-cuda-graph")
    data_placement: str = option("auto", "training images on the device, or streamed from pinned host memory "
                                 "(auto: on the device when they take under half its free memory)",
                                 choices=PLACEMENTS)


# The autoencoder family of seeds 000 and 002, each a (model, guide, objective) setting (``vae train --family``).
FAMILIES: dict[str, dict[str, dict[str, Any]]] = {
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
    one_of("family", family, FAMILIES)
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

    SECTIONS: ClassVar[dict[str, type[Section]]] = {
        "data": DataConfig, "model": ModelConfig, "guide": GuideConfig, "objective": ObjectiveConfig,
        "train": TrainConfig}

    def to_dict(self) -> dict:
        """The config as JSON-ready values, one dict per section (what ``config.json`` holds)."""
        return {name: getattr(self, name).to_dict() for name in self.SECTIONS}

    @classmethod
    def from_dict(cls, raw: Any) -> "RunConfig":
        """The config ``raw`` describes (a ``config.json``, a config file, the flags), checked and resolved."""
        if not isinstance(raw, dict):
            raise ConfigError("a run config must be a JSON object with sections data, model, guide, objective, train")
        unknown = sorted(set(raw) - set(cls.SECTIONS))
        if unknown:
            raise ConfigError(f"config has unknown section {unknown[0]!r}; known: {', '.join(cls.SECTIONS)}")
        return cls(**{name: sec.from_dict(raw.get(name, {}), name) for name, sec in cls.SECTIONS.items()}).validate()

    def copy(self) -> "RunConfig":
        """A new config with the same values (each section copied)."""
        return type(self)(**{name: getattr(self, name).copy() for name in self.SECTIONS})

    def validate(self) -> "RunConfig":
        """A checked copy of this config with its defaults resolved (``binarize: auto`` from the likelihood):
        every option's choices and bounds, then every pairing of components, refused in one line. ``self`` is
        left as it is; a config this returned is not checked again (``checked``)."""
        if self.checked:
            return self
        config = self.copy()
        for name in self.SECTIONS:
            getattr(config, name).validate()
        config._check_likelihood_matches_data()
        config._check_prior_matches_guide()
        config._check_objective_matches_components()
        if config.model.conditional and DATASETS.get(config.data.dataset).labels is False:
            raise ConfigError(f"dataset {config.data.dataset!r} has no labels, which a conditional VAE is trained on; "
                              f"drop --conditional or use labelled data")
        check_hierarchy(config)
        config._checked_as = config.to_dict()  # type: ignore[attr-defined]  # a stamp, not a field
        return config

    @property
    def checked(self) -> bool:
        """Returned by ``validate`` and unchanged since."""
        return getattr(self, "_checked_as", None) == self.to_dict()

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
        binarized, images = data.binarize != "none", DATASETS.get(data.dataset).images
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
        """``to_dict`` as indented JSON with sorted keys."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def load(cls, path: Path) -> "RunConfig":
        """The config in the JSON file ``path`` (a run folder's ``config.json``: a regular file, not a link), checked
        by ``from_dict``.

        A missing, unreadable or damaged file is a ``UserError`` that names it.
        """
        from pyro_vae.inference.runs.paths import read_regular
        from pyro_vae.inference.runs.json_checks import MAX_JSON_BYTES, parse_json

        text = read_regular(Path(path), MAX_JSON_BYTES)
        if text is None:
            raise UserError(f"no config file at {path}; is this a run folder written by 'vae train'?")
        raw = parse_json(text, Path(path))
        if not isinstance(raw, dict):
            raise UserError(f"{path} is damaged: it holds no object of config sections; restore it, or train the "
                            f"run again")
        try:
            return cls.from_dict(raw)
        except ConfigError as err:
            raise UserError(f"{path} is damaged: {err}; restore it, or train the run again") from None
