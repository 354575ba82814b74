"""Bad inputs to ``ncsn.toy``: each a typed error that names the argument and the value (the cases
of the hostile audits, issue 12)."""

from __future__ import annotations

import torch

import ncsn
from bad_inputs import EMPTY_RULE, GMM, Call, Case, Error, X, cases, raises_naming

# (id, call, exception type, regex the message must match: it names the argument)
CASES: list[Case] = [
    # --- toy -----------------------------------------------------------------------------
    (
        "GaussianMixture/means as a string",
        lambda: ncsn.toy.GaussianMixture([1.0], "a"),
        TypeError,  # type: ignore[arg-type]
        r"means must be real numbers or a tensor of them; got 'a'",
    ),
    (
        "Gaussian/complex cov",
        lambda: ncsn.toy.Gaussian([0.0], torch.ones(1, 1, dtype=torch.complex64)),
        TypeError,
        r"cov must hold real numbers; got dtype torch\.complex64",
    ),
    (
        "GaussianMixture.score/sigma as a string",
        lambda: GMM.score(X, sigma="a"),
        TypeError,  # type: ignore[arg-type]
        r"sigma must be a real number or a tensor of them; got sigma='a'",
    ),
    (
        "GaussianMixture.log_prob/empty batch",
        lambda: GMM.log_prob(torch.zeros(0, 2)),
        ValueError,
        EMPTY_RULE,
    ),
    (
        "Gaussian.score/empty batch",
        lambda: ncsn.toy.Gaussian([0.0, 0.0], torch.eye(2)).score(torch.zeros(0, 2)),
        ValueError,
        EMPTY_RULE,
    ),
    (
        "ExactScore/not a distribution",
        lambda: ncsn.toy.ExactScore(3),
        TypeError,  # type: ignore[arg-type]
        r"distribution must be a toy distribution with an exact \.score\(x, sigma\) .*got int 3",
    ),
]


@cases(CASES)
def test_bad_input_raises_naming_the_argument(call: Call, error: Error, match: str) -> None:
    raises_naming(call, error, match)
