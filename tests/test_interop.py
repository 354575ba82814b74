"""The glue of docs/how-to/interop.md with the libraries around ncsn, where they are installed
(the `interop` extra): Accelerate drives ``train_step`` through ``backward=``, a Lightning module
trains a score model with the EMA as a submodule; both give the very weights of a plain loop.
k-diffusion and diffusers are checked in tests/nets/test_adapters.py."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

import ncsn

SCHEDULE = ncsn.GeometricSchedule(1.0, 0.01, 10)
LOSS = ncsn.losses.DenoisingScoreMatching(SCHEDULE)
STEPS = 20


def _data() -> torch.Tensor:
    return ncsn.toy.paper_mixture().sample(256, generator=torch.Generator().manual_seed(0))


def _fresh() -> nn.Module:
    gen = torch.Generator().manual_seed(1)
    return ncsn.nets.ScoreMLP(2, hidden=32, sigmas=SCHEDULE.sigmas, generator=gen)


def _plain_loop() -> nn.Module:
    """The reference: STEPS steps of train_step with Adam and the noise of seed 2."""
    model = _fresh()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(2)
    for _ in range(STEPS):
        ncsn.training.train_step(model, LOSS, optimizer, _data(), generator=gen)
    return model


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return all(torch.equal(x, y) for x, y in pairs)


@pytest.mark.skipif(importlib.util.find_spec("accelerate") is None, reason="accelerate is not installed")  # fmt: skip
def test_accelerate_drives_train_step_through_backward() -> None:
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    model = _fresh()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model, optimizer = accelerator.prepare(model, optimizer)
    ema = ncsn.training.EMA(accelerator.unwrap_model(model), rate=0.99)
    gen = torch.Generator().manual_seed(2)
    for _ in range(STEPS):
        ncsn.training.train_step(
            model, LOSS, optimizer, _data(), generator=gen, ema=ema, backward=accelerator.backward
        )
    assert _same_weights(accelerator.unwrap_model(model), _plain_loop())
    assert not _same_weights(ema.model, accelerator.unwrap_model(model))


@pytest.mark.skipif(importlib.util.find_spec("lightning") is None, reason="lightning is not installed")  # fmt: skip
@pytest.mark.filterwarnings("ignore::FutureWarning")  # lightning's use of torch's pytree API
@pytest.mark.filterwarnings("ignore:Found .* module\\(s\\) in eval mode")  # the EMA copy
def test_a_lightning_module_trains_a_score_model_with_its_ema() -> None:
    import lightning

    class ScoreModule(lightning.LightningModule):
        def __init__(self, model: nn.Module, loss: ncsn.ScoreLoss, seed: int) -> None:
            super().__init__()
            self.model, self.loss = model, loss
            self.ema = ncsn.training.EMA(model, rate=0.99)  # a submodule: in checkpoints
            self.generator = torch.Generator().manual_seed(seed)

        def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
            (x,) = batch
            return self.loss(self.model, x, generator=self.generator)

        def on_train_batch_end(self, outputs: object, batch: object, batch_idx: int) -> None:
            self.ema.update(self.model)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.model.parameters(), lr=1e-3)

    module = ScoreModule(_fresh(), LOSS, seed=2)
    data = torch.utils.data.TensorDataset(_data())
    trainer = lightning.Trainer(
        max_steps=STEPS,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=256))
    assert _same_weights(module.model, _plain_loop())
    assert "ema.fc1.weight" in module.state_dict()  # the EMA weights, as the model names them
    assert not _same_weights(module.ema.model, module.model)
