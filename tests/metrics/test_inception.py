"""The FID Inception-v3 (ncsn.metrics.inception_v3) with random weights saved to a file.

The real weights (95 MB) are not downloaded; a file with the same names and shapes filled with
random values checks loading, shapes, batching and the errors. Equality with torch-fidelity's
network is checked where torch-fidelity is installed (``pip install --no-deps torch-fidelity``
suffices: its Inception module needs no torchvision).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import ncsn
from ncsn.metrics import (
    InceptionV3Features,
    extract_features,
    extract_probabilities,
    frechet_distance,
    frechet_distance_from_statistics,
    inception_v3,
)
from ncsn.metrics.inception import _FIDInceptionV3, _resize_axis_like_tensorflow


def random_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """He-scaled convolutions and near-identity batch norms, so activations stay O(1)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in _FIDInceptionV3().state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros((), dtype=torch.int64)
        elif key.endswith("running_var"):
            state[key] = 1.0 + 0.1 * torch.rand(value.shape, generator=g)
        elif key.endswith(("running_mean", "bias")):
            state[key] = 0.1 * torch.randn(value.shape, generator=g)
        elif key.endswith("bn.weight"):
            state[key] = 1.0 + 0.1 * torch.randn(value.shape, generator=g)
        else:
            fan_in = value[0].numel()
            state[key] = torch.randn(value.shape, generator=g) * math.sqrt(2.0 / fan_in)
    return state


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inception") / "random-inception.pth"
    torch.save(random_state(), path)
    return path


@pytest.fixture(scope="module")
def inception(weights: Path) -> InceptionV3Features:
    return inception_v3(weights)


def images(n: int, seed: int = 1, size: int = 32) -> torch.Tensor:
    """``[n, 3, size, size]`` 8-bit images as floats in [0, 1] (value / 255)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g).to(torch.float32) / 255


def test_features_logits_and_probabilities(inception: InceptionV3Features):
    x = images(3)
    features = inception.features(x)
    assert features.shape == (3, 2048) and features.dtype == torch.float32
    assert bool(torch.isfinite(features).all()) and float(features.std()) > 0
    logits = inception.logits(x)
    assert logits.shape == (3, 1008)
    # Without the bias, as the Inception Score's reference code uses them.
    torch.testing.assert_close(logits, features @ inception.network.fc.weight.T)
    torch.testing.assert_close(inception.probabilities(x), torch.softmax(logits, dim=1))
    assert isinstance(inception, ncsn.metrics.FeatureExtractor)
    assert isinstance(inception, ncsn.metrics.Classifier)
    assert not inception.network.training
    assert not any(p.requires_grad for p in inception.network.parameters())


def test_batches_grey_images_and_uint8(inception: InceptionV3Features):
    x = images(3, seed=2)
    whole = inception.features(x)
    # extract_features in batches of 2 and 1 gives the same features as one batch of 3.
    torch.testing.assert_close(extract_features(inception, x, batch_size=2), whole)
    torch.testing.assert_close(extract_features(inception, x, batch_size=1), whole)
    # uint8 pixels are the same images as value / 255.
    pixels = (x * 255).round().to(torch.uint8)
    assert torch.equal(inception.features(pixels), whole)
    # One channel is repeated to three; any image size is resized to 299×299.
    grey = x[:2, :1]
    torch.testing.assert_close(
        inception.features(grey), inception.features(grey.repeat(1, 3, 1, 1))
    )
    assert inception.features(images(1, size=17)).shape == (1, 2048)


def test_frechet_distance_from_inception_features(inception: InceptionV3Features):
    real = extract_features(inception, images(3, seed=3), batch_size=2)
    fake = extract_features(inception, images(3, seed=4), batch_size=2)
    assert real.shape == fake.shape == (3, 2048)
    # The first 256 features keep the eigendecompositions quick (2048² takes seconds on a CPU).
    real, fake = real[:, :256], fake[:, :256]
    fid = frechet_distance(real, fake)
    # The same d² from NumPy's statistics of the same features.
    a, b = real.double().numpy(), fake.double().numpy()
    stats_a = (torch.from_numpy(a.mean(0)), torch.from_numpy(np.cov(a, rowvar=False)))
    stats_b = (torch.from_numpy(b.mean(0)), torch.from_numpy(np.cov(b, rowvar=False)))
    # d² is a difference of traces of float32-derived statistics: with d² ≈ 0.02 against traces
    # of order 1, the two paths' rounding (~1e-12 absolute in float64) shows at ~1e-8 relative.
    assert fid == pytest.approx(frechet_distance_from_statistics(stats_a, stats_b), rel=1e-6)
    assert fid > 0.0
    assert frechet_distance(real, real) == pytest.approx(0.0, abs=1e-6 * fid)
    probs = extract_probabilities(inception, images(2, seed=5), batch_size=1)
    assert ncsn.metrics.inception_score(probs, splits=1).mean >= 1.0


def test_pytorch_fid_preprocessing(weights: Path, inception: InceptionV3Features):
    other = inception_v3(weights, preprocess="pytorch-fid")
    x = images(2, seed=6)
    # pytorch-fid: PyTorch's bilinear resize of the [0, 1] values, then 2x − 1.
    expected = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear")
    torch.testing.assert_close(other.features(x), other.network(2 * expected - 1))
    # Close to, but not the same as, TensorFlow's resize of 8-bit pixels.
    assert not torch.equal(other.features(x), inception.features(x))


def test_tensorflow_resize_matches_its_definition():
    g = torch.Generator().manual_seed(7)
    x = torch.rand(2, 3, 5, 7, generator=g)
    out = _resize_axis_like_tensorflow(_resize_axis_like_tensorflow(x, 3, 11), 2, 4)
    assert out.shape == (2, 3, 4, 11)
    # TensorFlow 1.x, align_corners=False: output pixel i samples input coordinate i · n_in/n_out.
    expected = np.zeros((2, 3, 4, 11))
    xs = x.double().numpy()
    for i in range(4):
        for j in range(11):
            r, c = i * 5 / 4, j * 7 / 11
            r0, c0 = int(r), int(c)
            r1, c1 = min(r0 + 1, 4), min(c0 + 1, 6)
            top = xs[..., r0, c0] + (xs[..., r0, c1] - xs[..., r0, c0]) * (c - c0)
            bottom = xs[..., r1, c0] + (xs[..., r1, c1] - xs[..., r1, c0]) * (c - c0)
            expected[..., i, j] = top + (bottom - top) * (r - r0)
    np.testing.assert_allclose(out.double().numpy(), expected, rtol=0, atol=1e-6)
    assert torch.equal(_resize_axis_like_tensorflow(x, 3, 7), x)  # same size: a copy


def _torch_fidelity_inception() -> type:
    """torch-fidelity's ``FeatureExtractorInceptionV3`` class, without its package ``__init__``.

    The package imports torchvision (for other extractors); its Inception module needs only
    torch, so it is imported under a bare package object, which is then removed again.
    """
    spec = importlib.util.find_spec("torch_fidelity")
    if spec is None or spec.submodule_search_locations is None:
        pytest.skip("torch-fidelity is not installed")
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] == "torch_fidelity"}
    package = types.ModuleType("torch_fidelity")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["torch_fidelity"] = package
    try:
        module = importlib.import_module("torch_fidelity.feature_extractor_inceptionv3")
    finally:
        for name in [k for k in sys.modules if k.split(".")[0] == "torch_fidelity"]:
            del sys.modules[name]
        sys.modules.update(saved)
    cls: type = module.FeatureExtractorInceptionV3
    return cls


def test_equals_torch_fidelity_bit_for_bit(weights: Path, inception: InceptionV3Features):
    reference = _torch_fidelity_inception()(
        "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=weights
    )
    pixels = torch.randint(0, 256, (2, 3, 32, 32), generator=torch.Generator().manual_seed(8))
    pixels = pixels.to(torch.uint8)
    with torch.no_grad():
        features, logits = reference(pixels)
    assert torch.equal(inception.features(pixels.float() / 255), features)
    assert torch.equal(inception.logits(pixels), logits)


def test_construction_leaves_the_global_rng_alone(weights: Path):
    before = torch.random.get_rng_state()
    inception_v3(weights)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_weights_without_batch_counters_load(tmp_path: Path, inception: InceptionV3Features):
    state = {k: v for k, v in random_state().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "w.pth")
    loaded = inception_v3(tmp_path / "w.pth")
    for (name, a), (_, b) in zip(
        loaded.network.state_dict().items(), inception.network.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_missing_and_unreadable_weights(tmp_path: Path):
    with pytest.raises(
        FileNotFoundError,
        match=r"weights not found: weights='.*nope\.pth'.*"
        r"weights-inception-2015-12-05-6726825d\.pth",
    ):
        inception_v3(tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError, match="weights not found"):
        inception_v3(tmp_path)  # a directory
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(
        ValueError,
        match=r"junk\.pth.*is not an FID Inception-v3 weights file: "
        r"torch\.load failed",
    ):
        inception_v3(tmp_path / "junk.pth")
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    with pytest.raises(ValueError, match="it holds a Tensor, not a state dict"):
        inception_v3(tmp_path / "tensor.pth")


def test_weights_with_wrong_names_or_shapes(tmp_path: Path):
    state = random_state()
    del state["Mixed_7c.branch_pool.conv.weight"]
    state["AuxLogits.fc.weight"] = torch.zeros(1000, 768)
    torch.save(state, tmp_path / "keys.pth")
    with pytest.raises(
        ValueError,
        match=r"1 missing keys \['Mixed_7c.branch_pool.conv.weight'\] and 1 unexpected keys "
        r"\['AuxLogits.fc.weight'\]",
    ):
        inception_v3(tmp_path / "keys.pth")
    state = random_state()
    state["fc.weight"] = torch.zeros(1000, 2048)  # torchvision's ImageNet head
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(
        ValueError, match=r"fc.weight has shape \(1000, 2048\), expected \(1008, 2048\)"
    ):
        inception_v3(tmp_path / "shape.pth")


def test_rejects_arguments(weights: Path):
    with pytest.raises(TypeError, match="weights must be a path"):
        inception_v3(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"preprocess must be one of .*; got preprocess='tf'"):
        inception_v3(weights, preprocess="tf")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        (torch.rand(2, 3, 8), ValueError, r"x must be images \[B, 3, H, W\]"),
        (torch.rand(2, 4, 8, 8), ValueError, r"got \(2, 4, 8, 8\)"),
        (torch.rand(2, 3, 8, 8) + 1.0, ValueError, r"x must lie in \[0, 1\]; .*clamp"),
        (torch.full((1, 3, 8, 8), math.nan), ValueError, "x must be finite"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.int64), TypeError, "floating .* or uint8"),
        (np.zeros((1, 3, 8, 8)), TypeError, "x must be a torch.Tensor"),
    ],
)
def test_rejects_inputs(inception: InceptionV3Features, x, error, match):
    with pytest.raises(error, match=match):
        inception.features(x)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("Mixed_6b.branch1x1.conv.weight", "int", r"holds torch\.int64 values, not floating point"),
        ("fc.bias", "nan", "holds NaN or infinite values"),
        ("Conv2d_1a_3x3.bn.running_var", "inf", "holds NaN or infinite values"),
    ],
)
def test_weights_that_are_not_finite_floats_are_refused_naming_file_and_key(
    tmp_path: Path, key: str, value: str, match: str
):
    # load_state_dict casts integers silently, and NaN weights gave an FID of 0.00 between any
    # two sets.
    state = random_state()
    if value == "int":
        state[key] = state[key].round().to(torch.int64)
    else:
        state[key] = state[key].clone()
        state[key].view(-1)[0] = float(value)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=rf"weights='.*bad\.pth' is not .*: {key} {match}") as info:
        inception_v3(tmp_path / "bad.pth")
    assert "\n" not in str(info.value)
