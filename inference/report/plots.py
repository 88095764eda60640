"""Plots of a trained run, PNG in its folder (matplotlib and ``torchvision`` grids, written atomically).

- ``curves.png``: train objective and test ELBO, test distortion D and rate R, per epoch;
- ``latent_space.png``: the test codes coloured by label (2-D codes directly, otherwise their first two
  principal components; 1-D codes against their labels);
- ``manifold.png`` (2-D codes only): E[x | z] over a grid of z = Phi^{-1}(u), u uniform in (0, 1)^2
  (Kingma & Welling 2014, Fig. 4);
- ``interpolations.png``: each row a test image, E[x | z] along the line between its code and another
  image's code, then that image;
- ``neighbours.png``: each row a prior sample E[x | z], z ~ p(z), then its nearest training images in
  pixel space (a sample that equals its neighbour is memorized, not generated).

Manifold, interpolations and neighbours are drawn for image data only.
"""
from __future__ import annotations

from pathlib import Path

import torch

from pyro_vae.inference.evaluate.autoencoders import codes
from pyro_vae.inference.evaluate.elbo import evaluation_mode
from pyro_vae.inference.report.images import decoded, prior_samples, pyplot, save_figure, save_grid
from pyro_vae.inference.param_state import in_run_store

from pyro_vae.inference.runs.layout import CURVES, INTERPOLATIONS, LATENT, MANIFOLD, NEIGHBOURS, PLOTS  # noqa: F401


def training_curves(metrics: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    epochs = [m["epoch"] for m in metrics]
    left.plot(epochs, [m["train_objective"] for m in metrics], "o-", label="train objective (−loss / N)")
    left.plot(epochs, [m["test_elbo"] for m in metrics], "s-", label="test ELBO")
    left.set(xlabel="epoch", ylabel="nats per image", title="objective")
    right.plot(epochs, [m["test_distortion"] for m in metrics], "o-", label="distortion D")
    right.plot(epochs, [m["test_rate"] for m in metrics], "s-", label="rate R")
    right.set(xlabel="epoch", ylabel="nats per image", title="test distortion and rate")
    for ax in (left, right):
        ax.legend()
        ax.grid(alpha=0.3)
    save_figure(fig, path)


def principal_components(z: torch.Tensor, k: int = 2) -> torch.Tensor:
    """The rows of ``z`` projected on their top-k principal axes (SVD of the centred codes); fewer rows than k: the
    missing components are 0 (a test set of one point has none)."""
    centred = z.double() - z.double().mean(0)
    projected = centred @ torch.linalg.svd(centred, full_matrices=False)[2][:k].T
    return torch.cat([projected, projected.new_zeros(len(z), k - projected.shape[1])], 1).float()


def latent_space(run, path: Path, limit: int = 2000) -> None:
    x, labels = run.data.test_x[:limit], run.data.test_y[:limit]
    y = run.labels()
    with evaluation_mode(0, x.device, run.model, run.guide):
        z = codes(run.guide, x, None if y is None else y[:limit]).cpu()
    if z.shape[1] == 1:  # one code dimension: the codes against their labels (jittered)
        jitter = torch.rand(len(z), 1, generator=torch.Generator().manual_seed(0)) - 0.5
        shown = torch.cat([z, labels.cpu()[:, None] + 0.6 * jitter], 1)
    else:
        shown = z if z.shape[1] == 2 else principal_components(z)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    points = ax.scatter(shown[:, 0], shown[:, 1], c=labels.cpu(), cmap="tab10", s=6)
    fig.colorbar(points, ax=ax, label="label")
    axes = {1: ("z1", "label (jittered)"), 2: ("z1", "z2")}.get(z.shape[1], ("principal component 1",
                                                                          "principal component 2"))
    ax.set(xlabel=axes[0], ylabel=axes[1], title=f"test codes ({z.shape[1]}-D{', PCA' if z.shape[1] > 2 else ''})")
    save_figure(fig, path)


@torch.no_grad()
def manifold(run, path: Path, n: int = 20) -> None:
    u = torch.linspace(0.05, 0.95, n)
    grid_z = torch.distributions.Normal(0.0, 1.0).icdf(u)
    z = torch.stack(torch.meshgrid(grid_z, grid_z.flip(0), indexing="xy"), -1).reshape(-1, 2).to(run.device)
    save_grid(decoded(run.model, z, run.sample_label), path, nrow=n)


@torch.no_grad()
def interpolations(run, path: Path, pairs: int = 8, steps: int = 10) -> None:
    x = run.data.test_x
    pick = torch.linspace(0, x.shape[0] - 1, 2 * pairs, device=x.device).long()
    a, b = pick[:pairs], pick.flip(0)[:pairs]
    y = run.labels()
    ya = None if y is None else y[a]
    with evaluation_mode(0, x.device, run.model, run.guide):
        za, zb = codes(run.guide, x[a], ya), codes(run.guide, x[b], None if y is None else y[b])
    t = torch.linspace(0, 1, steps, device=x.device)[:, None, None]
    path_z = (1 - t) * za + t * zb  # (steps, pairs, Z)
    between = run.model.decode_mean(path_z.reshape(-1, za.shape[1]), None if ya is None else ya.repeat(steps))
    between = between.reshape(steps, pairs, *x.shape[1:]).transpose(0, 1)
    rows = torch.cat([x[a][:, None], between, x[b][:, None]], 1)
    save_grid(rows.reshape(-1, *x.shape[1:]), path, nrow=steps + 2)


@torch.no_grad()
def nearest_training_images(images: torch.Tensor, train: torch.Tensor, k: int = 5) -> torch.Tensor:
    """(n, k) indices of the k training images nearest each image in Euclidean pixel distance."""
    flat = images.flatten(1).to(train.device, train.dtype)
    dist = torch.cat([torch.cdist(flat, chunk.flatten(1)) for chunk in train.split(10_000)], 1)
    return dist.topk(min(k, train.shape[0]), largest=False).indices  # a tiny training set: all of it


@torch.no_grad()
def nearest_neighbours(run, path: Path, n: int = 8, k: int = 5) -> None:
    samples = prior_samples(run.model, n, run.config.train.seed, run.sample_label)
    train = run.data.train_x
    nearest = nearest_training_images(samples, train, k)
    rows = torch.cat([samples[:, None].to(train.device, train.dtype), train[nearest]], 1)
    save_grid(rows.reshape(-1, *train.shape[1:]), path, nrow=nearest.shape[1] + 1)


@in_run_store
def write_plots(run, out: Path, metrics: list[dict]) -> list[Path]:
    """Every plot that applies to ``run`` into ``out``; the paths written."""
    out = Path(out)
    written = [out / CURVES, out / LATENT]
    training_curves(metrics, out / CURVES)
    latent_space(run, out / LATENT)
    if not run.data.is_image:  # the rest are pictures of decoded images
        return written
    interpolations(run, out / INTERPOLATIONS)
    written.append(out / INTERPOLATIONS)
    if run.can_sample:
        nearest_neighbours(run, out / NEIGHBOURS)
        written.append(out / NEIGHBOURS)
        if run.model.latent_dim == 2:  # the codes the decoder reads (z_1 of a hierarchy)
            manifold(run, out / MANIFOLD)
            written.append(out / MANIFOLD)
    return written
