"""What several test modules share: the repository's paths, the ``vae`` command in a subprocess and in this
process, and the files the tests write (IDX folders, a pickle that would run code). Fixtures live in
``conftest.py``; no test module imports another."""
import gzip
import os
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"  # run folders written by earlier releases
VAE = [sys.executable, "-m", "pyro_vae.inference.cli"]
TINY = {"model": {"latent_dim": 2, "hidden_dim": 64}, "guide": {"hidden_dim": 64}, "train": {"epochs": 2}}  # a run in seconds


def run_vae(*args, cwd=None, timeout=600):
    """The real ``vae`` command in a subprocess (what a user types)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([*VAE, *map(str, args)], cwd=cwd or ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def refuse(capsys, argv):
    """``vae ARGV`` in this process refuses: exit status 2 and one line ``vae: error: ...``, no traceback.
    Returns that line."""
    from pyro_vae.inference.cli.main import main

    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vae: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if path.suffix == ".gz" else open)(path, "wb").write(data)


def write_folder(folder: Path, n_train=30, n_test=10, seed=0):
    """A folder of the four IDX files (random 28 x 28 images and labels); the arrays written."""
    from pyro_vae.inference.data.datasets import IDX_FILES

    rng = np.random.default_rng(seed)
    arrays = {"train_images": rng.integers(0, 256, (n_train, 28, 28)), "train_labels": rng.integers(0, 10, n_train),
              "test_images": rng.integers(0, 256, (n_test, 28, 28)), "test_labels": rng.integers(0, 10, n_test)}
    for key, fname in IDX_FILES.items():
        write_idx(folder / fname, arrays[key])
    return arrays


class RunsCode:
    """A pickled object whose unpickling would create the file ``marker``: code a checkpoint must not run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling would create the marker file


def same_weights(a, b) -> bool:
    """Two saved ``weights.pt`` states hold equal model and guide tensors."""
    import torch

    return all(torch.equal(a[part][k], b[part][k]) for part in ("model", "guide") for k in a[part])


def vae_main(capsys, *args) -> tuple[int, str, str]:
    """``vae ARGS`` in this process (the same ``main`` the command runs): status, stdout, stderr."""
    from pyro_vae.inference.cli.main import main

    capsys.readouterr()
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


class PageImages(HTMLParser):
    """The ``src`` of every <img> of an HTML page, and every link (href, src) that is not a data: URI."""

    def __init__(self):
        super().__init__()
        self.sources, self.links = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.sources.append(attrs["src"])
        self.links += [v for k, v in attrs.items() if k in ("href", "src") and not v.startswith("data:")]


def tiny_run_config():
    """A one-epoch run of a 2-D code on the interpreter (the run-lock tests' runs)."""
    from pyro_vae.inference import RunConfig

    return RunConfig.from_dict({"model": {"latent_dim": 2, "hidden_dim": 16}, "guide": {"hidden_dim": 16},
                                "train": {"epochs": 1, "compile": "off"}})


def trained_tiny_run(out):
    """A one-epoch tiny run in ``out`` (``tiny_run_config``)."""
    from pyro_vae.inference.runs.folder import train_run

    train_run(tiny_run_config(), out, quiet=True, plots=False, tensorboard=False)
    return out
