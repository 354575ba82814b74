"""The FID Inception-v3 (TensorFlow's ``inception-2015-12-05`` graph) in plain PyTorch.

Public through :mod:`ncsn.metrics` (:func:`~ncsn.metrics.inception_v3`,
:class:`~ncsn.metrics.InceptionV3Features`). The network needs nothing beyond torch: no
torchvision, no TensorFlow, nothing downloaded. Its parameter names are those of the PyTorch ports
of that graph by torch-fidelity (``FeatureExtractorInceptionV3``) and pytorch-fid
(``pytorch_fid.inception.fid_inception_v3``), so either project's published weights file loads
into it. The FID variant differs from torchvision's ImageNet Inception-v3 in four places, all
reproduced here: 1008 classes, average pools that ignore the zero padding (as TensorFlow's do),
a max pool in the last block's pool branch, and (for torch-fidelity's preprocessing) TensorFlow
1.x's bilinear resize.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["InceptionV3Features", "inception_v3"]

# Where the weights files are published (ncsn downloads nothing; the user fetches one).
_WEIGHTS_URLS = {
    "torch-fidelity": "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
    "weights-inception-2015-12-05-6726825d.pth",
    "pytorch-fid": "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth",
}

Preprocess = Literal["torch-fidelity", "pytorch-fid"]
_PREPROCESS = ("torch-fidelity", "pytorch-fid")
_SIZE = 299


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------


class _Conv(nn.Module):
    """Convolution without bias → BatchNorm (ε = 1e-3, TensorFlow's) → ReLU."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False, device="meta")
        self.bn = nn.BatchNorm2d(cout, eps=1e-3, device="meta")

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool(x: Tensor) -> Tensor:
    """3×3 average pool, stride 1, that averages only the pixels inside the image (TensorFlow)."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class _MixedA(nn.Module):
    """35×35 block: 1×1 | 1×1 → 5×5 | 1×1 → 3×3 → 3×3 | pool → 1×1."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = _Conv(cin, 64, 1)
        self.branch5x5_1 = _Conv(cin, 48, 1)
        self.branch5x5_2 = _Conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _Conv(cin, 64, 1)
        self.branch3x3dbl_2 = _Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, 3, padding=1)
        self.branch_pool = _Conv(cin, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch5x5_2(self.branch5x5_1(x)),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                self.branch_pool(_tf_avg_pool(x)),
            ],
            dim=1,
        )


class _ReduceB(nn.Module):
    """35×35 → 17×17: 3×3/2 | 1×1 → 3×3 → 3×3/2 | max pool 3×3/2."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = _Conv(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = _Conv(cin, 64, 1)
        self.branch3x3dbl_2 = _Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(
            [
                self.branch3x3(x),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                F.max_pool2d(x, 3, stride=2),
            ],
            dim=1,
        )


class _MixedC(nn.Module):
    """17×17 block with factorised 7×7 convolutions (1×7 and 7×1)."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))
        self.branch1x1 = _Conv(cin, 192, 1)
        self.branch7x7_1 = _Conv(cin, c7, 1)
        self.branch7x7_2 = _Conv(c7, c7, row[0], padding=row[1])
        self.branch7x7_3 = _Conv(c7, 192, col[0], padding=col[1])
        self.branch7x7dbl_1 = _Conv(cin, c7, 1)
        self.branch7x7dbl_2 = _Conv(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_3 = _Conv(c7, c7, row[0], padding=row[1])
        self.branch7x7dbl_4 = _Conv(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_5 = _Conv(c7, 192, row[0], padding=row[1])
        self.branch_pool = _Conv(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        double = self.branch7x7dbl_1(x)
        for layer in (
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            double = layer(double)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
                double,
                self.branch_pool(_tf_avg_pool(x)),
            ],
            dim=1,
        )


class _ReduceD(nn.Module):
    """17×17 → 8×8: 1×1 → 3×3/2 | 1×1 → 1×7 → 7×1 → 3×3/2 | max pool 3×3/2."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = _Conv(cin, 192, 1)
        self.branch3x3_2 = _Conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _Conv(cin, 192, 1)
        self.branch7x7x3_2 = _Conv(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _Conv(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _Conv(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        seven = self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x)))
        return torch.cat(
            [
                self.branch3x3_2(self.branch3x3_1(x)),
                self.branch7x7x3_4(seven),
                F.max_pool2d(x, 3, stride=2),
            ],
            dim=1,
        )


class _MixedE(nn.Module):
    """8×8 block with split 1×3 / 3×1 outputs; the graph's last one max-pools its pool branch."""

    def __init__(self, cin: int, pool: Literal["avg", "max"]) -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = _Conv(cin, 320, 1)
        self.branch3x3_1 = _Conv(cin, 384, 1)
        self.branch3x3_2a = _Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _Conv(cin, 448, 1)
        self.branch3x3dbl_2 = _Conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _Conv(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        single = self.branch3x3_1(x)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = _tf_avg_pool(x) if self.pool == "avg" else F.max_pool2d(x, 3, stride=1, padding=1)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(single),
                self.branch3x3_2b(single),
                self.branch3x3dbl_3a(double),
                self.branch3x3dbl_3b(double),
                self.branch_pool(pooled),
            ],
            dim=1,
        )


class _FIDInceptionV3(nn.Module):
    """``[B, 3, 299, 299]`` in [−1, 1] → 2048-d pool features; ``fc`` gives the 1008 logits.

    Built on the meta device (construction draws nothing from any RNG); :func:`inception_v3`
    allocates it and fills every parameter and buffer from a weights file.
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = _Conv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _Conv(32, 32, 3)
        self.Conv2d_2b_3x3 = _Conv(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _Conv(64, 80, 1)
        self.Conv2d_4a_3x3 = _Conv(80, 192, 3)
        self.Mixed_5b = _MixedA(192, pool_features=32)
        self.Mixed_5c = _MixedA(256, pool_features=64)
        self.Mixed_5d = _MixedA(288, pool_features=64)
        self.Mixed_6a = _ReduceB(288)
        self.Mixed_6b = _MixedC(768, c7=128)
        self.Mixed_6c = _MixedC(768, c7=160)
        self.Mixed_6d = _MixedC(768, c7=160)
        self.Mixed_6e = _MixedC(768, c7=192)
        self.Mixed_7a = _ReduceD(768)
        self.Mixed_7b = _MixedE(1280, pool="avg")
        self.Mixed_7c = _MixedE(2048, pool="max")
        self.fc = nn.Linear(2048, 1008, device="meta")

    def forward(self, x: Tensor) -> Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for block in (
            self.Mixed_5b,
            self.Mixed_5c,
            self.Mixed_5d,
            self.Mixed_6a,
            self.Mixed_6b,
            self.Mixed_6c,
            self.Mixed_6d,
            self.Mixed_6e,
            self.Mixed_7a,
            self.Mixed_7b,
            self.Mixed_7c,
        ):
            x = block(x)
        return x.mean(dim=(2, 3))


# --------------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------------


def _resize_axis_like_tensorflow(x: Tensor, dim: int, size: int) -> Tensor:
    """TensorFlow 1.x ``resize_bilinear`` (``align_corners=False``) along one axis.

    Output pixel i samples the input at ``i · (n_in / n_out)`` (no half-pixel offset), linearly
    between its two neighbours, the upper one clamped to the last pixel.
    """
    n = x.shape[dim]
    scale = torch.tensor(n / size, dtype=torch.float32)
    coord = torch.arange(size, dtype=torch.float32, device=x.device) * scale.to(x.device)
    lo = coord.long()
    hi = (lo + 1).clamp_max(n - 1)
    shape = [1] * x.ndim
    shape[dim] = size
    frac = (coord - lo.to(torch.float32)).reshape(shape)
    below, above = x.index_select(dim, lo), x.index_select(dim, hi)
    return below + (above - below) * frac


def _as_images(x: Tensor) -> Tensor:
    """Check images ``[B, 1 or 3, H, W]``: floating with values in [0, 1], or uint8."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor; got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"x must be images [B, 3, H, W] or [B, 1, H, W]; got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x
    if not torch.is_floating_point(x):
        raise TypeError(f"x must be floating (values in [0, 1]) or uint8; got dtype {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x must be finite; it holds NaN or infinite values")
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise ValueError(
            f"x must lie in [0, 1]; got values in [{float(x.min()):.4g}, {float(x.max()):.4g}] "
            "(clamp samples first: x.clamp(0, 1))"
        )
    return x


def _preprocess(x: Tensor, preprocess: Preprocess) -> Tensor:
    """Images → the network's ``[B, 3, 299, 299]`` input in [−1, 1], as the chosen port does."""
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if preprocess == "torch-fidelity":
        # 8-bit pixels (rounded as torchvision.utils.save_image rounds), TensorFlow's resize,
        # then (p − 128) / 128 as in the graph.
        pixels = (
            x.to(torch.float32)
            if x.dtype == torch.uint8
            else (x.to(torch.float32) * 255.0 + 0.5).floor()
        )
        pixels = _resize_axis_like_tensorflow(pixels, 3, _SIZE)
        pixels = _resize_axis_like_tensorflow(pixels, 2, _SIZE)
        return (pixels - 128.0) / 128.0
    # pytorch-fid: values in [0, 1] as they are, PyTorch's bilinear resize, then 2x − 1.
    unit = x.to(torch.float32) / 255.0 if x.dtype == torch.uint8 else x.to(torch.float32)
    unit = F.interpolate(unit, size=(_SIZE, _SIZE), mode="bilinear", align_corners=False)
    return 2.0 * unit - 1.0


# --------------------------------------------------------------------------------------------
# The feature extractor
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class InceptionV3Features:
    """The FID Inception-v3 as a :class:`~ncsn.metrics.FeatureExtractor` and
    :class:`~ncsn.metrics.Classifier`. Built by :func:`inception_v3`.

    Inputs are images ``[B, 3, H, W]`` (or ``[B, 1, H, W]``, repeated to three channels),
    floating in [0, 1] or ``uint8``, of any size (resized to 299×299 as ``preprocess`` says); they
    are moved to the network's device, and outputs (float32) stay there.

    Attributes:
        network: the network (an ``nn.Module`` in eval mode, no gradients).
        preprocess: ``"torch-fidelity"`` or ``"pytorch-fid"`` (see :func:`inception_v3`).
    """

    network: _FIDInceptionV3
    preprocess: Preprocess

    def _pool(self, x: Tensor) -> Tensor:
        images = _as_images(x)
        device = self.network.fc.weight.device
        with torch.no_grad():
            return self.network(_preprocess(images.to(device), self.preprocess))

    def features(self, x: Tensor) -> Tensor:
        """The 2048-d pool features ``[B, 2048]`` of FID (and of precision/recall)."""
        return self._pool(x)

    def logits(self, x: Tensor) -> Tensor:
        """The 1008 class logits ``[B, 1008]`` without the bias, as the Inception Score uses them.

        Salimans et al.'s code multiplies the pool features by the graph's ``softmax/logits``
        weights only (torch-fidelity's ``logits_unbiased``).
        """
        return self._pool(x) @ self.network.fc.weight.T

    def probabilities(self, x: Tensor) -> Tensor:
        """Class probabilities ``[B, 1008]`` (the softmax of :meth:`logits`) for the IS."""
        return torch.softmax(self.logits(x), dim=1)


def _weights_error(path: Path, problem: str) -> ValueError:
    return ValueError(
        f"weights={str(path)!r} is not an FID Inception-v3 weights file: {problem}; use "
        f"{_WEIGHTS_URLS['torch-fidelity']} or {_WEIGHTS_URLS['pytorch-fid']}"
    )


def _read_state(path: Path) -> dict[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise _weights_error(
            path, f"torch.load failed ({type(error).__name__}: {reason})"
        ) from error
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise _weights_error(path, f"it holds a {type(state).__name__}, not a state dict")
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def inception_v3(
    weights: str | os.PathLike[str],
    *,
    preprocess: Preprocess = "torch-fidelity",
    device: torch.device | str = "cpu",
) -> InceptionV3Features:
    """The standard FID Inception-v3 (TensorFlow's ``inception-2015-12-05`` graph) from a file.

    A plain-PyTorch implementation of the network that FID, the Inception Score and
    precision/recall are reported with (TTUR's FID code, Salimans et al.'s IS code), with the
    parameter names of its PyTorch ports, so it loads their published weights file. ``ncsn``
    ships no weights and downloads nothing; fetch one file once:

    - torch-fidelity's, https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth
    - or pytorch-fid's, https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth

    Both hold TensorFlow's weights converted to PyTorch; the original weights are published under
    the Apache License 2.0 (tensorflow/models), as are torch-fidelity and pytorch-fid. No code of
    either is included here. Only tensors are read from the file (``torch.load`` with
    ``weights_only=True``).

    ``preprocess`` chooses how images reach the network:

    - ``"torch-fidelity"`` (default, matches TTUR's TensorFlow FID): pixels rounded to 8 bits,
      TensorFlow 1.x's bilinear resize to 299×299, ``(p − 128) / 128``. Equal to torch-fidelity's
      ``FeatureExtractorInceptionV3`` (features ``"2048"``, ``"logits_unbiased"``).
    - ``"pytorch-fid"``: PyTorch's bilinear resize (``align_corners=False``) of the [0, 1]
      values, then ``2x − 1``, as ``pytorch_fid.inception.InceptionV3`` does; pytorch-fid's FIDs
      differ slightly from TensorFlow's for this reason.

    Args:
        weights: path of the weights file.
        preprocess: ``"torch-fidelity"`` or ``"pytorch-fid"``.
        device: where the network runs.

    Returns:
        An :class:`InceptionV3Features` (``features`` ``[B, 2048]``, ``logits`` /
        ``probabilities`` ``[B, 1008]``).

    Raises:
        TypeError: if ``weights`` is not a path or ``preprocess`` is not a string.
        FileNotFoundError: if ``weights`` does not exist (the message names the URLs).
        ValueError: if ``preprocess`` is unknown, or the file is not a readable state dict with
            exactly this network's parameter names and shapes, holding finite floating-point
            values.

    Example:
        The lines that need the weights file (downloaded by you) are skipped when the examples
        are tested:

        >>> train_images = torch.rand(20, 3, 32, 32)  # your data and samples, [N, 3, H, W] in [0, 1]
        >>> samples = torch.rand(20, 3, 32, 32)        # (FID uses N = 50000 of each)
        >>> inception = ncsn.metrics.inception_v3("weights-inception-2015-12-05-6726825d.pth")  # doctest: +SKIP
        >>> real = ncsn.metrics.extract_features(inception, train_images, batch_size=100)  # doctest: +SKIP
        >>> fake = ncsn.metrics.extract_features(inception, samples.clamp(0, 1), batch_size=100)  # doctest: +SKIP
        >>> fid = ncsn.metrics.frechet_distance(real, fake)          # [N, 2048] each  # doctest: +SKIP
        >>> precision, recall = ncsn.metrics.precision_recall(real, fake)  # doctest: +SKIP
        >>> score = ncsn.metrics.inception_score(  # doctest: +SKIP
        ...     ncsn.metrics.extract_probabilities(inception, samples.clamp(0, 1)))
    """
    if not isinstance(weights, str | os.PathLike):
        raise TypeError(
            f"weights must be a path (str or os.PathLike); got {type(weights).__name__}"
        )
    if not isinstance(preprocess, str):
        raise TypeError(f"preprocess must be a string; got {preprocess!r}")
    if preprocess not in _PREPROCESS:
        raise ValueError(f"preprocess must be one of {_PREPROCESS}; got preprocess={preprocess!r}")
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"FID Inception-v3 weights not found: weights={str(path)!r}; download "
            f"{_WEIGHTS_URLS['torch-fidelity']} (or {_WEIGHTS_URLS['pytorch-fid']}) and "
            "pass its path (ncsn downloads nothing)"
        )
    state = _read_state(path)
    network = _FIDInceptionV3()
    expected = {
        k: v.shape for k, v in network.state_dict().items() if not k.endswith("num_batches_tracked")
    }
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    if missing or unexpected:
        raise _weights_error(
            path,
            f"{len(missing)} missing keys {missing[:3]} and {len(unexpected)} unexpected keys "
            f"{unexpected[:3]}",
        )
    for key, shape in expected.items():
        if state[key].shape != shape:
            raise _weights_error(
                path, f"{key} has shape {tuple(state[key].shape)}, expected {tuple(shape)}"
            )
        # load_state_dict would cast integers silently, and NaN weights give NaN features (and
        # an FID of 0 between any two sets).
        if not torch.is_floating_point(state[key]):
            raise _weights_error(path, f"{key} holds {state[key].dtype} values, not floating point")
        if not bool(torch.isfinite(state[key]).all()):
            raise _weights_error(path, f"{key} holds NaN or infinite values")
    network.to_empty(device=device)
    with torch.no_grad():
        for name, buffer in network.named_buffers():
            if name.endswith("num_batches_tracked"):
                buffer.zero_()
    network.load_state_dict(state, strict=False)
    network.requires_grad_(False)
    network.eval()
    return InceptionV3Features(network, preprocess)
