"""How good a restoration is: :func:`psnr` and :func:`ssim` against the ground truth, and
:func:`consistency`, how well it explains the measurement. Each returns one value per example.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from ncsn._checks import positive_float, positive_int
from ncsn.inverse.measurement import Measurement

__all__ = ["consistency", "psnr", "ssim"]


def _image(t: object, name: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
    if not torch.is_floating_point(t):
        raise TypeError(f"{name} must be a real floating-point tensor; got dtype {t.dtype}")
    return t.detach().to(torch.float64)


def _pair(x: object, reference: object, *, min_dims: int = 1) -> tuple[Tensor, Tensor]:
    a, b = _image(x, "x"), _image(reference, "reference")
    if a.shape != b.shape:
        raise ValueError(
            f"x and reference must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.ndim < 1 + min_dims or a.shape[0] == 0:
        raise ValueError(
            f"x must be [B, *event] with B >= 1 and at least {min_dims} event dims; got "
            f"{tuple(a.shape)}"
        )
    return a, b


def psnr(x: Tensor, reference: Tensor, *, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per example: 10·log10(R² / mean((x − ref)²)).

    Args:
        x: ``[B, *event]`` restorations.
        reference: ``[B, *event]`` ground truth.
        data_range: R, the range of the data (1 for images in [0, 1]).

    Returns:
        ``[B]`` float64 (inf where x equals the reference).

    Raises:
        ValueError: shapes that differ, an empty batch, a non-positive range.
        TypeError: inputs that are not real floating tensors.

    Example:
        >>> ncsn.inverse.psnr(torch.full((1, 4), 0.5), torch.full((1, 4), 0.6)).round(decimals=2)
        tensor([20.], dtype=torch.float64)
    """
    a, b = _pair(x, reference)
    data_range = positive_float(data_range, "data_range")
    mse = (a - b).square().reshape(a.shape[0], -1).mean(1)
    return 10.0 * torch.log10(data_range**2 / mse)


def ssim(x: Tensor, reference: Tensor, *, data_range: float = 1.0, window: int = 7) -> Tensor:
    """Structural similarity (Wang, Bovik, Sheikh & Simoncelli, 2004) per example, averaged over
    channels: the defaults of scikit-image's ``structural_similarity``.

    In each ``window``×``window`` patch that lies inside the image (uniform weights), with means
    μ, unbiased variances σ² and covariance σ_xr (the N/(N − 1) correction),

        SSIM = (2μ_xμ_r + C₁)(2σ_xr + C₂) / ((μ_x² + μ_r² + C₁)(σ_x² + σ_r² + C₂)),

    C₁ = (0.01·R)², C₂ = (0.03·R)², averaged over the patches. Checked against scikit-image's
    values in the tests.

    Args:
        x: ``[B, *lead, H, W]`` restorations (``lead``: channels, averaged over).
        reference: the ground truth, of x's shape.
        data_range: R (1 for images in [0, 1]).
        window: odd patch width ≤ min(H, W) (scikit-image: 7).

    Returns:
        ``[B]`` float64 in [−1, 1] (1: identical).

    Raises:
        ValueError: shapes that differ, fewer than two image dims, an even window or one larger
            than the image.
        TypeError: inputs that are not real floating tensors.

    Example:
        >>> x, _ = ncsn.data.load_digits("test")
        >>> ncsn.inverse.ssim(x[:2], x[:2]).round(decimals=4)
        tensor([1., 1.], dtype=torch.float64)
    """
    a, b = _pair(x, reference, min_dims=2)
    data_range = positive_float(data_range, "data_range")
    window = positive_int(window, "window")
    h, w = a.shape[-2:]
    if window % 2 == 0 or window > min(h, w):
        raise ValueError(
            f"window must be odd and at most the image size {h}x{w}; got window={window}"
        )
    batch = a.shape[0]
    a = a.reshape(-1, 1, h, w)
    b = b.reshape(-1, 1, h, w)

    def mean(t: Tensor) -> Tensor:
        return F.avg_pool2d(t, window, stride=1)

    n = window * window
    correction = n / (n - 1)
    mu_a, mu_b = mean(a), mean(b)
    var_a = correction * (mean(a * a) - mu_a * mu_a)
    var_b = correction * (mean(b * b) - mu_b * mu_b)
    cov = correction * (mean(a * b) - mu_a * mu_b)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    )
    return index.reshape(batch, -1).mean(1)


def consistency(x: Tensor, measurement: Measurement) -> Tensor:
    """The measurement's residual norm per example, ‖A·x − y‖ (compare with σ_y·√M, the norm of
    the noise alone).

    Args:
        x: ``[B, *in_shape]`` restorations.
        measurement: the :class:`~ncsn.inverse.Measurement` they restore.

    Returns:
        ``[B]`` float64.

    Raises:
        ValueError: an x that does not fit the operator or y's batch.
        TypeError: a measurement that is not a Measurement.

    Example:
        >>> A = ncsn.inverse.Mask(torch.tensor([True, False]))
        >>> m = ncsn.inverse.Measurement(A, torch.tensor([[3.0, 0.0]]))
        >>> ncsn.inverse.consistency(torch.tensor([[0.0, 5.0]]), m)
        tensor([3.], dtype=torch.float64)
    """
    if not isinstance(measurement, Measurement):
        raise TypeError(f"measurement must be an ncsn.inverse.Measurement; got {measurement!r:.80}")
    with torch.no_grad():
        residual = measurement.residual(x)
    return residual.to(torch.float64).reshape(residual.shape[0], -1).norm(dim=1)
