"""What every sampler shares (samplers/_common.py): the σ grid as a value, the step hook and\ncallback, the diagnosis of a non-finite chain, host synchronisation, the kernels' purity, the\nchecks of settings and of the run's arguments, and the denoising step."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

import ncsn
from contracts import ALL_SAMPLERS, gaussian_score
from ncsn import nets
from ncsn.samplers import (
    AnnealedLangevin,
    ConsistentAnnealedSampling,
    Langevin,
    NonFiniteError,
    PredictorCorrector,
    ProbabilityFlowODE,
    StepInfo,
    consistent_step,
    denoise_step,
    langevin_corrector_step,
    langevin_step,
    ode_step,
    reverse_diffusion_step,
)


def _model(x: Tensor, sigma: Tensor) -> Tensor:
    """A smooth non-linear score model for equivalence tests."""
    return -torch.tanh(x) / sigma.reshape(-1, *([1] * (x.ndim - 1)))


class _SyncWatch(TorchFunctionMode):
    """Records host-synchronising tensor methods called between the first and last model call."""

    SYNCS = frozenset(
        {"item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "nonzero"}
    )

    def __init__(self) -> None:
        super().__init__()
        self.armed = False
        self.syncs: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = getattr(func, "__name__", "")
        if self.armed and name in self.SYNCS:
            self.syncs.append(name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize(
    "make",
    [
        lambda: AnnealedLangevin([1.0, 0.5, 0.1], 0.01, 5, denoise=True),
        lambda: Langevin(0.1, 0.01, 10),
        lambda: ncsn.samplers.ConsistentAnnealedSampling([1.0, 0.5, 0.1], eta=0.9, denoise=True),
        lambda: ncsn.samplers.PredictorCorrector([1.0, 0.5, 0.1], corrector_steps=2),
        lambda: ncsn.samplers.ProbabilityFlowODE([1.0, 0.5, 0.1], denoise=True),
    ],
    ids=["annealed", "langevin", "cas", "pc", "ode"],
)
def test_sampling_loop_makes_no_host_synchronisation(make) -> None:
    sampler = make()
    watch = _SyncWatch()
    calls = 0

    def model(x: Tensor, s: Tensor) -> Tensor:
        nonlocal calls
        calls += 1
        watch.armed = calls < sampler.num_model_calls  # armed from the first call to the last
        return -x * s.reshape(-1, 1)

    with watch:
        sampler(model, torch.rand(4, 3))
    assert calls == sampler.num_model_calls
    assert watch.syncs == []


def test_kernels_are_pure_and_out_steps_in_place() -> None:
    x = torch.rand(4, 3)
    before = x.clone()
    for step in (
        lambda **kw: consistent_step(_model, x, 1.0, 0.5, 0.8, noise=torch.ones_like(x), **kw),
        lambda **kw: reverse_diffusion_step(_model, x, 1.0, 0.5, noise=torch.ones_like(x), **kw),
        lambda **kw: langevin_corrector_step(_model, x, 1.0, 0.1, noise=torch.ones_like(x), **kw),
        lambda **kw: ode_step(_model, x, 1.0, 0.5, **kw),
    ):
        fresh = step()
        assert torch.equal(x, before) and fresh.data_ptr() != x.data_ptr()
        buffer = torch.empty_like(x)
        assert step(out=buffer) is buffer and torch.equal(buffer, fresh)


def test_samplers_compare_and_hash_by_their_settings() -> None:
    a = AnnealedLangevin([1.0, 0.5], 0.1, 3)
    same = AnnealedLangevin(torch.tensor([1.0, 0.5], dtype=torch.float64), 0.1, 3)
    assert a == same and hash(a) == hash(same) and len({a, same}) == 1
    assert a != AnnealedLangevin([1.0, 0.25], 0.1, 3)
    assert a != AnnealedLangevin([1.0, 0.5, 0.25], 0.1, 3)
    assert a != AnnealedLangevin([1.0, 0.5], 0.2, 3)
    assert a != AnnealedLangevin([1.0, 0.5], 0.1, 4)
    assert a != AnnealedLangevin([1.0, 0.5], 0.1, 3, denoise=True)
    assert a != Langevin(0.5, 0.1, 3) and a != "AnnealedLangevin"
    b = Langevin(0.5, 0.1, 3)
    assert b == Langevin(0.5, 0.1, 3) and hash(b) == hash(Langevin(0.5, 0.1, 3))
    assert b != Langevin(0.5, 0.1, 4) and b != Langevin(0.0, 0.1, 3)


def test_numpy_scalars_are_accepted_as_numbers() -> None:
    a = AnnealedLangevin(np.array([1.0, 0.5]), np.float32(0.125), np.int64(3))
    assert a == AnnealedLangevin([1.0, 0.5], 0.125, 3)
    assert type(a.step_size) is float and type(a.steps_per_level) is int
    b = Langevin(np.float64(0.5), np.float32(0.125), np.int32(3))
    assert b == Langevin(0.5, 0.125, 3) and hash(b) == hash(Langevin(0.5, 0.125, 3))
    x = ncsn.samplers.uniform_init((np.int64(2), 3), low=np.float32(-1), high=np.int64(1))
    assert x.shape == (2, 3)
    assert ncsn.samplers.gaussian_init((2,), sigma=np.float32(2.0)).shape == (2,)
    assert langevin_step(_model, torch.rand(2, 2), np.float64(0.5), np.float32(0.1)).shape == (2, 2)
    mask = ncsn.samplers.inpainting_mask("random", (np.int64(4), 4), fraction=np.float64(0.5))
    assert mask.shape == (4, 4)


@pytest.mark.parametrize("bad", [True, "0.1", None, torch.tensor(0.1)])
def test_non_numbers_are_rejected_with_a_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match="step_size must be a real number; got step_size="):
        AnnealedLangevin([1.0], bad, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="num_steps must be an int; got num_steps="):
        Langevin(0.1, 0.1, bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="steps_per_level must be an int; got steps_per_level="):
        AnnealedLangevin([1.0], 0.1, np.float64(3.0))  # type: ignore[arg-type]


SAMPLER_IDS = [name for name, _ in ALL_SAMPLERS]
GRID = (1.0, 0.5, 0.1)


def _sampler(make: Callable[[Tensor], ncsn.Sampler], sigmas: object = GRID) -> Any:
    return make(sigmas if isinstance(sigmas, Tensor) else torch.tensor(sigmas))


# ---------------------------------------------------------------- settings: the σ grid is a value
GRID_SAMPLERS = [(name, make) for name, make in ALL_SAMPLERS if name != "langevin"]


@pytest.mark.parametrize("name, make", GRID_SAMPLERS, ids=[n for n, _ in GRID_SAMPLERS])
def test_the_grid_is_a_copy_without_grad_that_compares_by_value(name: str, make) -> None:  # type: ignore[no-untyped-def]
    """Before: the sampler kept the caller's tensor (and its requires_grad) as ``sigmas``."""
    levels = torch.tensor(GRID, requires_grad=True)
    sampler = _sampler(make, levels)
    x0 = torch.rand(3, 2, dtype=torch.float64)
    before = sampler(gaussian_score, x0, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        levels.mul_(2.0)  # changing the tensor it was built from changes nothing
    assert isinstance(sampler.sigmas, ncsn.schedules.SigmaGrid)
    assert sampler.sigmas.values == tuple(torch.tensor(GRID).tolist())
    assert not sampler.sigmas.tensor.requires_grad
    assert sampler == _sampler(make, torch.tensor(GRID))
    again = sampler(gaussian_score, x0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(before, again)


def test_the_grid_reads_like_the_tensor_where_one_was_used() -> None:
    """What the CLI, the benchmarks and the docs do with ``sampler.sigmas``."""
    sigmas = ncsn.geometric_sigmas(1.0, 0.01, 10)
    sampler = ncsn.samplers.AnnealedLangevin(sigmas, 2e-5, 1)
    assert float(sampler.sigmas[0]) == 1.0 and len(sampler.sigmas) == 10
    assert torch.equal(sampler.sigmas[-1].expand(3), sigmas[-1].expand(3))
    assert sampler.sigmas.tolist() == sigmas.tolist()
    assert torch.equal(sampler.sigmas.tensor, sigmas)
    assert dataclasses.replace(sampler, steps_per_level=5).sigmas == sampler.sigmas


# ---------------------------------------------------------------- hooks and callbacks
def _grow(x: Tensor, sigma: float) -> None:
    x.unsqueeze_(0)


def _widen(x: Tensor, sigma: float) -> None:
    x.data = x.data.double()


@pytest.mark.parametrize("name, make", ALL_SAMPLERS, ids=SAMPLER_IDS)
@pytest.mark.parametrize("hook", [_grow, _widen], ids=["shape", "dtype"])
def test_a_hook_that_changes_the_iterate_is_refused_naming_it(name: str, make, hook) -> None:  # type: ignore[no-untyped-def]
    """Before: the sampler returned the hook's shape or dtype."""
    with pytest.raises(ValueError, match=rf"hook=<function {hook.__name__} .* changed the iterate"):
        _sampler(make)(gaussian_score, torch.rand(2, 3), hook=hook)


@pytest.mark.parametrize("name, make", ALL_SAMPLERS, ids=SAMPLER_IDS)
def test_a_callback_that_changes_the_iterate_is_refused_naming_it(name: str, make) -> None:  # type: ignore[no-untyped-def]
    def flatten(info: StepInfo) -> None:
        info.x.resize_(6)

    with pytest.raises(
        ValueError, match=r"callback=<function .*flatten .* from shape \(2, 3\), .* to shape \(6,\)"
    ):
        _sampler(make)(gaussian_score, torch.rand(2, 3), callback=flatten)


@pytest.mark.parametrize("name, make", ALL_SAMPLERS, ids=SAMPLER_IDS)
def test_a_hook_that_returns_a_new_iterate_is_refused(name: str, make) -> None:  # type: ignore[no-untyped-def]
    """A hook works in place: one returning its result would be silently ignored."""
    with pytest.raises(TypeError, match=r"hook must change x in place and return None; .*Tensor"):
        _sampler(make)(gaussian_score, torch.rand(2, 3), hook=lambda x, s: x * 0)


# ---------------------------------------------------------------- non-finite chains: which cause
def _nan_below(threshold: float) -> Callable[[Tensor, Tensor], Tensor]:
    """The score of N(0, I), NaN for σ below ``threshold``."""

    def model(x: Tensor, sigma: Tensor) -> Tensor:
        bad = (sigma < threshold).reshape(-1, *([1] * (x.ndim - 1)))
        return torch.where(bad, torch.full_like(x, float("nan")), -x)

    return model


@pytest.mark.parametrize("name, make", ALL_SAMPLERS, ids=SAMPLER_IDS)
def test_a_model_returning_nan_is_named_as_the_cause(name: str, make) -> None:  # type: ignore[no-untyped-def]
    """Before: "the step size is probably too large" (or the grid, or the snr)."""
    with pytest.raises(NonFiniteError, match=r"the model returned NaN or infinite values") as err:
        _sampler(make)(lambda x, s: x * float("nan"), torch.rand(4, 3))
    assert isinstance(err.value, FloatingPointError)
    assert err.value.source == "model" and err.value.level == 0
    assert "step size" not in str(err.value) and "snr" not in str(err.value)


@pytest.mark.parametrize(
    "make, level, sigma",
    [
        (lambda: AnnealedLangevin(GRID, 0.01, 2), 2, 0.1),
        (lambda: ConsistentAnnealedSampling(GRID, eta=0.9), 2, 0.1),
        (lambda: PredictorCorrector(GRID), 2, 0.1),
        (lambda: ProbabilityFlowODE(GRID, solver="euler", denoise=True), 2, 0.1),
        (lambda: ProbabilityFlowODE(GRID), 1, 0.5),  # Heun's second call of the step 0.5 → 0.1
    ],
    ids=["annealed", "cas", "pc", "ode_euler", "ode_heun"],
)
def test_the_level_where_the_model_went_non_finite_is_named(make, level: int, sigma: float) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NonFiniteError, match=rf"at level {level} \(σ = {sigma}\)") as err:
        make()(_nan_below(0.2), torch.rand(4, 3, dtype=torch.float64))
    assert (err.value.source, err.value.level) == ("model", level)
    assert err.value.sigma == pytest.approx(sigma)


def test_a_diverging_chain_keeps_the_step_size_advice() -> None:
    with pytest.raises(NonFiniteError, match=r"model's outputs were finite: the step size") as err:
        AnnealedLangevin([1.0, 0.1], 1e3, 50)(lambda x, s: -x, torch.rand(4, 2))
    assert err.value.source == "chain" and err.value.level == 0


def test_a_model_overflowing_on_a_diverged_iterate_is_the_chains_fault() -> None:
    """x³ overflows only once the chain has grown far beyond its start: the step size's fault."""
    with pytest.raises(NonFiniteError, match=r"had grown to \|x\| = .* the step size") as err:
        AnnealedLangevin([1.0, 0.1], 1e3, 50)(lambda x, s: x**3, torch.rand(4, 2) + 2)
    assert err.value.source == "chain"


@pytest.mark.parametrize(
    "make, advice",
    [
        (lambda: PredictorCorrector([1.0, 0.1], snr=1e4), "the snr"),
        (lambda: ConsistentAnnealedSampling([1.0, 0.5], eta=1.0), "a smaller eta"),
        (lambda: ProbabilityFlowODE([1e3, 10.0, 1.0], solver="euler"), "the σ grid"),
    ],
    ids=["pc", "cas", "ode"],
)
def test_each_sampler_advises_its_own_setting_when_the_chain_diverges(make, advice: str) -> None:  # type: ignore[no-untyped-def]
    def steep(x: Tensor, sigma: Tensor) -> Tensor:  # finite, but far too steep for these steps
        return -1e30 * x

    with pytest.raises(NonFiniteError, match=advice) as err:
        make()(steep, torch.rand(4, 2) + 1)
    assert err.value.source == "chain"


def test_encode_names_the_model_as_the_cause() -> None:
    with pytest.raises(NonFiniteError, match=r"ProbabilityFlowODE\.encode: the model returned NaN"):
        ProbabilityFlowODE(GRID).encode(_nan_below(2.0), torch.rand(4, 3))


# ---------------------------------------------------------------- denoise_step
def test_denoise_step_is_tweedie_for_a_scalar_or_per_example_sigma() -> None:
    x = torch.randn(3, 2, dtype=torch.float64)
    sigma = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    expected = x + sigma[:, None] ** 2 * gaussian_score(x, sigma)
    torch.testing.assert_close(denoise_step(gaussian_score, x, sigma), expected)
    one = denoise_step(gaussian_score, x, 0.5)
    torch.testing.assert_close(
        one, x + 0.25 * gaussian_score(x, torch.full((3,), 0.5, dtype=torch.float64))
    )
    with pytest.raises(ValueError, match=r"sigma must be positive and finite; got sigma=0\.0"):
        denoise_step(gaussian_score, x, 0.0)


# ---------------------------------------------------------------- bad input
X = torch.rand(4, 2)
SIGMAS = ncsn.geometric_sigmas(1.0, 0.1, 3)
EMPTY_RULE = r"x must hold at least one example; got shape \(0, 2\)"


def _meta(shape: tuple[int, ...] = (4, 2)) -> Tensor:
    """A tensor on another device than the CPU models (meta: shapes, no values)."""
    return torch.zeros(shape, device="meta")


def _mlp(**kwargs: Any) -> nets.ScoreMLP:
    return nets.ScoreMLP(2, hidden=8, generator=torch.Generator().manual_seed(0), **kwargs)


AL = ncsn.samplers.AnnealedLangevin(SIGMAS, 0.01, 1)


AUDIT_CASES: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    (
        "AnnealedLangevin/model not callable",
        lambda: AL(None, X),
        TypeError,  # type: ignore[arg-type]
        r"model must be a callable score model; got None",
    ),
    (
        "Langevin/callback not callable",
        lambda: ncsn.samplers.Langevin(0.1, 0.01, 2)(gaussian_score, X, callback=3),
        TypeError,  # type: ignore[arg-type]
        r"callback must be callable or None; got callback=3",
    ),
    (
        "PredictorCorrector/hook not callable",
        lambda: ncsn.samplers.PredictorCorrector(SIGMAS)(gaussian_score, X, hook="inpaint"),
        TypeError,  # type: ignore[arg-type]
        r"hook must be callable or None; got hook='inpaint'",
    ),
    (
        "ProbabilityFlowODE.encode/model not callable",
        lambda: ncsn.samplers.ProbabilityFlowODE(SIGMAS).encode(1.0, X),
        TypeError,  # type: ignore[arg-type]
        r"model must be a callable score model; got 1\.0",
    ),
    (
        "ConsistentAnnealedSampling/model returns complex",
        lambda: ncsn.samplers.ConsistentAnnealedSampling(SIGMAS, 0.9)(
            lambda x, s: x.to(torch.complex64), X
        ),
        TypeError,
        r"model must return a real floating-point tensor; got dtype torch\.complex64",
    ),
    (
        "ProbabilityFlowODE/model returns complex (imaginary part dropped)",
        lambda: ncsn.samplers.ProbabilityFlowODE(SIGMAS)(lambda x, s: x.to(torch.complex64), X),
        TypeError,
        r"model must return a real floating-point tensor",
    ),
    (
        "AnnealedLangevin/model returns on another device",
        lambda: AL(lambda x, s: x.to("meta"), X),
        ValueError,
        r"model returned a tensor on device meta but its input x is on device cpu",
    ),
    (
        "AnnealedLangevin/x on another device than the model",
        lambda: AL(_mlp(sigmas=SIGMAS), _meta()),
        ValueError,
        r"x is on device meta but the ScoreMLP parameters are on device cpu",
    ),
    (
        "AnnealedLangevin/sigmas on the meta device",
        lambda: ncsn.samplers.AnnealedLangevin(SIGMAS.to("meta"), 0.1, 1),
        ValueError,
        r"sigmas must hold values; got a tensor on the meta device",
    ),
    (
        "denoise_step/empty batch",
        lambda: ncsn.samplers.denoise_step(gaussian_score, torch.zeros(0, 2), 1.0),
        ValueError,
        EMPTY_RULE,
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "match"), [c[1:] for c in AUDIT_CASES], ids=[c[0] for c in AUDIT_CASES]
)
def test_audited_bad_input_raises_naming_the_argument(
    call: Callable[[], object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()
