"""Benchmark and README figures for your own data, in one run:

    python bench/own_data.py colour      # a conv VAE on a colour image folder: bits per dimension against PNG
    python bench/own_data.py counts      # count VAEs on known low-rank NB counts: log p(x) against the exact one
    python bench/own_data.py loading     # decoding a folder of PNGs: 1 process, all cores, then the cached load

``colour``: 32 x 32 patches cut from scikit-learn's two sample photographs (``china.jpg``, ``flower.jpg``) into
an image folder with one class folder per photograph; ``vae train --dataset folder --arch conv --likelihood
discretized_logistic_mixture``; the test set's importance-sampled -log2 p(x) per dimension set beside the size
of the same patches as lossless PNG files (bits per dimension), the reference a user's folder already has.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from pyro_vae.inference.cli.main import main as vae
from pyro_vae.inference.runs.files import write_json

RESULTS = Path("bench/results")


def sample_photo_patches(size: int = 32) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Non-overlapping size x size patches (N, 3, size, size) uint8 of scikit-learn's two sample photographs."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    patches, labels = [], []
    for label, photo in enumerate(photos.images):
        h, w = (photo.shape[0] // size) * size, (photo.shape[1] // size) * size
        grid = photo[:h, :w].reshape(h // size, size, w // size, size, 3).transpose(0, 2, 4, 1, 3)
        patches.append(grid.reshape(-1, 3, size, size))
        labels += [label] * len(patches[-1])
    return np.concatenate(patches), np.array(labels), [Path(f).stem for f in photos.filenames]


def write_patch_folder(folder: Path, test_share: float = 0.15, seed: int = 0) -> tuple[int, int]:
    from pyro_vae.inference.data.folders import write_image_folder

    images, labels, classes = sample_photo_patches()
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = int(round(test_share * len(images)))
    for split, idx in (("test", order[:n_test]), ("train", order[n_test:])):
        write_image_folder(folder / split, images[idx], labels[idx], classes)
    return len(images) - n_test, n_test


def png_bits_per_dim(folder: Path) -> float:
    files = sorted((folder / "test").rglob("*.png"))
    from PIL import Image

    dims = sum(np.prod(np.asarray(Image.open(f)).shape) for f in files)
    return 8 * sum(f.stat().st_size for f in files) / dims


def colour(out: Path, epochs: int, iw_samples: int) -> dict:
    folder = out / "patches"
    shutil.rmtree(folder, ignore_errors=True)
    n_train, n_test = write_patch_folder(folder)
    run = out / "run"
    start = time.perf_counter()
    assert vae(["train", "--dataset", "folder", "--data-dir", str(folder), "--arch", "conv", "--likelihood",
                "discretized_logistic_mixture", "--epochs", str(epochs), "--batch-size", "32", "--lr", "2e-3",
                "--latent-dim", "32", "--quiet", "--out", str(run), "--force", "--device", "cpu"]) == 0
    seconds = time.perf_counter() - start
    assert vae(["evaluate", str(run), "--iw-samples", str(iw_samples), "--json", str(out / "evaluation.json")]) == 0
    figures = json.loads((out / "evaluation.json").read_text())
    return {"train_images": n_train, "test_images": n_test, "epochs": epochs, "train_seconds": seconds,
            "iw_samples": iw_samples, "vae_bits_per_dim": figures["log_likelihood"]["neg_log_likelihood_bits_per_dim"],
            "neg_elbo_bits_per_dim": figures["elbo"]["neg_elbo_bits_per_dim"],
            "png_bits_per_dim": png_bits_per_dim(folder), "uniform_bits_per_dim": 8.0,
            "command": f"vae train --dataset folder --data-dir {folder} --arch conv --likelihood "
                       f"discretized_logistic_mixture --epochs {epochs} --batch-size 32 --lr 2e-3 --latent-dim 32"}


def counts(out: Path, epochs: int, iw_samples: int) -> dict:
    from pyro_vae.inference.experiments.count_recovery import recovery

    return recovery(out, train=3000, test=500, epochs=epochs, iw_samples=iw_samples)


def loading(out: Path, images: int) -> dict:
    """Seconds to read a folder of ``images`` 32 x 32 colour PNGs: decoded by one process, by all cores, then
    from the uint8 cache the first pass wrote."""
    from pyro_vae.inference.config.sections import DataConfig
    from pyro_vae.inference.data import images as image_io
    from pyro_vae.inference.data.loaders import load_dataset
    from pyro_vae.inference.data.folders import write_image_folder

    folder = out / "many"
    shutil.rmtree(folder, ignore_errors=True)
    patches, _, _ = sample_photo_patches()
    reps = -(-images // len(patches))
    tiled = np.concatenate([np.roll(patches, k, axis=2) for k in range(reps)])[:images]
    for split, part in (("train", tiled[: images * 9 // 10]), ("test", tiled[images * 9 // 10:])):
        write_image_folder(folder / split, part)
    config = DataConfig(dataset="folder", data_dir=str(folder))
    timings = {}
    for name, threads in (("decode_1_process", 1), ("decode_all_cores", image_io.workers())):
        shutil.rmtree(folder / image_io.CACHE_FOLDER, ignore_errors=True)
        original = image_io.workers
        image_io.workers = lambda: threads
        start = time.perf_counter()
        load_dataset(config)
        timings[name] = time.perf_counter() - start
        image_io.workers = original
    start = time.perf_counter()
    load_dataset(config)
    timings["cached"] = time.perf_counter() - start
    base = timings["decode_1_process"]
    return {"images": images, "cores": os.cpu_count(), "seconds": timings,
            "speedup_vs_1_process": {k: base / v for k, v in timings.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("colour", "counts", "loading"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/own_data_bench"))
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--iw-samples", type=int, default=1000)
    parser.add_argument("--images", type=int, default=20000, help="loading: PNG files to write and read")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.what == "colour":
        result = colour(args.out / "colour", args.epochs or 60, args.iw_samples)
    elif args.what == "counts":
        result = counts(args.out / "counts", args.epochs or 60, args.iw_samples)
    else:
        result = loading(args.out / "loading", args.images)
    path = RESULTS / f"own_data_{args.what}.json"
    write_json(path, result)
    print(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
