"""Bring your own data: image folders, torchvision's colour sets in its layout, arrays; each checked against
the files the test wrote (pixel for pixel), and each bad input refused in one line."""
from pathlib import Path

import numpy as np
import pytest
import torch

from pyro_vae.inference import RunConfig, UserError
from pyro_vae.inference.config.sections import DataConfig
from pyro_vae.inference.data import images as image_io
from pyro_vae.inference.data.loaders import load_dataset
from pyro_vae.inference.runs.run import load_run_data

from tests import own_data


def _data(**fields):
    return load_dataset(DataConfig(**fields))


def test_a_colour_folder_with_classes_reads_back_pixel_for_pixel(tmp_path):
    own_data.image_folder(tmp_path / "f", n_train=30, n_test=10)
    data = _data(dataset="folder", data_dir=str(tmp_path / "f"))
    assert data.train_x.shape == (30, 3, 16, 16) and data.test_x.shape == (10, 3, 16, 16)
    assert data.labelled and data.classes == own_data.CLASSES
    images, labels = own_data.shapes(30, 3, 16, seed=0)
    order = np.argsort([own_data.CLASSES[label] for label in labels], kind="stable")  # files are read class by class
    assert torch.equal(data.train_x, torch.from_numpy(images[order]).float() / 255)
    assert torch.equal(data.train_y, torch.from_numpy(labels[order]))


def test_a_grey_folder_without_classes_is_one_channel_and_unlabelled(tmp_path):
    own_data.image_folder(tmp_path / "g", n_train=20, n_test=5, channels=1, classes=False)
    data = _data(dataset="folder", data_dir=str(tmp_path / "g"))
    assert data.train_x.shape == (20, 1, 16, 16) and not data.labelled
    images, _ = own_data.shapes(20, 1, 16, seed=0)
    assert torch.equal(data.train_x, torch.from_numpy(images).float() / 255)


def test_channels_mode_and_image_size_convert_as_asked(tmp_path):
    own_data.image_folder(tmp_path / "f", n_train=12, n_test=4)
    grey = _data(dataset="folder", data_dir=str(tmp_path / "f"), channels_mode="grey", image_size=[8, 12])
    assert grey.train_x.shape == (12, 1, 8, 12)
    assert torch.equal(grey.train_x * 255, (grey.train_x * 255).round())  # still 8-bit levels
    colour = _data(dataset="mnist-embedded", channels_mode="rgb", image_size=[32, 32])
    assert colour.train_x.shape[1:] == (3, 32, 32)
    assert torch.equal(colour.train_x[:, 0], colour.train_x[:, 2])


def test_the_second_load_comes_from_the_cache_and_a_changed_file_decodes_again(tmp_path, monkeypatch):
    folder = own_data.image_folder(tmp_path / "f", n_train=12, n_test=4)
    first = _data(dataset="folder", data_dir=str(folder))
    assert list((folder / image_io.CACHE_FOLDER).glob("*.npz"))

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(image_io, "decode", no_decoding)
    assert torch.equal(_data(dataset="folder", data_dir=str(folder)).train_x, first.train_x)
    monkeypatch.undo()
    victim = sorted((folder / "test").rglob("*.png"))[0]
    from PIL import Image

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(victim)
    again = _data(dataset="folder", data_dir=str(folder))
    assert not torch.equal(again.test_x, first.test_x)


def test_cifar10_files_in_torchvision_layout(tmp_path):
    root, images, labels = own_data.cifar10(tmp_path / "c")
    data = _data(dataset="cifar10", data_dir=str(root))
    assert data.train_x.shape == (100, 3, 32, 32) and data.test_x.shape == (40, 3, 32, 32)
    assert torch.equal(data.test_x, torch.from_numpy(images[100:]).float() / 255)
    assert torch.equal(data.train_y, torch.from_numpy(labels[:100])) and data.classes[0] == "airplane"


def test_svhn_files_in_torchvision_layout_map_label_10_to_0(tmp_path):
    root, held = own_data.svhn(tmp_path / "s")
    data = _data(dataset="svhn", data_dir=str(root))
    images, labels = held["train_32x32.mat"]
    assert torch.equal(data.train_x, torch.from_numpy(images).float() / 255)
    assert torch.equal(data.train_y, torch.from_numpy(labels))


def test_celeba_layout_uses_the_partition_file_and_resizes(tmp_path):
    root = own_data.celeba(tmp_path / "a")
    data = _data(dataset="celeba", data_dir=str(root), image_size=[8, 8])
    assert data.train_x.shape == (4, 3, 8, 8) and data.test_x.shape == (4, 3, 8, 8)  # partitions 0 and 2


def test_a_missing_colour_set_without_network_names_the_files(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def offline(root, *args, **kwargs):  # as torchvision does: the folder first, then the failed download
        Path(root).mkdir(parents=True, exist_ok=True)
        raise RuntimeError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(tvd, "CIFAR10", offline)
    with pytest.raises(UserError, match="cannot be downloaded .*cifar-10-batches-py/data_batch_1"):
        _data(dataset="cifar10", data_dir=str(tmp_path / "empty"))
    assert not (tmp_path / "empty").exists()  # nothing left behind by the failed download
    (tmp_path / "mine").mkdir()
    with pytest.raises(UserError, match="cannot be downloaded"):
        _data(dataset="cifar10", data_dir=str(tmp_path / "mine"))
    assert (tmp_path / "mine").is_dir()  # the user's own folder stays


def test_arrays_npz_npy_csv(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.poisson(3.0, (50, 7))
    np.savez(tmp_path / "a.npz", train_x=x[:40], test_x=x[40:], train_y=np.arange(40) % 2, test_y=np.arange(10) % 2)
    data = _data(dataset="array", data_dir=str(tmp_path / "a.npz"))
    assert torch.equal(data.train_x, torch.from_numpy(x[:40]).float()) and data.labelled
    np.save(tmp_path / "b.npy", x)
    split = _data(dataset="array", data_dir=str(tmp_path / "b.npy"), test_fraction=0.2)
    assert split.train_x.shape == (40, 7) and split.test_x.shape == (10, 7) and not split.labelled
    rows = {tuple(r) for r in torch.cat([split.train_x, split.test_x]).int().tolist()}
    assert rows == {tuple(r) for r in x.tolist()}  # a partition of the rows
    assert torch.equal(_data(dataset="array", data_dir=str(tmp_path / "b.npy"), test_fraction=0.2).test_x, split.test_x)
    (tmp_path / "c.csv").write_text("a,b,c\n" + "\n".join(",".join(map(str, r)) for r in x[:, :3].tolist()) + "\n")
    table = _data(dataset="array", data_dir=str(tmp_path / "c.csv"))
    assert table.train_x.shape[1] == 3 and table.train_x.shape[0] + table.test_x.shape[0] == 50
    np.save(tmp_path / "img.npy", rng.random((20, 2, 4, 4)).astype(np.float32))
    assert _data(dataset="array", data_dir=str(tmp_path / "img.npy")).event_shape == (2, 4, 4)


def test_standardize_is_undone_by_original(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(5.0, 3.0, (200, 4)).astype(np.float32)
    np.save(tmp_path / "r.npy", x)
    cfg = RunConfig.from_dict({"data": {"dataset": "array", "data_dir": str(tmp_path / "r.npy"), "standardize": True},
                               "model": {"likelihood": "gaussian"}})
    data = load_run_data(cfg)
    assert torch.allclose(data.train_x.mean(0), torch.zeros(4), atol=1e-5)
    assert torch.allclose(data.train_x.std(0, unbiased=False), torch.ones(4), atol=1e-4)
    assert torch.allclose(data.original(data.test_x), load_dataset(cfg.data).test_x, atol=1e-5)


def test_binarize_auto_follows_the_likelihood():
    assert RunConfig.from_dict({}).data.binarize == "dynamic"
    assert RunConfig.from_dict({"model": {"likelihood": "gaussian"}}).data.binarize == "none"
    assert RunConfig.from_dict({"data": {"binarize": "static"}}).data.binarize == "static"


def test_a_network_built_for_one_channel_refuses_a_colour_image():
    from pyro_vae.inference import GuideConfig, build_guide

    for arch in ("mlp", "conv"):
        guide = build_guide(GuideConfig(arch=arch, hidden_dim=8, channels=4), 2, torch.Size([1, 8, 8]))
        with pytest.raises(ValueError, match=r"built for data of shape \(1, 8, 8\) \(grey images\), got \(3, 8, 8\)"):
            guide(torch.rand(5, 3, 8, 8))


def test_a_photo_is_turned_as_its_exif_orientation_says(tmp_path):
    from PIL import Image

    pixels = np.zeros((4, 8, 3), np.uint8)
    pixels[0, 0] = 255  # top-left red corner of a landscape picture
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(pixels).save(tmp_path / "p.jpg", exif=exif, quality=100)
    shown = image_io.decode(tmp_path / "p.jpg", 3)
    assert shown.shape == (3, 8, 4)  # portrait, as a viewer shows it
    assert shown[0, 0, -1] > 200  # the red corner is now top-right
