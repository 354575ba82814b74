"""Bad inputs to ncsn.training, each refused naming the argument (moved from the former tests/test_bad_inputs.py,
where the second audit of the Python API found them: each case failed before its fix)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

import ncsn
from contracts import gaussian_score
from ncsn import losses, nets
from ncsn.training import Output

SIGMAS = ncsn.geometric_sigmas(1.0, 0.1, 3)
X = torch.rand(4, 2)
NAN = torch.full((4, 2), float("nan"))


def _mlp(**kwargs: Any) -> nets.ScoreMLP:
    return nets.ScoreMLP(2, hidden=8, generator=torch.Generator().manual_seed(0), **kwargs)


def _dsm_loss() -> losses.DenoisingScoreMatching:
    return losses.DenoisingScoreMatching(ncsn.Schedule(SIGMAS))


def _meta(shape: tuple[int, ...] = (4, 2)) -> torch.Tensor:
    """A tensor on another device than the CPU models (meta: shapes, no values)."""
    return torch.zeros(shape, device="meta")


def _stepped(model: Any, **kwargs: Any) -> Any:
    """One train_step of a DSM loss on ``model`` with its own Adam, extra options in kwargs."""
    optimizer = kwargs.pop("optimizer", None) or torch.optim.Adam(model.parameters())
    return ncsn.training.train_step(model, kwargs.pop("loss", _dsm_loss()), optimizer, X, **kwargs)


# (id, call, exception type, regex the message must match: it names the argument)
CASES: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    (
        "Trainer/data on the meta device",
        lambda: ncsn.training.Trainer(_mlp(sigmas=SIGMAS), _dsm_loss(), _meta(), batch_size=2),
        ValueError,
        r"data must hold values; got a tensor on the meta device",
    ),
    (
        "train_step/model a function",
        lambda: ncsn.training.train_step(
            gaussian_score, _dsm_loss(), torch.optim.SGD(_mlp().parameters(), lr=0.1), X
        ),  # type: ignore[arg-type]
        TypeError,
        r"model must be a torch\.nn\.Module; got function",
    ),
    (
        "train_step/optimizer an int",
        lambda: _stepped(_mlp(sigmas=SIGMAS), optimizer=3),
        TypeError,
        r"optimizer must be a torch\.optim\.Optimizer; got 3",
    ),
    (
        "train_step/ema an int",
        lambda: _stepped(_mlp(sigmas=SIGMAS), ema=3),
        TypeError,
        r"ema must be an ncsn\.training\.EMA or None; got 3",
    ),
    (
        "train_step/scaler an int",
        lambda: _stepped(_mlp(sigmas=SIGMAS), scaler=3),
        TypeError,
        r"scaler must be a torch\.amp\.GradScaler or None; got 3",
    ),
    (
        "train_step/optimizer of another model (trains nothing)",
        lambda: _stepped(
            _mlp(sigmas=SIGMAS), optimizer=torch.optim.SGD(_mlp(sigmas=SIGMAS).parameters(), lr=0.1)
        ),
        ValueError,
        r"optimizer holds none of the model's parameters",
    ),
    (
        "train_step/per-example loss",
        lambda: _stepped(
            _mlp(sigmas=SIGMAS), loss=lambda m, x, generator=None: losses.dsm(m, x, 1.0)
        ),
        ValueError,
        r"loss must return a 0-d tensor \(the batch mean\); got shape \(4,\)",
    ),
    (
        "train_step/loss returns a float",
        lambda: _stepped(_mlp(sigmas=SIGMAS), loss=lambda m, x, generator=None: 1.0),
        TypeError,
        r"loss must return a 0-d torch\.Tensor; got float",
    ),
    (
        "train_step/loss without a gradient",
        lambda: _stepped(_mlp(sigmas=SIGMAS), loss=lambda m, x, generator=None: torch.tensor(1.0)),
        ValueError,
        r"loss returned a tensor that does not depend on the model's parameters",
    ),
    (
        "Trainer/optimizer of another model (trains nothing)",
        lambda: ncsn.training.Trainer(
            _mlp(sigmas=SIGMAS),
            _dsm_loss(),
            X,
            batch_size=2,
            optimizer=torch.optim.Adam(_mlp(sigmas=SIGMAS).parameters()),
        ),
        ValueError,
        r"optimizer holds none of the model's parameters",
    ),
    (
        "Output/folder an int",
        lambda: ncsn.training.Output(3),  # type: ignore[arg-type]
        TypeError,
        r"folder must be a str, an os\.PathLike or None; got 3",
    ),
    (
        "Trainer/output a folder name",
        lambda: ncsn.training.Trainer(_mlp(), _dsm_loss(), X, batch_size=2, output="run"),  # type: ignore[arg-type]
        TypeError,
        r"output must be an Output or None",
    ),
    (
        "Trainer/output folder is a file (found at the first checkpoint)",
        lambda: ncsn.training.Trainer(
            _mlp(sigmas=SIGMAS), _dsm_loss(), X, batch_size=2, output=Output(__file__)
        ),
        NotADirectoryError,
        r"output folder '.*test_training_bad_inputs\.py' is a file, not a folder",
    ),
    (
        "Trainer/output folder below a file",
        lambda: ncsn.training.Trainer(
            _mlp(sigmas=SIGMAS), _dsm_loss(), X, batch_size=2, output=Output(f"{__file__}/run")
        ),
        NotADirectoryError,
        r"output folder '.*test_training_bad_inputs\.py/run' cannot be created or written to",
    ),
    (
        "Trainer/output folder that cannot be created (/proc)",
        lambda: ncsn.training.Trainer(
            _mlp(sigmas=SIGMAS), _dsm_loss(), X, batch_size=2, output=Output("/proc/ncsn-run")
        ),
        OSError,
        r"output folder '/proc/ncsn-run' cannot be created or written to",
    ),
    (
        "save_checkpoint/path is a folder",
        lambda: ncsn.training.save_checkpoint("/tmp", {"step": 0}),
        IsADirectoryError,
        r"path '/tmp' is a folder; give a file path",
    ),
    (
        "save_checkpoint/folder that cannot be created (/proc)",
        lambda: ncsn.training.save_checkpoint("/proc/ncsn/c.pt", {"step": 0}),
        OSError,
        r"the folder of path '/proc/ncsn' cannot be created or written to",
    ),
    (
        "load_checkpoint/unknown map_location (blamed the file)",
        lambda: ncsn.training.load_checkpoint(__file__, map_location="gpu7"),
        ValueError,
        r"map_location must name a torch device; got map_location='gpu7'",
    ),
    (
        "model_weights/checkpoint a list",
        lambda: ncsn.training.model_weights([1]),
        TypeError,  # type: ignore[arg-type]
        r"checkpoint must be a dict from load_checkpoint; got list",
    ),
    (
        "model_weights/ema as a string",
        lambda: ncsn.training.model_weights({"model": {}}, ema="no"),  # type: ignore[arg-type]
        TypeError,
        r"ema must be a bool; got ema='no'",
    ),
    (
        "state_dict_mismatch/module an int",
        lambda: ncsn.training.state_dict_mismatch(3, {}),  # type: ignore[arg-type]
        TypeError,
        r"module must be a torch\.nn\.Module; got int",
    ),
    (
        "state_dict_mismatch/state an int",
        lambda: ncsn.training.state_dict_mismatch(_mlp(), 3),  # type: ignore[arg-type]
        TypeError,
        r"state must be a mapping \(a state_dict\); got int",
    ),
    (
        "EMA.update/model of other shapes",
        lambda: ncsn.training.EMA(nets.ScoreMLP(2, hidden=8)).update(nets.ScoreMLP(3, hidden=8)),
        ValueError,
        r"parameter fc1\.weight has shape \(8, 3\); the EMA tracks \(8, 2\)",
    ),
    (
        "EMA.update/float64 model",
        lambda: ncsn.training.EMA(nets.ScoreMLP(2, hidden=8)).update(
            nets.ScoreMLP(2, hidden=8).double()
        ),
        TypeError,
        r"parameter fc1\.weight has dtype torch\.float64; the EMA tracks torch\.float32",
    ),
    (
        "EMA.update/model on another device",
        lambda: ncsn.training.EMA(nets.ScoreMLP(2, hidden=8)).update(
            nets.ScoreMLP(2, hidden=8).to("meta")
        ),
        ValueError,
        r"parameter fc1\.weight is on device meta; the EMA is on device cpu",
    ),
    (
        "EMA.update/model an int",
        lambda: ncsn.training.EMA(_mlp()).update(3),  # type: ignore[arg-type]
        TypeError,
        r"model must be a torch\.nn\.Module; got int",
    ),
    (
        "EMA.load_state_dict/foreign state",
        lambda: ncsn.training.EMA(_mlp()).load_state_dict({"a": torch.zeros(1)}),
        ValueError,
        r"state does not fit this EMA's ScoreMLP: missing keys fc1\.weight, fc1\.bias, fc2\.weight \(\+3 more\); unexpected keys a",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "match"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_raises_naming_the_argument(
    call: Callable[[], object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()


def test_trainer_turns_nan_data_into_non_finite_loss_error() -> None:
    trainer = ncsn.training.Trainer(
        _mlp(sigmas=SIGMAS), _dsm_loss(), NAN, batch_size=2, seed=0, output=Output(progress=False)
    )
    with pytest.raises(ncsn.training.NonFiniteLossError, match=r"non-finite \(nan\) at step 1"):
        trainer.fit(2)
