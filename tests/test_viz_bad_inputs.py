"""Bad inputs to ``ncsn.viz`` (its data cases are in ``tests/data/``): each a typed error that
names the argument and the value (the cases of the hostile audits, issue 12)."""

from __future__ import annotations

import math

import torch

import ncsn
from bad_inputs import Call, Case, Error, cases, raises_naming

# (id, call, exception type, regex the message must match: it names the argument)
CASES: list[Case] = [
    # --- viz (the data cases are in tests/data/) ------------------------------------------
    (
        "image_grid/images as a list",
        lambda: ncsn.viz.image_grid([1.0]),
        TypeError,  # type: ignore[arg-type]
        r"images must be a torch\.Tensor; got list",
    ),
    (
        "image_grid/uint8 images (clamped to white)",
        lambda: ncsn.viz.image_grid(torch.full((1, 1, 4, 4), 128, dtype=torch.uint8)),
        TypeError,
        r"images must be a floating-point tensor with values in \[0, 1\]; got dtype torch\.uint8",
    ),
    (
        "image_grid/no image",
        lambda: ncsn.viz.image_grid(torch.zeros(0, 1, 4, 4)),
        ValueError,
        r"images must hold at least one example; got shape \(0, 1, 4, 4\)",
    ),
    (
        "image_grid/negative padding",
        lambda: ncsn.viz.image_grid(torch.rand(2, 1, 4, 4), padding=-1),
        ValueError,
        r"padding must be an int >= 0; got padding=-1",
    ),
    (
        "image_grid/NaN images (garbage pixels)",
        lambda: ncsn.viz.image_grid(torch.full((2, 1, 4, 4), math.nan)),
        ValueError,
        r"images must be finite; got 32 NaN or infinite values in images of shape \(2, 1, 4, 4\)",
    ),
    (
        "save_image_grid/unknown extension",
        lambda: ncsn.viz.save_image_grid(torch.rand(1, 1, 4, 4), "/tmp/ncsn-audit-grid.xyz"),
        ValueError,
        r"path must end in an image extension such as \.png; got path='/tmp/ncsn-audit-grid\.xyz'",
    ),
    (
        "save_image_grid/path is a folder",
        lambda: ncsn.viz.save_image_grid(torch.rand(1, 1, 4, 4), "/tmp"),
        IsADirectoryError,
        r"path is a folder, not an image file: '/tmp'",
    ),
    (
        "plot_toy_samples/3-D points (first two plotted)",
        lambda: ncsn.viz.plot_toy_samples([("a", torch.rand(4, 3))], "/tmp/ncsn-audit-toy.png"),
        ValueError,
        r"panel 'a' must hold 2-D points \[N, 2\]; got \(4, 3\)",
    ),
]


@cases(CASES)
def test_bad_input_raises_naming_the_argument(call: Call, error: Error, match: str) -> None:
    raises_naming(call, error, match)
