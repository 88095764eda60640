"""Config dataclasses, one per component, that round-trip to JSON (as pythae).

``RunConfig.from_dict`` validates types, ranges and registry names before
anything is built, so a hand-edited ``config.json`` fails with a clear message.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from guides import GUIDES
from guides.corruption import CORRUPTIONS
from models import LIKELIHOODS, PRIORS
from models.likelihoods import BINARY, EIGHT_BIT
from models.conv import UPSAMPLERS
from models.networks import ACTIVATIONS as NETWORK_ACTIVATIONS

from .errors import UserError
from .objectives import OBJECTIVES, SCHEDULES

DATASETS = ("mnist-embedded", "mnist", "fashion-mnist", "kmnist", "idx")
BINARIZATIONS = ("dynamic", "static", "none")
DEVICES = ("auto", "cpu", "cuda")
COMPILE_MODES = ("auto", "off", "trace", "inductor")
PLACEMENTS = ("auto", "device", "host")  # auto: on the device when the images take under half its free memory  # SVI engines (inference/fast_trainer.py)
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
        obj = cls(**values)
        obj.validate()
        return obj

    def validate(self) -> None:
        pass


def _positive(where: str, **values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ConfigError(f"{where}.{name} must be positive, got {value}")


def _check_network(where: str, arch: str, hidden_dim: int, num_hidden_layers: int, activation: str) -> None:
    _positive(where, hidden_dim=hidden_dim)
    if arch not in ARCHS:
        raise ConfigError(f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHS)}")
    if num_hidden_layers < 0:
        raise ConfigError(f"{where}.num_hidden_layers must be >= 0, got {num_hidden_layers}")
    if activation not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {activation!r}; choose one of: {', '.join(ACTIVATIONS)}")


@dataclass
class DataConfig(_Section):
    """Which images, and how grey levels become observations."""

    dataset: str = "mnist-embedded"
    data_dir: Optional[str] = None
    binarize: str = "dynamic"

    def validate(self):
        if self.dataset not in DATASETS:
            raise ConfigError(f"unknown dataset {self.dataset!r}; choose one of: {', '.join(DATASETS)}")
        if self.binarize not in BINARIZATIONS:
            raise ConfigError(f"unknown binarization {self.binarize!r}; choose one of: {', '.join(BINARIZATIONS)}")
        if self.dataset == "idx" and not self.data_dir:
            raise ConfigError("dataset 'idx' needs --data-dir, a folder of IDX .gz files")


@dataclass
class ModelConfig(_Section):
    """p(x, z): latent size, decoder MLP, likelihood and prior by name."""

    latent_dim: int = 20
    arch: str = "mlp"  # "mlp" or "conv"
    hidden_dim: int = 400  # MLP width
    num_hidden_layers: int = 1
    channels: int = 32  # conv: channels after the first layer (doubled after the second)
    upsample: str = "transposed"  # conv decoder: "transposed" or "pixel_shuffle"
    activation: str = "relu"
    likelihood: str = "bernoulli"
    likelihood_scale: float = 1.0  # sigma of "gaussian", b of "laplace", initial sigma of learned ones
    prior: str = "normal"
    prior_components: int = 10  # K of "mog" and "vamp"
    prior_flows: int = 2  # autoregressive layers of "flow"
    conditional: bool = False  # the conditional VAE: p(x | z, y), q(z | x, y) (seed 002)
    num_classes: int = 10

    def validate(self):
        _check_network("model", self.arch, self.hidden_dim, self.num_hidden_layers, self.activation)
        _positive("model", channels=self.channels)
        if self.upsample not in UPSAMPLERS:
            raise ConfigError(f"unknown upsampling {self.upsample!r}; choose one of: {', '.join(UPSAMPLERS)}")
        _positive("model", latent_dim=self.latent_dim, likelihood_scale=self.likelihood_scale,
                  prior_components=self.prior_components, prior_flows=self.prior_flows,
                  num_classes=self.num_classes)
        if self.conditional and self.prior == "vamp":
            raise ConfigError("the VampPrior's pseudo-inputs carry no label; use another prior with --conditional")
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(f"unknown likelihood {self.likelihood!r}; choose one of: {', '.join(LIKELIHOODS)}")
        if self.prior not in PRIORS:
            raise ConfigError(f"unknown prior {self.prior!r}; choose one of: {', '.join(PRIORS)}")


@dataclass
class GuideConfig(_Section):
    """q(z | x): guide by name and its encoder MLP."""

    guide: str = "diagonal_normal"
    arch: str = "mlp"
    hidden_dim: int = 400
    num_hidden_layers: int = 1
    channels: int = 32
    activation: str = "relu"
    flows: int = 2  # inverse autoregressive layers of the "iaf" guide
    min_scale: float = 1e-5  # floor on the guide's standard deviations
    corruption: str = "none"  # denoising: none, mask or gaussian corruption of the encoder's input
    corruption_level: float = 0.3  # masking probability, or the noise's standard deviation

    def validate(self):
        _check_network("guide", self.arch, self.hidden_dim, self.num_hidden_layers, self.activation)
        if self.corruption not in CORRUPTIONS:
            raise ConfigError(f"unknown corruption {self.corruption!r}; choose one of: {', '.join(CORRUPTIONS)}")
        if not 0 <= self.corruption_level < (1 if self.corruption == "mask" else float("inf")):
            raise ConfigError(f"guide.corruption_level must be in [0, 1) for masking and >= 0 for noise, "
                              f"got {self.corruption_level}")
        _positive("guide", channels=self.channels)
        _positive("guide", flows=self.flows, min_scale=self.min_scale)
        if self.guide not in GUIDES:
            raise ConfigError(f"unknown guide {self.guide!r}; choose one of: {', '.join(GUIDES)}")


@dataclass
class ObjectiveConfig(_Section):
    """The loss SVI minimizes, by name (``inference.objectives``), and its settings."""

    name: str = "elbo"
    num_particles: int = 1  # L samples of the ELBO, or k of the IWAE bound
    beta: float = 1.0
    analytic_kl: bool = True
    free_bits: float = 0.0  # nats per latent dimension
    kl_schedule: str = "constant"
    warmup_steps: int = 0
    dreg: bool = False
    contractive_weight: float = 0.1  # lambda of the contractive penalty
    adversarial_lr: float = 1e-3  # Adam (beta1 = 0.5) of the AAE's discriminator and generator steps
    discriminator_steps: int = 5  # AAE discriminator steps per minibatch

    def validate(self):
        if self.name not in OBJECTIVES:
            raise ConfigError(f"unknown objective {self.name!r}; choose one of: {', '.join(OBJECTIVES)}")
        _positive("objective", num_particles=self.num_particles, beta=self.beta, adversarial_lr=self.adversarial_lr,
                  discriminator_steps=self.discriminator_steps)
        if self.contractive_weight < 0:
            raise ConfigError(f"objective.contractive_weight must be >= 0, got {self.contractive_weight}")
        if self.free_bits < 0 or self.warmup_steps < 0:
            raise ConfigError("objective.free_bits and objective.warmup_steps must be >= 0")
        if self.kl_schedule not in SCHEDULES:
            raise ConfigError(f"unknown KL schedule {self.kl_schedule!r}; choose one of: {', '.join(SCHEDULES)}")
        beta_only = self.beta != 1.0 or self.free_bits > 0 or self.kl_schedule != "constant" or self.warmup_steps
        if beta_only and self.name != "beta":
            raise ConfigError(f"beta, free bits and KL schedules apply to objective 'beta', not {self.name!r}")
        if self.dreg and self.name != "iwae":
            raise ConfigError("DReG gradients apply to objective 'iwae'")


@dataclass
class TrainConfig(_Section):
    """SVI: epochs, minibatch, Adam learning rate, seed and device."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    eval_batch_size: int = 1000
    clip_norm: Optional[float] = None  # gradient-norm clipping (Pyro's clip_args)
    compile: str = "auto"  # SVI engine: off (Pyro's SVI), trace, inductor, auto (inference/fast_trainer.py)
    data_placement: str = "auto"  # training images on the device, or streamed from pinned host memory

    def validate(self):
        _positive("train", epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                  eval_batch_size=self.eval_batch_size)
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise ConfigError(f"train.clip_norm must be positive, got {self.clip_norm}")
        if self.device not in DEVICES:
            raise ConfigError(f"unknown device {self.device!r}; choose one of: {', '.join(DEVICES)}")
        if self.data_placement not in PLACEMENTS:
            raise ConfigError(f"unknown data placement {self.data_placement!r}; choose one of: {', '.join(PLACEMENTS)}")
        if self.compile not in COMPILE_MODES:
            raise ConfigError(f"unknown compile mode {self.compile!r}; choose one of: {', '.join(COMPILE_MODES)}")


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
    """``raw`` (a RunConfig dict) with the family's settings laid over it."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown family {family!r}; choose one of: {', '.join(FAMILIES)}")
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
        return self

    def _check_likelihood_matches_data(self) -> None:
        kind, name, binarized = LIKELIHOODS.get(self.model.likelihood).data, self.model.likelihood, \
            self.data.binarize != "none"
        if kind == BINARY and not binarized:
            raise ConfigError(f"likelihood {name!r} models binary pixels but --binarize is 'none'; use --binarize "
                              f"dynamic or static, or --likelihood continuous_bernoulli for grey levels")
        if kind == EIGHT_BIT and binarized:
            raise ConfigError(f"likelihood {name!r} models 8-bit grey levels; use --binarize none")

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
