"""ncsn.data: image folders and CelebA (real PNG/JPEG files written here)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from datafiles import as_uint8, rgb, write_celeba
from PIL import Image

import ncsn.data as data
from ncsn.data import DataError


def test_image_folder_png_exact_sorted_recursive(tmp_path):
    images = {"b.png": rgb(6, 5, 0), "a.PNG": rgb(6, 5, 1), "sub/c.png": rgb(6, 5, 2)}
    (tmp_path / "sub").mkdir()
    for name, array in images.items():
        Image.fromarray(array).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("ignored")
    x = data.load_image_folder(tmp_path)
    assert x.shape == (3, 3, 6, 5) and x.dtype == torch.float32
    order = ["a.PNG", "b.png", "sub/c.png"]
    for k, name in enumerate(order):
        assert np.array_equal(as_uint8(x)[k].transpose(1, 2, 0), images[name])
    grey = data.load_image_folder(tmp_path, channels=1)
    expected = np.asarray(Image.fromarray(images["a.PNG"]).convert("L"))
    assert grey.shape == (3, 1, 6, 5) and np.array_equal(as_uint8(grey)[0, 0], expected)


def test_image_folder_center_crop_and_resize(tmp_path):
    array = rgb(10, 7, 3)
    Image.fromarray(array).save(tmp_path / "a.png")
    x = data.load_image_folder(tmp_path, crop=(4, 3))
    assert np.array_equal(as_uint8(x)[0].transpose(1, 2, 0), array[3:7, 2:5])
    # odd margins round like torchvision's CenterCrop: round(5 / 2) = 2
    x = data.load_image_folder(tmp_path, crop=5)
    assert np.array_equal(as_uint8(x)[0].transpose(1, 2, 0), array[2:7, 1:6])
    x = data.load_image_folder(tmp_path, crop=5, size=(3, 4), dtype=torch.float64)
    expected = Image.fromarray(array[2:7, 1:6]).resize((4, 3), Image.Resampling.BILINEAR)
    assert x.shape == (1, 3, 3, 4) and x.dtype == torch.float64
    assert np.array_equal(as_uint8(x)[0].transpose(1, 2, 0), np.asarray(expected))


def test_image_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"empty: expected PNG or JPEG images, found none"):
        data.load_image_folder(empty)
    with pytest.raises(FileNotFoundError, match=r"nowhere: no such folder"):
        data.load_image_folder(tmp_path / "nowhere")
    (tmp_path / "file.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"file.png: expected a folder holding PNG or JPEG"):
        data.load_image_folder(tmp_path / "file.png")

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"a\.png: expected a readable PNG or JPEG image"):
        data.load_image_folder(bad)
    Image.fromarray(rgb(40, 40, 0)).save(bad / "a.jpg", quality=90)
    (bad / "a.png").unlink()
    blob = (bad / "a.jpg").read_bytes()
    (bad / "a.jpg").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match=r"a\.jpg: expected a readable PNG or JPEG image"):
        data.load_image_folder(bad)

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(rgb(6, 6, 0)).save(mixed / "a.png")
    Image.fromarray(rgb(5, 6, 1)).save(mixed / "b.png")
    with pytest.raises(DataError, match=r"b\.png: expected an image of 6×6 like a\.png.*got 5×6"):
        data.load_image_folder(mixed)
    assert data.load_image_folder(mixed, size=4).shape == (2, 3, 4, 4)
    with pytest.raises(
        DataError, match=r"expected an image of at least 6×6 to center-crop, got 5×6"
    ):
        data.load_image_folder(mixed, crop=6)
    with pytest.raises(ValueError, match=r"crop must be positive; got crop=0"):
        data.load_image_folder(mixed, crop=0)
    with pytest.raises(TypeError, match=r"size must be an int or a \(height, width\) pair"):
        data.load_image_folder(mixed, size=(4, 4, 4))
    for channels in (2, True, "rgb"):
        with pytest.raises(
            ValueError,
            match=r"channels must be 1 \(grey\), 3 \(RGB\) or None \(grey when every image "
            rf"is\); got channels={channels!r}",
        ):
            data.load_image_folder(mixed, channels=channels)  # type: ignore[arg-type]


def grey(height: int, width: int, seed: int) -> np.ndarray:
    return rgb(height, width, seed)[..., 0]


def test_grey_folders_load_with_one_channel(tmp_path):
    """Issue 23: grey PNGs loaded as three equal channels (D = 768 for 16×16 grey images)."""
    images = {"a.png": grey(16, 16, 0), "b.jpg": grey(16, 16, 1), "c.png": grey(16, 16, 2)}
    for name, array in images.items():
        Image.fromarray(array).save(tmp_path / name, quality=100)
    Image.fromarray(np.repeat(grey(16, 16, 3)[..., None], 3, axis=2)).save(tmp_path / "d.png")
    x = data.load_image_folder(tmp_path)  # grey files, and an RGB file whose channels are equal
    assert x.shape == (4, 1, 16, 16)
    assert np.array_equal(as_uint8(x)[0, 0], images["a.png"])
    assert np.array_equal(as_uint8(x)[3, 0], grey(16, 16, 3))
    rgb_x = data.load_image_folder(tmp_path, channels=3)
    assert rgb_x.shape == (4, 3, 16, 16) and torch.equal(rgb_x, x.expand(-1, 3, -1, -1))
    assert torch.equal(data.load_image_folder(tmp_path, channels=1), x)


def test_a_colour_image_makes_the_folder_rgb_with_grey_images_repeated(tmp_path):
    Image.fromarray(grey(6, 5, 0)).save(tmp_path / "a.png")
    Image.fromarray(rgb(6, 5, 1)).save(tmp_path / "b.png")
    Image.fromarray(grey(6, 5, 2)).save(tmp_path / "c.png")
    x = as_uint8(data.load_image_folder(tmp_path))
    assert x.shape == (3, 3, 6, 5)
    assert all(np.array_equal(x[k, c], grey(6, 5, k)) for k in (0, 2) for c in range(3))
    assert np.array_equal(x[1].transpose(1, 2, 0), rgb(6, 5, 1))


def test_sixteen_bit_pngs_scale_by_their_range(tmp_path):
    """Issue 23: a folder of 16-bit PNGs loaded as all ones (clipped to 255 before / 255)."""
    wide = (np.arange(48, dtype=np.uint32).reshape(6, 8) * 1365).astype(np.uint16)
    Image.fromarray(wide).save(tmp_path / "a.png")
    with Image.open(tmp_path / "a.png") as img:
        assert img.mode.startswith("I")  # really a 16-bit file
    x = data.load_image_folder(tmp_path)
    assert x.shape == (1, 1, 6, 8)
    torch.testing.assert_close(x[0, 0], torch.from_numpy(wide.astype(np.float32) / 65535))
    assert float(x.max()) < 1.0 and float(x.min()) == 0.0
    assert data.load_image_folder(tmp_path, channels=3).shape == (1, 3, 6, 8)
    x = data.load_image_folder(tmp_path, size=(3, 4), dtype=torch.float64)
    expected = np.asarray(
        Image.fromarray(wide.astype(np.float32)).resize((4, 3), Image.Resampling.BILINEAR)
    )
    torch.testing.assert_close(
        x[0, 0], torch.from_numpy(expected.astype(np.float64).round() / 65535), rtol=0, atol=1e-12
    )


def test_eight_and_sixteen_bit_images_mix_exactly(tmp_path):
    eight = grey(4, 4, 0)
    Image.fromarray(eight).save(tmp_path / "a.png")
    Image.fromarray(np.full((4, 4), 65535, np.uint16)).save(tmp_path / "b.png")
    Image.fromarray(eight).save(tmp_path / "c.png")
    x = data.load_image_folder(tmp_path)
    # an 8-bit value v becomes 257·v / 65535, which is v / 255 to the last bit
    assert torch.equal(x[0, 0], torch.from_numpy(eight).float() / 255)
    assert torch.equal(x[2], x[0]) and float(x[1].min()) == 1.0


def test_a_decompression_bomb_is_a_data_error(tmp_path, monkeypatch):
    Image.fromarray(rgb(20, 20, 0)).save(tmp_path / "bomb.png")  # 400 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow refuses more than twice this
    with pytest.raises(
        DataError, match=r"bomb\.png: refused as a possible decompression bomb \(Image size"
    ) as caught:
        data.load_image_folder(tmp_path)
    assert isinstance(caught.value.__cause__, Image.DecompressionBombError)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)  # between the limit and twice it: a
    with warnings.catch_warnings():  # warning, an error where warnings are errors
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(DataError, match=r"raise PIL\.Image\.MAX_IMAGE_PIXELS"):
            data.load_image_folder(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        assert data.load_image_folder(tmp_path).shape == (1, 3, 20, 20)


def official_celeba(path: Path) -> np.ndarray:
    """CenterCrop(140) then Resize(32), as torchvision computes them, on the decoded JPEG."""
    with Image.open(path) as img:
        img = img.convert("RGB").crop((19, 39, 159, 179))
    return np.asarray(img.resize((32, 32), Image.Resampling.BILINEAR)).transpose(2, 0, 1)


def test_celeba_preset_and_splits(tmp_path):
    files = write_celeba(tmp_path, [0, 0, 1, 2, 0])
    x = data.load_celeba(tmp_path)
    assert (data.CELEBA_CROP, data.CELEBA_SIZE) == (140, 32)
    assert x.shape == (3, 3, 32, 32)
    for k, index in enumerate([0, 1, 4]):
        assert np.array_equal(as_uint8(x)[k], official_celeba(files[index]))
    assert np.array_equal(
        as_uint8(data.load_celeba(tmp_path, "valid"))[0], official_celeba(files[2])
    )
    assert np.array_equal(
        as_uint8(data.load_celeba(tmp_path, "test"))[0], official_celeba(files[3])
    )
    assert data.load_celeba(tmp_path, "all").shape == (5, 3, 32, 32)
    assert data.load_celeba(tmp_path, "train", crop=None, size=16).shape == (3, 3, 16, 16)


def test_celeba_errors(tmp_path):
    files = write_celeba(tmp_path, [0, 2])
    partition = tmp_path / "list_eval_partition.txt"
    text = partition.read_text()
    partition.write_text(text + "000003.jpg 7\n")
    with pytest.raises(
        DataError, match=r"list_eval_partition.txt:3: expected '<image file> <0\|1\|2>'"
    ):
        data.load_celeba(tmp_path)
    partition.write_text(text + "000003.jpg 0\n")
    with pytest.raises(FileNotFoundError, match=r"000003.jpg: no such file \(listed in"):
        data.load_celeba(tmp_path)
    partition.unlink()
    with pytest.raises(
        FileNotFoundError, match=r"list_eval_partition.txt: no such file .*split='test'"
    ):
        data.load_celeba(tmp_path, "test")
    assert data.load_celeba(tmp_path, "all").shape == (2, 3, 32, 32)  # no partition needed
    files[0].write_bytes(b"broken")
    with pytest.raises(DataError, match=r"000001.jpg: expected a readable PNG or JPEG image"):
        data.load_celeba(tmp_path, "all")
    with pytest.raises(ValueError, match=r"split must be one of"):
        data.load_celeba(tmp_path, "validation")
