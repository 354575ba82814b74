"""The pretrained digits model shipped in the package (``ncsn.pretrained("digits")``,
``src/ncsn/pretrained/digits``, written by ``benchmarks/pretrained.py``): it loads with its card,
its sampler and its provenance, and sampling it with the card's seed scores as the card says."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
import torch

import ncsn

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

# The golden test's tolerances. The same seed on the same CPU build gives the card's numbers to
# round-off; on another BLAS the chains separate after a few hundred Langevin steps and the draw
# is effectively another seed's. Over sampling seeds (the card: seeds 0-3, 500 samples each) the
# Fréchet distance moved between 16.1 and 22.2 (its bootstrap spread is 2.7) and the classifier
# score between 9.09 and 9.15; the test allows three standard deviations of each. A model that
# lost its training scores far outside (noise: about 300; the same network after 1,000 steps: 44).
FD_TOLERANCE = 8.0
SCORE_TOLERANCE = 0.3


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pretrained_script", BENCHMARKS / "pretrained.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_pretrained_digits_model_loads_with_its_sampler_and_card() -> None:
    digits = ncsn.pretrained("digits")
    assert isinstance(digits.model, ncsn.nets.RefineNet) and digits.data["shape"] == [1, 8, 8]
    assert digits.step == 8000 and not digits.model.training
    sampler = digits.sampler()
    assert isinstance(sampler, ncsn.samplers.AnnealedLangevin)
    assert (sampler.steps_per_level, sampler.denoise, sampler.num_model_calls) == (10, True, 221)
    folder = ncsn.sharing.pretrained_folder("digits")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]  # fmt: skip
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size < 3_000_000, f"the wheel's model folder is {size:,} bytes"
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "python benchmarks/quality.py --dataset digits" in card  # how to make it again
    assert "benchmarks/pretrained.py" in card and "Fréchet distance" in card
    measured = json.loads((folder / "config.json").read_text())["metadata"]["measured"]
    assert set(measured) == {"frechet_distance", "classifier_score"}
    # `ncsn.load("pretrained:digits")` is the same model
    again = ncsn.load("pretrained:digits")
    pairs = zip(digits.model.state_dict().items(), again.model.state_dict().items(), strict=True)
    for (k, a), (_, b) in pairs:
        assert torch.equal(a, b), k


def test_the_pretrained_model_samples_digits_a_few_at_a_time() -> None:
    digits = ncsn.pretrained("digits")
    g = torch.Generator().manual_seed(1)
    x0 = ncsn.samplers.uniform_init((16, 1, 8, 8), generator=g)
    with torch.no_grad():
        x = digits.sampler()(digits.model, x0, generator=g)
    assert x.shape == (16, 1, 8, 8) and torch.isfinite(x).all()
    evaluator = ncsn.metrics.digits_evaluator(seed=0)
    confident = evaluator.probabilities(x.clamp(0, 1)).max(dim=1).values
    assert float((confident > 0.5).float().mean()) >= 0.75  # digits, not noise


@pytest.mark.slow
def test_golden_samples_score_as_the_card_says() -> None:
    """500 samples from the card's seed, scored by the quality table's evaluator and reference."""
    script = _script()
    folder = ncsn.sharing.pretrained_folder("digits")
    card = json.loads((folder / "config.json").read_text())["metadata"]["measured"]
    scores = script.score(script.samples(folder))
    assert abs(scores["frechet_distance"] - card["frechet_distance"]) < FD_TOLERANCE, scores
    assert abs(scores["classifier_score"] - card["classifier_score"]) < SCORE_TOLERANCE, scores
