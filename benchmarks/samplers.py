"""Sample quality against model evaluations for every sampler of ``ncsn.samplers``.

1. The paper's toy mixture 0.2·N((-5,-5), I) + 0.8·N((5,5), I) with its exact score: for each
   sampler at about 100, 300 and 1,000 model calls per sample, the error of the (5, 5) mode weight
   against 0.8 (with its binomial standard error) and the sliced Wasserstein distance to exact
   samples of the data (the floor: exact samples against exact samples).
2. The embedded 8×8 digits with one trained network, NCSNv2's unconditional RefineNet with the
   1/σ output scaling (``ScaledByInverseSigma``), which accepts any σ in its training range, so
   every sampler can use a grid of its own length: the digits evaluator's Fréchet distance
   against the held-out digits and its classifier score, at the same three budgets (next to the
   real-vs-real floor).

Every sampler ends at σ_L = 0.01 (the digits: in pixel units) and starts from N(0, σ₁²I) (the
toy: σ₁ = 20; the digits: σ₁ = the data's maximum pairwise distance, NCSNv2's Technique 1). On the
toy, whose means lie at ±5, N(0, 20²I) is not p_{σ₁}; a second block starts from exact samples of
p_{σ₁}, so that it measures the samplers alone. The Langevin step size ε comes from NCSNv2's
Technique 4 for the chosen T.

Run:   python benchmarks/samplers.py            (about 15 minutes on 2 CPU cores)
       python benchmarks/samplers.py --quick    (a smoke run, about a minute)
       python benchmarks/samplers.py --toy-only (the toy part again, keeping the digits rows)
Writes benchmarks/results/samplers.json, samplers.md and samplers.png (a --quick run writes into
benchmarks/results/samplers_quick/). Nothing is asserted: the numbers are for reading.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import ncsn

HERE = Path(__file__).resolve().parent
BUDGETS = (100, 300, 1000)
SIGMA_MIN = 0.01
T_ANNEALED = 5  # steps per level of annealed Langevin (NCSNv2's T)


def _geometric(sigma_max: float, levels: int) -> Tensor:
    return ncsn.geometric_sigmas(sigma_max, SIGMA_MIN, max(2, levels))


def samplers_at(budget: int, sigma_max: float) -> dict[str, ncsn.Sampler]:
    """Each sampler configured to make about ``budget`` model calls per sample."""
    out: dict[str, Any] = {}
    levels = max(2, budget // T_ANNEALED)
    grid = _geometric(sigma_max, levels)
    eps = ncsn.ncsnv2_step_size(grid, T_ANNEALED)
    out["annealed"] = ncsn.samplers.AnnealedLangevin(grid, eps, T_ANNEALED)
    grid = _geometric(sigma_max, max(2, (budget - 1) // T_ANNEALED))
    eps = ncsn.ncsnv2_step_size(grid, T_ANNEALED)
    out["annealed+denoise"] = ncsn.samplers.AnnealedLangevin(grid, eps, T_ANNEALED, denoise=True)
    grid = _geometric(sigma_max, budget - 1)
    ratio = float(grid[1] / grid[0])
    out["cas"] = ncsn.samplers.ConsistentAnnealedSampling(grid, eta=1.0 - ratio**2, denoise=True)
    grid = _geometric(sigma_max, budget // 2)
    out["pc"] = ncsn.samplers.PredictorCorrector(grid, snr=0.16, corrector_steps=1, denoise=True)
    grid = _geometric(sigma_max, budget // 2)
    out["ode"] = ncsn.samplers.ProbabilityFlowODE(grid, solver="heun")
    return out


def _timed(
    sampler: Any, model: Callable[[Tensor, Tensor], Tensor], x0: Tensor, seed: int
) -> tuple[Tensor, float]:
    start = time.perf_counter()
    x = sampler(model, x0, generator=torch.Generator().manual_seed(seed))
    return x, time.perf_counter() - start


def toy(num_chains: int, seed: int) -> list[dict[str, Any]]:
    gmm = ncsn.toy.paper_mixture()
    exact = gmm.score_model()
    g = torch.Generator().manual_seed(seed)
    reference = gmm.sample(num_chains, generator=g).float()
    other = gmm.sample(num_chains, generator=g).float()
    floor = ncsn.metrics.sliced_wasserstein(reference, other, generator=g)
    rows: list[dict[str, Any]] = [
        {"sampler": "exact samples (floor)", "budget": 0, "model_calls": 0, "swd": floor}
    ]
    starts = {
        # what a user does: σ₁ = 20 is not ≫ the data (means ±5), so this is not p_{σ₁}
        "N(0, σ₁²I)": lambda: ncsn.samplers.gaussian_init((num_chains, 2), 20.0, generator=g),
        # the sampler alone: exact samples of p_{σ₁}
        "exact p_σ₁": lambda: (
            gmm.sample(num_chains, generator=g) + 20.0 * torch.randn(num_chains, 2, generator=g)
        ),
    }
    for (start, draw), budget in itertools.product(starts.items(), BUDGETS):
        for name, sampler in samplers_at(budget, 20.0).items():
            x0 = draw()
            x, seconds = _timed(sampler, exact, x0, seed + budget)
            weights = ncsn.metrics.mode_weights(x.double(), gmm)
            w = float(weights[1])
            se = (0.8 * 0.2 / num_chains) ** 0.5
            swd = ncsn.metrics.sliced_wasserstein(x, reference, generator=g)
            rows.append(
                {
                    "sampler": name,
                    "start": start,
                    "budget": budget,
                    "model_calls": sampler.num_model_calls,  # type: ignore[attr-defined]
                    "weight_55": w,
                    "weight_error": abs(w - 0.8),
                    "weight_se": se,
                    "swd": swd,
                    "seconds": seconds,
                }
            )
            calls = rows[-1]["model_calls"]
            print(f"toy  {start:11s} {name:18s} {calls:5d} calls  w={w:.3f}  swd={swd:.3f}")
    return rows


class _Dequantize:
    def __call__(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        return ncsn.data.dequantize(x, levels=17, generator=generator)


def _digits_model(steps: int, ngf: int, batch_size: int, seed: int, out: Path) -> tuple[Any, float]:
    import shutil

    train_x, _ = ncsn.data.load_digits("train")
    sigma_max = ncsn.max_pairwise_distance(train_x)
    sigmas = ncsn.ncsnv2_sigmas(train_x[0].numel(), sigma_max, SIGMA_MIN)
    g = torch.Generator().manual_seed(seed)
    net = ncsn.nets.ScaledByInverseSigma(ncsn.nets.RefineNetBaseline(1, ngf, generator=g))
    loss = ncsn.losses.DenoisingScoreMatching(ncsn.Schedule(sigmas), power=2.0)
    shutil.rmtree(out, ignore_errors=True)
    trainer = ncsn.training.Trainer(
        net,
        loss,
        train_x,
        batch_size=batch_size,
        transform=_Dequantize(),
        output=ncsn.training.Output(out, log_every=max(1, steps // 10), progress=False),
        ema_rate=0.999,
        seed=seed,
    )
    try:
        trainer.fit(steps)
        model = trainer.ema_model().eval()
    finally:
        trainer.close()
    return model, sigma_max


def digits(
    steps: int, ngf: int, batch_size: int, num_samples: int, seed: int, out: Path
) -> tuple[list[dict[str, Any]], dict[str, Tensor]]:
    evaluator = ncsn.metrics.digits_evaluator(seed=0)
    train_x, _ = ncsn.data.load_digits("train")
    test_x, _ = ncsn.data.load_digits("test")
    start = time.perf_counter()
    model, sigma_max = _digits_model(steps, ngf, batch_size, seed, out / "digits_run")
    train_seconds = time.perf_counter() - start
    print(f"digits: trained {steps} steps in {train_seconds:.0f} s (σ₁ = {sigma_max:.2f})")
    test_f = evaluator.features(test_x)

    def score(x: Tensor) -> tuple[float, float]:
        x = x.clamp(0, 1)
        fd = ncsn.metrics.frechet_distance(evaluator.features(x), test_f)
        cs = ncsn.metrics.inception_score(evaluator.probabilities(x), splits=1).mean
        return float(fd), float(cs)

    real = train_x[torch.randperm(len(train_x), generator=torch.Generator().manual_seed(0))]
    fd, cs = score(real[:num_samples])
    rows: list[dict[str, Any]] = [
        {"sampler": "real digits (floor)", "budget": 0, "model_calls": 0, "fd": fd, "score": cs}
    ]
    grids: dict[str, Tensor] = {}
    g = torch.Generator().manual_seed(seed)
    for budget in BUDGETS:
        for name, sampler in samplers_at(budget, sigma_max).items():
            x0 = ncsn.samplers.gaussian_init(
                (num_samples, 1, 8, 8), sigma=sigma_max, mean=0.5, generator=g
            )
            try:
                with torch.no_grad():
                    x, seconds = _timed(sampler, model, x0, seed + budget)
            except FloatingPointError as err:
                rows.append({"sampler": name, "budget": budget, "error": str(err)})
                continue
            fd, cs = score(x)
            rows.append(
                {
                    "sampler": name,
                    "budget": budget,
                    "model_calls": sampler.num_model_calls,  # type: ignore[attr-defined]
                    "fd": fd,
                    "fd_ratio": fd / rows[0]["fd"],
                    "score": cs,
                    "seconds": seconds,
                }
            )
            grids[f"{name}@{budget}"] = x[:16].clamp(0, 1)
            print(
                f"digits {name:18s} {rows[-1]['model_calls']:5d} calls  FD={fd:.1f}  score={cs:.2f}"
            )
    rows[0]["train_seconds"] = train_seconds
    return rows, grids


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    head = "| " + " | ".join(c[1] for c in columns) + " |"
    rule = "| " + " | ".join("---" for _ in columns) + " |"
    lines = [head, rule]
    for row in rows:
        cells = []
        for key, _, fmt in columns:
            value = row.get(key)
            cells.append("—" if value is None else format(value, fmt))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (about a minute)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--toy-only",
        action="store_true",
        help="rerun the toy part only (about a minute), keeping the digits rows of the last run",
    )
    args = parser.parse_args()
    global BUDGETS
    if args.quick:
        BUDGETS = (20, 60)
    out = HERE / "results" / ("samplers_quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    toy_rows = toy(500 if args.quick else 4000, args.seed)
    grids: dict[str, Tensor] = {}
    if args.toy_only:
        digit_rows = json.loads((out / "samplers.json").read_text())["digits"]
    else:
        digit_rows, grids = digits(
            steps=50 if args.quick else 3000,
            ngf=8 if args.quick else 32,
            batch_size=64,
            num_samples=64 if args.quick else 297,
            seed=args.seed,
            out=out,
        )
    result = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "budgets": list(BUDGETS),
        "toy": toy_rows,
        "digits": digit_rows,
    }
    (out / "samplers.json").write_text(json.dumps(result, indent=2))
    md = [
        "# Samplers: quality against model calls",
        "",
        f"{result['machine']}. Toy: the paper's mixture with its exact score. Digits: one "
        "ScaledByInverseSigma RefineNet (EMA weights), every sampler on its own σ grid.",
        "",
        "## Toy mixture (exact score)",
        "",
        _table(
            toy_rows,
            [
                ("sampler", "sampler", "s"),
                ("start", "start", "s"),
                ("model_calls", "model calls", "d"),
                ("weight_55", "weight of (5,5) (truth 0.8)", ".3f"),
                ("weight_se", "its s.e.", ".3f"),
                ("swd", "sliced Wasserstein to exact", ".3f"),
                ("seconds", "seconds", ".1f"),
            ],
        ),
        "",
        "## Digits (trained network)",
        "",
        _table(
            digit_rows,
            [
                ("sampler", "sampler", "s"),
                ("model_calls", "model calls", "d"),
                ("fd", "Fréchet distance", ".1f"),
                ("fd_ratio", "÷ real floor", ".2f"),
                ("score", "classifier score", ".2f"),
                ("seconds", "seconds", ".1f"),
            ],
        ),
        "",
    ]
    (out / "samplers.md").write_text("\n".join(md))
    if grids:
        rows = torch.cat(list(grids.values()))
        ncsn.viz.save_image_grid(rows, out / "samplers.png", nrow=16, scale=2)
    print("\n".join(md))


if __name__ == "__main__":
    main()
