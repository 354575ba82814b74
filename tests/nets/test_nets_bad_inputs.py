"""Bad inputs to ``ncsn.nets``: each a typed error that names the argument and the value (the
cases of the hostile audits, issue 12), and the ScoreMLP's σ shapes and dtypes as properties."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from bad_inputs import (
    EMPTY_RULE,
    SIGMAS,
    Call,
    Case,
    Error,
    X,
    cases,
    fast,
    meta,
    mlp,
    raises_naming,
    refinenet,
)
from ncsn import nets
from strategies import other_float_dtypes, wrong_sigma_shapes

# (id, call, exception type, regex the message must match: it names the argument)
CASES: list[Case] = [
    # --- ScoreMLP --------------------------------------------------------------------------
    (
        "ScoreMLP/float64 x, float32 parameters",
        lambda: mlp(sigmas=SIGMAS)(X.double(), SIGMAS[:1].expand(4)),
        TypeError,
        r"x has dtype torch\.float64 but the ScoreMLP parameters have dtype torch\.float32",
    ),
    (
        "ScoreMLP/unconditional, float16 x",
        lambda: mlp()(X.half()),
        TypeError,
        r"x has dtype torch\.float16 but the ScoreMLP parameters have dtype torch\.float32",
    ),
    (
        "ScoreMLP/integer x",
        lambda: mlp()(torch.zeros(4, 2, dtype=torch.int64)),
        TypeError,
        r"x must be a floating-point tensor; got dtype torch\.int64",
    ),
    (
        "ScoreMLP/x as a list",
        lambda: mlp()([[0.0, 0.0]]),
        TypeError,
        r"x must be a torch\.Tensor; got list",
    ),
    (
        "ScoreMLP/x on another device",
        lambda: mlp()(torch.zeros(4, 2, device="meta")),
        ValueError,
        r"x is on device meta but the ScoreMLP parameters are on device cpu",
    ),
    (
        "ScoreMLP/sigma of the wrong length",
        lambda: mlp(sigmas=SIGMAS)(X, SIGMAS[:1].expand(3)),
        ValueError,
        r"sigma must be a scalar or have shape \[B\]=\[4\]; got sigma\.shape=\(3,\)",
    ),
    (
        "ScoreMLP/sigma [B, 1]",
        lambda: mlp(sigmas=SIGMAS)(X, SIGMAS[:1].expand(4, 1)),
        ValueError,
        r"sigma must be a scalar or have shape \[B\]=\[4\]; got sigma\.shape=\(4, 1\)",
    ),
    (
        "ScoreMLP/sigma as a string",
        lambda: mlp(sigmas=SIGMAS)(X, "a"),
        TypeError,
        r"sigma must be a real number or a tensor of them; got sigma='a'",
    ),
    (
        "ScoreMLP/empty batch",
        lambda: mlp(sigmas=SIGMAS)(torch.zeros(0, 2), torch.zeros(0)),
        ValueError,
        EMPTY_RULE,
    ),
    (
        "ScoreMLP/unconditional, empty batch",
        lambda: mlp()(torch.zeros(0, 2)),
        ValueError,
        EMPTY_RULE,
    ),
    (
        "ScoreMLP/int generator",
        lambda: nets.ScoreMLP(2, generator=0),  # type: ignore[arg-type]
        TypeError,
        r"generator must be a torch\.Generator or None; got 0",
    ),
    (
        "ScoreMLP/integer sigmas",
        lambda: nets.ScoreMLP(2, sigmas=torch.tensor([2, 1])),
        TypeError,
        r"sigmas must be a floating-point tensor; got dtype torch\.int64",
    ),
    (
        "ScoreMLP/sigmas of strings",
        lambda: nets.ScoreMLP(2, sigmas=["a"]),  # type: ignore[list-item]
        TypeError,
        r"sigmas must be a 1-D tensor of floats",
    ),
    # --- RefineNet -------------------------------------------------------------------------
    (
        "RefineNet/empty batch",
        lambda: refinenet()(torch.zeros(0, 1, 8, 8), torch.zeros(0)),
        ValueError,
        r"x must hold at least one example; got shape \(0, 1, 8, 8\)",
    ),
    (
        "RefineNet.forward_levels/empty batch",
        lambda: refinenet().forward_levels(
            torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.int64)
        ),
        ValueError,
        r"x must hold at least one example; got shape \(0, 1, 8, 8\)",
    ),
    (
        "RefineNetBaseline/empty batch",
        lambda: nets.RefineNetBaseline(1, 2)(torch.zeros(0, 1, 8, 8)),
        ValueError,
        r"x must hold at least one example; got shape \(0, 1, 8, 8\)",
    ),
    # --- nets ----------------------------------------------------------------------------
    (
        "RefineNet/x on another device",
        lambda: refinenet()(meta((2, 1, 8, 8)), SIGMAS[:1]),
        ValueError,
        r"x is on device meta but the RefineNet parameters are on device cpu",
    ),
    (
        "RefineNet.forward_levels/x on another device",
        lambda: refinenet().forward_levels(meta((2, 1, 8, 8)), torch.zeros(2, dtype=torch.int64)),
        ValueError,
        r"x is on device meta but the RefineNet parameters are on device cpu",
    ),
    (
        "RefineNetBaseline/x on another device",
        lambda: nets.RefineNetBaseline(1, 2)(meta((2, 1, 8, 8))),
        ValueError,
        r"x is on device meta but the RefineNetBaseline parameters are on device cpu",
    ),
    (
        "ScaledByInverseSigma(RefineNetBaseline)/x on another device",
        lambda: nets.ScaledByInverseSigma(nets.RefineNetBaseline(1, 2))(meta((2, 1, 8, 8)), 1.0),
        ValueError,
        r"x is on device meta but the RefineNetBaseline parameters are on device cpu",
    ),
    (
        "RefineNet/sigma on another device",
        lambda: refinenet()(torch.rand(2, 1, 8, 8), SIGMAS[:1].expand(2).to("meta")),
        ValueError,
        r"sigma is on device meta but x is on device cpu",
    ),
    (
        "RefineNet.forward_levels/labels on another device",
        lambda: refinenet().forward_levels(
            torch.rand(2, 1, 8, 8), torch.zeros(2, dtype=torch.int64, device="meta")
        ),
        ValueError,
        r"labels is on device meta but x is on device cpu",
    ),
    (
        "RefineNet/sigma as a string",
        lambda: refinenet()(torch.rand(2, 1, 8, 8), "a"),
        TypeError,
        r"sigma must be a real number or a tensor of them; got sigma='a'",
    ),
    (
        "RefineNet/sigma None",
        lambda: refinenet()(torch.rand(2, 1, 8, 8), None),
        TypeError,
        r"sigma must be a real number or a tensor of them; got sigma=None",
    ),
    (
        "RefineNet/bool sigma (silently level 0)",
        lambda: refinenet()(torch.rand(2, 1, 8, 8), torch.ones(2, dtype=torch.bool)),
        TypeError,
        r"sigma must hold real numbers; got dtype torch\.bool",
    ),
    (
        "RefineNet/complex sigma (imaginary part dropped)",
        lambda: refinenet()(torch.rand(2, 1, 8, 8), torch.ones(2, dtype=torch.complex64)),
        TypeError,
        r"sigma must hold real numbers; got dtype torch\.complex64",
    ),
    (
        "RefineNet/integer x",
        lambda: refinenet()(torch.zeros(2, 1, 8, 8, dtype=torch.int64), 1.0),
        TypeError,
        r"x must be a floating-point tensor; got dtype torch\.int64",
    ),
    (
        "RefineNet/sigmas None",
        lambda: nets.RefineNet(1, 4, None),
        TypeError,  # type: ignore[arg-type]
        r"sigmas must be a 1-D tensor of floats; got None",
    ),
    (
        "CondInstanceNorm2dPlus/wrong channel count",
        lambda: nets.CondInstanceNorm2dPlus(4, 2)(torch.rand(2, 3, 4, 4), torch.tensor([0, 1])),
        ValueError,
        r"CondInstanceNorm2dPlus\(4\) expects x of shape \[B, 4, \*spatial\]; got x\.shape=\(2, 3, 4, 4\)",
    ),
    (
        "InstanceNorm2dPlus/wrong channel count",
        lambda: nets.InstanceNorm2dPlus(4)(torch.rand(2, 3, 4, 4)),
        ValueError,
        r"InstanceNorm2dPlus\(4\) expects x of shape \[B, 4, \*spatial\]",
    ),
    (
        "Preconditioned/sigma 0 (inf score)",
        lambda: nets.Preconditioned(torch.tanh, sigma_data=0.3)(X, 0.0),
        ValueError,
        r"sigma must be positive and finite; got sigma=0\.0",
    ),
    (
        "Preconditioned/sigma on another device",
        lambda: nets.Preconditioned(torch.tanh, sigma_data=0.3)(X, meta((4,))),
        ValueError,
        r"sigma is on device meta but x is on device cpu",
    ),
    (
        "Preconditioned/empty batch",
        lambda: nets.Preconditioned(torch.tanh, sigma_data=0.3)(torch.zeros(0, 2), 1.0),
        ValueError,
        EMPTY_RULE,
    ),
    (
        "Preconditioned/sigma_data 0",
        lambda: nets.Preconditioned(torch.tanh, sigma_data=0.0),
        ValueError,
        r"sigma_data must be positive and finite; got sigma_data=0\.0",
    ),
    (
        "ScaledByInverseSigma/sigma 0 (inf score)",
        lambda: nets.ScaledByInverseSigma(torch.tanh)(X, 0.0),
        ValueError,
        r"sigma must be positive and finite; got sigma=0\.0",
    ),
    (
        "ScaledByInverseSigma/negative sigma tensor (flipped score)",
        lambda: nets.ScaledByInverseSigma(torch.tanh)(X, torch.tensor([-1.0, 1.0, 1.0, 1.0])),
        ValueError,
        r"sigma must be positive and finite; got sigma=\[-1\.0, 1\.0, 1\.0, 1\.0\]",
    ),
    (
        "ScaledByInverseSigma/sigma on another device",
        lambda: nets.ScaledByInverseSigma(torch.tanh)(X, meta((4,))),
        ValueError,
        r"sigma is on device meta but x is on device cpu",
    ),
    (
        "ScaledByInverseSigma/empty batch",
        lambda: nets.ScaledByInverseSigma(torch.tanh)(torch.zeros(0, 2), 1.0),
        ValueError,
        EMPTY_RULE,
    ),
    (
        "DenoiserScore/sigma 0",
        lambda: nets.DenoiserScore(lambda x, s: x)(X, 0.0),
        ValueError,
        r"sigma must be positive and finite; got sigma=0\.0",
    ),
    (
        "NoisePredictorScore/NaN sigma",
        lambda: nets.NoisePredictorScore(lambda x, s: x)(X, math.nan),
        ValueError,
        r"sigma must be positive and finite; got sigma=nan",
    ),
    (
        "NoisePredictorScore/empty batch",
        lambda: nets.NoisePredictorScore(lambda x, s: x)(torch.zeros(0, 2), 1.0),
        ValueError,
        EMPTY_RULE,
    ),
    (
        "autocast/x as a list",
        lambda: nets.autocast(mlp())([[0.0, 0.0]], 1.0),
        TypeError,  # type: ignore[arg-type]
        r"x must be a torch\.Tensor; got list",
    ),
    (
        "compiled/x as a list",
        lambda: nets.compiled(mlp())([[0.0, 0.0]], 1.0),
        TypeError,  # type: ignore[arg-type]
        r"x must be a torch\.Tensor; got list",
    ),
    (
        "compiled/unknown option (deferred to the first call)",
        lambda: nets.compiled(mlp(), moed="max-autotune"),
        TypeError,
        r"options must be keyword arguments of torch\.compile; got \['moed'\]",
    ),
    (
        "cuda_graphed/x as a list",
        lambda: nets.cuda_graphed(mlp())([[0.0]], 1.0),
        TypeError,  # type: ignore[arg-type]
        r"x must be a torch\.Tensor; got list",
    ),
    (
        "CondInstanceNorm2dPlus/labels beyond the levels",
        lambda: nets.CondInstanceNorm2dPlus(4, 10)(torch.rand(2, 4, 4, 4), torch.tensor([0, 10])),
        ValueError,
        r"labels must lie in \[0, 10\); got labels=\[0, 10\]",
    ),
    (
        "CondInstanceNorm2dPlus/negative labels",
        lambda: nets.CondInstanceNorm2dPlus(4, 10)(torch.rand(2, 4, 4, 4), torch.tensor([-1, 0])),
        ValueError,
        r"labels must lie in \[0, 10\); got labels=\[-1, 0\]",
    ),
    (
        "CondInstanceNorm2dPlus/float labels",
        lambda: nets.CondInstanceNorm2dPlus(4, 10)(torch.rand(2, 4, 4, 4), torch.tensor([0.0, 1])),
        TypeError,
        r"labels must be an int64 or int32 tensor",
    ),
]


@cases(CASES)
def test_bad_input_raises_naming_the_argument(call: Call, error: Error, match: str) -> None:
    raises_naming(call, error, match)


@fast
@given(st.data())
def test_score_mlp_refuses_sigma_of_a_wrong_shape(data: st.DataObject) -> None:
    batch = data.draw(st.integers(1, 4))
    shape = data.draw(wrong_sigma_shapes(batch))
    net = mlp(sigmas=SIGMAS)
    with pytest.raises(
        ValueError, match=rf"sigma must be a scalar or have shape \[B\]=\[{batch}\]"
    ):
        net(torch.rand(batch, 2), torch.full(shape, float(SIGMAS[0])))


@fast
@given(other_float_dtypes, st.booleans())
def test_score_mlp_refuses_a_dtype_other_than_its_parameters(
    dtype: torch.dtype, conditional: bool
) -> None:
    net = mlp(sigmas=SIGMAS) if conditional else mlp()
    x = torch.rand(3, 2).to(dtype)
    with pytest.raises(
        TypeError,
        match=rf"x has dtype {dtype} but the ScoreMLP parameters have dtype torch\.float32",
    ):
        net(x, SIGMAS[:1].expand(3))
