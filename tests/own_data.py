"""Data the own-data tests make: image folders, torchvision-layout colour sets, arrays."""
import pickle

import numpy as np

from pyro_vae.inference.data.folders import write_image_folder

CLASSES = ("circle", "square", "stripes")


def shapes(n: int, channels: int, size: int = 16, seed: int = 0):
    """n uint8 images (n, C, size, size) of three drawn classes with noise, and their labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    yy, xx = np.mgrid[:size, :size]
    masks = [(yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2,
             (abs(yy - size / 2) < size / 4) & (abs(xx - size / 2) < size / 4), (yy // 2) % 2 == 0]
    images = rng.integers(0, 60, (n, channels, size, size)).astype(np.uint8)
    for i, label in enumerate(labels):
        colour = rng.integers(120, 256, channels)
        images[i][:, masks[label]] = colour[:, None]
    return images, labels


def image_folder(root, n_train=150, n_test=50, channels=3, size=16, classes=True, fmt="png"):
    """root/train and root/test of PNGs (in class folders when ``classes``)."""
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        images, labels = shapes(n, channels, size, seed)
        write_image_folder(root / split, images, labels if classes else None, CLASSES, fmt)
    return root


def cifar10(root, n_train=100, n_test=40):
    """torchvision's CIFAR-10 layout: five pickled training batches and a test batch."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    images, labels = shapes(n_train + n_test, 3, 32)
    per = n_train // 5
    batches = [(f"data_batch_{i + 1}", slice(i * per, (i + 1) * per)) for i in range(5)]
    for name, part in batches + [("test_batch", slice(n_train, n_train + n_test))]:
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": images[part].reshape(-1, 3072), "labels": labels[part].tolist()}, fh)
    return root, images, labels


def svhn(root, n_train=60, n_test=20):
    from scipy.io import savemat

    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, n, seed in (("train_32x32.mat", n_train, 0), ("test_32x32.mat", n_test, 1)):
        images, labels = shapes(n, 3, 32, seed)
        stored = np.where(labels == 0, 10, labels)  # SVHN stores the digit 0 as 10
        savemat(root / name, {"X": images.transpose(2, 3, 1, 0), "y": stored[:, None]})
        out[name] = (images, labels)
    return root, out


def celeba(root, n=12, size=(20, 16)):
    """celeba/img_align_celeba/*.jpg and list_eval_partition.txt (0 train, 1 valid, 2 test)."""
    from PIL import Image

    folder = root / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        name = f"{i + 1:06d}.jpg"
        Image.fromarray(rng.integers(0, 256, (*size, 3)).astype(np.uint8)).save(folder / name)
        lines.append(f"{name} {i % 3}")
    (root / "celeba" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return root


def low_rank_counts(n=2000, d=40, rank=2, theta=3.0, seed=0):
    """Counts from a known negative-binomial model: z ~ N(0, I_rank), mu = exp(W z + b), x ~ NB(mu, theta).
    Returns (x, W, b)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.7, (rank, d))
    b = rng.uniform(0.5, 2.0, d)
    z = rng.normal(size=(n, rank))
    mu = np.exp(z @ w + b)
    x = rng.negative_binomial(theta, theta / (theta + mu))
    return x.astype(np.int64), w, b
