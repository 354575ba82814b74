"""ncsn.data.load: one entry point for names, files and folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datafiles import as_uint8, pixels, rgb, write_celeba, write_cifar_folder, write_idx
from PIL import Image

import ncsn.data as data
from ncsn.data import DataError, _mnist


def test_load_names(tmp_path, monkeypatch):
    x, y = data.load("digits")
    assert x.shape == (1500, 1, 8, 8) and y is not None
    assert data.load("digits", split="test")[0].shape == (297, 1, 8, 8)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    x, y = data.load("moons", num_samples=300, generator=g1)
    assert y is None and torch.equal(x, data.Moons().sample(300, generator=g2))
    assert data.load("rings")[0].shape == (10_000, 2)
    assert data.load("mixture", num_samples=8, dtype=torch.float64)[0].dtype == torch.float64
    # names win over a folder of the same name; ./digits is the folder
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits").mkdir()
    Image.fromarray(rgb(4, 4, 0)).save(tmp_path / "digits" / "a.png")
    assert data.load("digits")[0].shape == (1500, 1, 8, 8)
    assert data.load("./digits")[0].shape == (1, 3, 4, 4)


def test_load_files_and_folders(tmp_path):
    np.savez(tmp_path / "v.npz", x=np.ones((3, 2)), y=np.arange(3))
    x, y = data.load(tmp_path / "v.npz")
    assert x.shape == (3, 2) and y is not None and y.tolist() == [0, 1, 2]

    mnist = tmp_path / "mnist"
    mnist.mkdir()
    pixels = np.arange(2 * 28 * 28, dtype=np.int64).reshape(2, 28, 28).astype(np.uint8)
    write_idx(mnist / "train-images-idx3-ubyte.gz", pixels, gz=True)
    write_idx(mnist / "train-labels-idx1-ubyte.gz", np.array([7, 2], dtype=np.uint8), gz=True)
    x, y = data.load(str(mnist / "train-images-idx3-ubyte.gz"))  # finds the labels beside it
    assert np.array_equal(as_uint8(x)[:, 0], pixels) and y is not None and y.tolist() == [7, 2]
    x, y = data.load(mnist)
    assert x.shape == (2, 1, 28, 28) and y is not None and y.tolist() == [7, 2]

    write_cifar_folder(tmp_path / "cifar")
    assert data.load(tmp_path / "cifar")[0].shape == (15, 3, 32, 32)
    assert data.load(tmp_path / "cifar", split="test")[0].shape == (3, 3, 32, 32)
    x, y = data.load(tmp_path / "cifar" / "cifar-10-batches-py" / "test_batch")
    assert x.shape == (3, 3, 32, 32) and y is not None

    write_celeba(tmp_path / "celeba", [0, 1])
    x, y = data.load(tmp_path / "celeba")
    assert x.shape == (1, 3, 32, 32) and y is None
    assert data.load(tmp_path / "celeba", split="all", size=8)[0].shape == (2, 3, 8, 8)

    folder = tmp_path / "pictures"
    folder.mkdir()
    Image.fromarray(rgb(9, 9, 0)).save(folder / "a.png")
    assert data.load(folder, crop=5, size=4)[0].shape == (1, 3, 4, 4)


def test_load_errors(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=r"nothing: no such file or folder \(expected a dataset name \['digits', 'mnist', "
        r"'fashion-mnist'\], a toy name",
    ):
        data.load(tmp_path / "nothing")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(
        DataError, match=r"notes.txt: expected a dataset name .* got a file of unknown kind"
    ):
        data.load(tmp_path / "notes.txt")
    with pytest.raises(
        ValueError, match=r"split does not apply to data source 'moons'; got split='train'"
    ):
        data.load("moons", split="train")
    with pytest.raises(ValueError, match=r"num_samples does not apply to data source 'digits'"):
        data.load("digits", num_samples=5)
    np.save(tmp_path / "a.npy", np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"crop does not apply to data source"):
        data.load(tmp_path / "a.npy", crop=3)
    with pytest.raises(ValueError, match=r"generator does not apply to data source"):
        data.load(tmp_path / "a.npy", generator=torch.Generator())
    folder = tmp_path / "pictures"
    folder.mkdir()
    Image.fromarray(rgb(4, 4, 0)).save(folder / "a.png")
    with pytest.raises(ValueError, match=r"split does not apply to data source .*pictures"):
        data.load(folder, split="train")
    with pytest.raises(ValueError, match=r"num_samples must be >= 1; got num_samples=0"):
        data.load("rings", num_samples=0)
    with pytest.raises(TypeError, match=r"source must be a str or pathlib.Path; got 3"):
        data.load(3)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# named datasets: digits, mnist, fashion-mnist
# ---------------------------------------------------------------------------------------------


def test_dataset_names():
    assert data.DATASETS == ("digits", "mnist", "fashion-mnist")
    assert set(data.MIRRORS) == {"mnist", "fashion-mnist"}
    assert all(urls[0].startswith("https://") for urls in data.MIRRORS.values())


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_load_mnist_names_search_and_download(isolated, small, server, monkeypatch, name):
    with pytest.raises(data.DatasetNotFoundError, match=f"^{name}: train-images"):
        data.load(name)
    monkeypatch.setattr(_mnist, "MIRRORS", {name: (server.url,)})
    x, y = data.load(name, download=True)
    assert np.array_equal(pixels(x), small.images["train"])
    assert y is not None and y.tolist() == small.labels["train"].tolist()
    assert len(server.requests) == 4
    x, y = data.load(name, split="test", dtype=torch.float64)  # found in the cache now
    assert x.shape == (3, 1, 5, 4) and x.dtype == torch.float64 and len(server.requests) == 4


def test_load_names_the_folder_of_a_dataset_name(isolated, small, monkeypatch):
    monkeypatch.chdir(isolated)
    small.write(isolated / "mnist")  # ./mnist: "mnist" is still the dataset, ./mnist the folder
    with pytest.raises(
        data.DatasetNotFoundError,
        match=r"--data FOLDER\); to load the folder \./mnist instead of the dataset, pass \./mnist$",
    ):
        data.load("mnist")
    assert data.load("./mnist", split="test")[0].shape == (3, 1, 5, 4)


def test_load_download_and_channels_only_where_they_apply(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"download applies to \['mnist', 'fashion-mnist'\] only, which ncsn can fetch; "
        r"got download=True for data source 'digits'",
    ):
        data.load("digits", download=True)
    with pytest.raises(ValueError, match=r"download applies to .* source '.*pictures'"):
        data.load(tmp_path / "pictures", download=True)
    with pytest.raises(TypeError, match=r"download must be a bool; got download=1"):
        data.load("mnist", download=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"channels does not apply to data source 'mnist'"):
        data.load("mnist", channels=1)
    with pytest.raises(ValueError, match=r"channels does not apply to data source 'moons'"):
        data.load("moons", channels=1)
    np.save(tmp_path / "a.npy", np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"channels does not apply to data source .*a\.npy"):
        data.load(tmp_path / "a.npy", channels=3)
    folder = tmp_path / "pictures"
    folder.mkdir()
    Image.fromarray(rgb(4, 4, 0)).save(folder / "a.png")
    Image.fromarray(rgb(4, 4, 1)[..., 0]).save(folder / "b.png")  # one grey image: RGB folder
    assert data.load(folder)[0].shape == (2, 3, 4, 4)
    assert data.load(folder, channels=1)[0].shape == (2, 1, 4, 4)
