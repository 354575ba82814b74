"""Ready-made configurations: the paper's NCSN, its single-noise-level baseline, NCSNv2's settings
computed from the data, and the one function that turns data and settings into a training run.

* :func:`ncsn_paper`, :func:`baseline` — the paper's NCSN and the single-σ baseline of its
  ablation, each a :class:`Setup`: a score model, the loss it is trained with and the sampler it is
  sampled with, built from the library's ordinary parts.
* :func:`recipe` — NCSNv2's settings (Song & Ermon, 2020) computed from a data set.
* :func:`prepare` — everything a training run needs from data and :class:`Settings` (what
  ``ncsn train`` does, and what its checkpoints record); :func:`from_data` is its short form.
* :func:`build_sampler` — any sampler of the library by name on a σ grid (what ``ncsn sample``
  does with a run's recorded settings).
"""

from ncsn.presets._paper import OFFICIAL_STEP_SIZE, Setup, baseline, ncsn_paper
from ncsn.presets._recipe import EXACT_DISTANCE_LIMIT, PAPER_NUM_LEVELS, Recipe, recipe
from ncsn.presets._run import (
    LOGNORMAL_DRAW,
    MODELS,
    SMALL_IMAGE_PIXELS,
    Run,
    Settings,
    default_model,
    default_ngf,
    from_data,
    prepare,
)
from ncsn.presets._sampling import SAMPLER_OPTIONS, SAMPLERS, build_sampler

__all__ = [
    "EXACT_DISTANCE_LIMIT",
    "LOGNORMAL_DRAW",
    "MODELS",
    "OFFICIAL_STEP_SIZE",
    "PAPER_NUM_LEVELS",
    "SAMPLERS",
    "SAMPLER_OPTIONS",
    "SMALL_IMAGE_PIXELS",
    "Recipe",
    "Run",
    "Settings",
    "Setup",
    "baseline",
    "build_sampler",
    "default_model",
    "default_ngf",
    "from_data",
    "ncsn_paper",
    "prepare",
    "recipe",
]
