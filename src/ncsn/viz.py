"""Pictures: image grids as PNG (pillow) and toy plots (matplotlib, from the ``examples`` extra)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ncsn._checks import check_nonempty, positive_int

__all__ = [
    "image_grid",
    "plot_score_fields",
    "plot_toy_samples",
    "require_matplotlib",
    "save_image_grid",
]


def image_grid(
    images: Tensor, nrow: int | None = None, *, padding: int = 1, pad_value: float = 1.0
) -> Tensor:
    """Tile ``[B, C, H, W]`` images (values in [0, 1]) into one ``[C, H', W']`` grid.

    Values are clamped to [0, 1]. ``nrow`` images per row (default: ⌈√B⌉).

    Raises:
        TypeError: ``images`` is not a floating-point tensor.
        ValueError: ``images`` is not ``[B, C, H, W]`` with B ≥ 1, holds NaN or infinite
            values (which no clamp can place), or ``padding`` is negative.

    Example:
        >>> ncsn.viz.image_grid(torch.rand(16, 1, 8, 8), nrow=4).shape
        torch.Size([1, 37, 37])
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor; got {type(images).__name__}")
    if not torch.is_floating_point(images):
        raise TypeError(
            f"images must be a floating-point tensor with values in [0, 1]; got dtype "
            f"{images.dtype} (scale integer pixels with ncsn.data.to_unit_range)"
        )
    if images.ndim != 4:
        raise ValueError(f"images must have shape [B, C, H, W]; got {tuple(images.shape)}")
    check_nonempty(images, "images")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be an int >= 0; got padding={padding!r}")
    pixels = images.detach().float().cpu()
    if not bool(torch.isfinite(pixels).all()):
        raise ValueError(
            f"images must be finite; got {int((~torch.isfinite(pixels)).sum())} NaN or "
            f"infinite values in images of shape {tuple(images.shape)}"
        )
    b, c, h, w = images.shape
    nrow = positive_int(nrow if nrow is not None else math.ceil(math.sqrt(b)), "nrow")
    ncol = math.ceil(b / nrow)
    grid = torch.full(
        (c, ncol * (h + padding) + padding, nrow * (w + padding) + padding), pad_value
    )
    for i, img in enumerate(pixels.clamp(0, 1)):
        r, q = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + q * (w + padding)
        grid[:, top : top + h, left : left + w] = img
    return grid


def save_image_grid(
    images: Tensor, path: str | Path, nrow: int | None = None, *, scale: int = 1
) -> Path:
    """Write ``[B, C, H, W]`` images in [0, 1] as a PNG grid (C = 1 or 3); returns the path.

    ``scale`` enlarges each pixel (nearest neighbour), useful for 8×8 digits. Missing folders of
    ``path`` are created.

    Raises:
        ValueError: the errors of :func:`image_grid`; other than 1 or 3 channels; a ``path``
            without an image extension PIL can write (``.png``, ``.jpg`` ...).
        IsADirectoryError: ``path`` is a folder.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = ncsn.viz.save_image_grid(torch.rand(16, 3, 32, 32), f"{tmp}/samples.png")
        ...     with Image.open(path) as picture:
        ...         picture.size  # 4 × 4 images of 32 pixels, 1-pixel borders
        (133, 133)
    """
    from PIL import Image

    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"path is a folder, not an image file: {str(path)!r}")
    Image.init()
    if path.suffix.lower() not in Image.registered_extensions():
        raise ValueError(
            f"path must end in an image extension such as .png; got path={str(path)!r}"
        )
    grid = image_grid(images, nrow)
    if grid.shape[0] not in (1, 3):
        raise ValueError(
            f"images must have 1 or 3 channels to be saved as PNG; got {grid.shape[0]}"
        )
    array = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    picture = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
    if scale != 1:
        scale = positive_int(scale, "scale")
        picture = picture.resize(
            (picture.width * scale, picture.height * scale), Image.Resampling.NEAREST
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
    return path


def require_matplotlib() -> Callable[..., Any]:
    """Import matplotlib, or raise an ImportError saying how to install it.

    Returns:
        ``new_figure(**kwargs)``, which makes a :class:`matplotlib.figure.Figure` (``kwargs``
        such as ``figsize`` go to it) drawn by the Agg canvas. Neither pyplot nor a global
        backend is involved, so the caller's matplotlib backend and figures stay as they are.

    Raises:
        ImportError: matplotlib is not installed; the message says ``pip install 'ncsn[examples]'``.

    Example:
        >>> import tempfile
        >>> new_figure = ncsn.viz.require_matplotlib()
        >>> fig = new_figure(figsize=(4, 3))
        >>> lines = fig.subplots().plot([0, 1], [1, 0])
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     fig.savefig(f"{tmp}/curve.png")
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            "plots need matplotlib; install it with: pip install 'ncsn[examples]'"
        ) from err

    def new_figure(**kwargs: Any) -> Any:
        fig = Figure(**kwargs)
        FigureCanvasAgg(fig)  # attaches itself to the figure
        return fig

    return new_figure


def _save_figure(fig: Any, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def plot_toy_samples(
    panels: Sequence[tuple[str, Tensor]], path: str | Path, *, limit: float = 8.0
) -> Path:
    """Scatter plots of 2-D sample sets side by side (the paper's Fig. 3); returns the path.

    Raises:
        ValueError: no panel, or a panel whose points are not a ``[N, 2]`` tensor.
    """
    if len(panels) == 0:
        raise ValueError("panels must hold at least one (title, points) pair; got none")
    for title, x in panels:
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != 2:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"panel {title!r} must hold 2-D points [N, 2]; got {got}")
    fig = require_matplotlib()(figsize=(4 * len(panels), 4))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (title, x) in zip(axes[0], panels, strict=True):
        pts = x.detach().cpu().numpy()
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5)
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
        ax.set_aspect("equal")
        ax.set_title(title)
    return _save_figure(fig, path)


def plot_score_fields(
    fields: Sequence[tuple[str, Callable[[Tensor], Tensor]]],
    path: str | Path,
    *,
    log_density: Callable[[Tensor], Tensor] | None = None,
    limit: float = 8.0,
    points: int = 20,
) -> Path:
    """Quiver plots of 2-D vector fields on a grid (the paper's Fig. 2), with an optional density panel."""
    new_figure = require_matplotlib()
    axis = torch.linspace(-limit, limit, points)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)
    n = len(fields) + (log_density is not None)
    fig = new_figure(figsize=(4 * n, 4))
    axes = fig.subplots(1, n, squeeze=False)
    panels = list(axes[0])
    if log_density is not None:
        fine = torch.linspace(-limit, limit, 200)
        fg = torch.stack(torch.meshgrid(fine, fine, indexing="xy"), -1).reshape(-1, 2)
        dens = log_density(fg).exp().reshape(200, 200).detach().numpy()
        ax = panels.pop(0)
        ax.imshow(dens, origin="lower", extent=(-limit, limit, -limit, limit), cmap="viridis")
        ax.set_title("data density")
    for ax, (title, field) in zip(panels, fields, strict=True):
        with torch.no_grad():
            v = field(grid).detach().cpu()
        norm = v.norm(dim=1, keepdim=True).clamp_min(1e-12)
        v = v / norm * norm.log1p()  # compress the scale so that small and large arrows are visible
        ax.quiver(
            grid[:, 0].numpy(), grid[:, 1].numpy(), v[:, 0].numpy(), v[:, 1].numpy(), width=0.004
        )
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
        ax.set_aspect("equal")
        ax.set_title(title)
    return _save_figure(fig, path)
