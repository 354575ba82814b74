"""Loading official NCSN checkpoints and reproducing the official network's outputs."""

from __future__ import annotations

import pickle
import re
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import Tensor

import ncsn
from ncsn.nets import CheckpointError, RefineNet, load_official_checkpoint

DATA = Path(__file__).parent / "fixtures"
CHECKPOINT = DATA / "official_refinenet_c3_ngf8.pth"
IO = DATA / "official_refinenet_c3_ngf8_io.pt"


@pytest.fixture(scope="module")
def io() -> dict[str, Tensor]:
    data = torch.load(IO, weights_only=True)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def model_state() -> OrderedDict[str, Tensor]:
    """The checkpoint's model state dict, keys without the ``module.`` prefix."""
    raw = torch.load(CHECKPOINT, weights_only=True)
    return OrderedDict((k.removeprefix("module."), v) for k, v in raw[0].items())


def errors(net: RefineNet, io: dict[str, Tensor]) -> tuple[float, float]:
    with torch.no_grad():
        score = net(io["x"], io["sigmas"][io["labels"]])
    diff = (score - io["score"]).abs().max().item()
    return diff, diff / io["score"].abs().max().item()


def test_fixture_file_is_in_the_official_format() -> None:
    raw = torch.load(CHECKPOINT, weights_only=True)
    assert isinstance(raw, list) and len(raw) == 2
    assert all(k.startswith("module.") for k in raw[0])
    assert set(raw[1]) == {"state", "param_groups"}


def test_reproduces_official_outputs(io: dict[str, Tensor]) -> None:
    net = load_official_checkpoint(CHECKPOINT)
    assert (net.channels, net.ngf, net.num_levels) == (io["channels"], io["ngf"], io["num_classes"])
    torch.testing.assert_close(net.sigmas, io["sigmas"], rtol=1e-6, atol=0)
    max_abs, max_rel = errors(net, io)
    print(f"official fixture: max abs diff {max_abs:.3e}, relative to max |score| {max_rel:.3e}")
    assert max_abs < 1e-4
    assert max_rel < 1e-5
    # The level-index fast path gives the same numbers.
    with torch.no_grad():
        by_index = net.forward_levels(io["x"], io["labels"])
    assert (by_index - io["score"]).abs().max().item() < 1e-4


def test_reproduces_official_outputs_in_float64(io: dict[str, Tensor]) -> None:
    net = load_official_checkpoint(CHECKPOINT).double()
    with torch.no_grad():
        score = net(io["x"].double(), io["sigmas"][io["labels"]].double())
    assert (score - io["score"].double()).abs().max().item() < 1e-4


def test_loaded_network_is_trainable(io: dict[str, Tensor]) -> None:
    net = load_official_checkpoint(CHECKPOINT, map_location="cpu")
    net(io["x"][:1], io["sigmas"][:1]).sum().backward()
    assert all(p.grad is not None and p.device.type == "cpu" for p in net.parameters())


@pytest.fixture
def cuda_checkpoint(tmp_path: Path) -> Path:
    """The fixture re-saved as from a GPU: every storage tagged ``cuda:0``, as in the official
    files. Written through torch.serialization's tagger registry (a tagger ahead of the CPU's),
    so no GPU is needed; the registry is restored afterwards."""
    raw = torch.load(CHECKPOINT, weights_only=True)
    path = tmp_path / "saved_from_cuda.pth"
    registry = torch.serialization._package_registry
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.serialization, "_package_registry", list(registry))
        torch.serialization.register_package(-1, lambda storage: "cuda:0", lambda s, loc: None)
        torch.save(raw, path)
    assert torch.serialization._package_registry is registry
    seen: set[str] = set()

    def record(storage: torch.UntypedStorage, location: str) -> torch.UntypedStorage:
        seen.add(location)
        return storage

    torch.load(path, map_location=record, weights_only=True)
    assert seen == {"cuda:0"}  # the file says every tensor lives on cuda:0
    return path


def test_checkpoint_saved_from_cuda_loads_on_the_cpu_by_default(
    cuda_checkpoint: Path, io: dict[str, Tensor]
) -> None:
    if not torch.cuda.is_available():  # what torch.load itself does with such a file here
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(cuda_checkpoint, weights_only=True)
    net = load_official_checkpoint(cuda_checkpoint)
    assert {p.device.type for p in net.parameters()} == {"cpu"}
    assert net.sigmas.device.type == "cpu"
    max_abs, max_rel = errors(net, io)
    assert max_abs < 1e-4
    assert max_rel < 1e-5


def test_unavailable_map_location_is_named_not_called_corrupt(cuda_checkpoint: Path) -> None:
    with pytest.raises(
        ValueError, match=r"map_location='cuda:99': cannot load tensors onto"
    ) as info:
        load_official_checkpoint(cuda_checkpoint, map_location="cuda:99")
    assert not isinstance(info.value, CheckpointError)
    assert "corrupt" not in str(info.value)
    with pytest.raises(ValueError, match=r"map_location='gpu' is not a device"):
        load_official_checkpoint(CHECKPOINT, map_location="gpu")
    with pytest.raises(TypeError, match=r"map_location must be a device .* got 0"):
        load_official_checkpoint(CHECKPOINT, map_location=0)  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", ["", "module."])
def test_plain_state_dicts_load(
    tmp_path: Path, io: dict[str, Tensor], model_state: OrderedDict[str, Tensor], prefix: str
) -> None:
    path = tmp_path / "plain.pt"
    torch.save({prefix + k: v for k, v in model_state.items()}, path)
    net = load_official_checkpoint(str(path))
    assert errors(net, io)[0] < 1e-4


def test_custom_sigmas(io: dict[str, Tensor]) -> None:
    sigmas = ncsn.geometric_sigmas(2.0, 0.02, 10)
    net = load_official_checkpoint(CHECKPOINT, sigmas=sigmas)
    torch.testing.assert_close(net.sigmas, sigmas)
    with torch.no_grad():  # level i of the network now answers to the new σ_i
        score = net(io["x"], sigmas[io["labels"]])
    assert (score - io["score"]).abs().max().item() < 1e-4


def test_wrong_number_of_sigmas() -> None:
    with pytest.raises(ValueError, match=r"sigmas has 5 levels but the checkpoint .* L=10 levels"):
        load_official_checkpoint(CHECKPOINT, sigmas=ncsn.geometric_sigmas(1.0, 0.01, 5))
    with pytest.raises(ValueError, match="sigmas must be strictly decreasing"):
        load_official_checkpoint(CHECKPOINT, sigmas=torch.linspace(0.01, 1.0, 10))


# --- bad files --------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match=re.escape(f"checkpoint file not found: '{path}'")):
        load_official_checkpoint(path)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="is not a file"):
        load_official_checkpoint(tmp_path)


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are not the weights you are looking for\n" * 20)
    with pytest.raises(CheckpointError, match=r"notes\.txt' is not a PyTorch checkpoint"):
        load_official_checkpoint(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="is not a PyTorch checkpoint"):
        load_official_checkpoint(path)


def test_truncated_file(tmp_path: Path) -> None:
    data = CHECKPOINT.read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.pth' is not a PyTorch checkpoint"):
        load_official_checkpoint(path)
    assert isinstance(CheckpointError("x"), ValueError)


class _RunsCode:
    """Unpickling this object would create ``marker`` (a stand-in for arbitrary code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_code_executing_pickle_is_refused(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = [{"begin_conv.weight": torch.zeros(1)}, _RunsCode(marker)]
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with path.open("wb") as f:
            pickle.dump(payload, f, protocol=2)
    with pytest.raises(CheckpointError, match=r"refused to load .*evil\.pth.*safe loading"):
        load_official_checkpoint(path)
    assert not marker.exists()


def test_missing_and_unexpected_keys(tmp_path: Path, model_state: OrderedDict[str, Tensor]) -> None:
    state = OrderedDict(model_state)
    del state["res2.0.shortcut.conv.bias"]
    del state["refine4.crp.norms.1.embed.weight"]
    state["res2.0.extra.weight"] = torch.zeros(3)
    path = tmp_path / "keys.pth"
    torch.save([{"module." + k: v for k, v in state.items()}, {}], path)
    with pytest.raises(CheckpointError) as info:
        load_official_checkpoint(path)
    message = str(info.value)
    assert (
        "missing keys ['res2.0.shortcut.conv.bias', 'refine4.crp.norms.1.embed.weight']" in message
    )
    assert "unexpected keys ['res2.0.extra.weight']" in message
    assert "RefineNet(channels=3, ngf=8, L=10)" in message


def test_keys_needed_for_inference_missing(
    tmp_path: Path, model_state: OrderedDict[str, Tensor]
) -> None:
    state = OrderedDict(model_state)
    del state["begin_conv.weight"]
    path = tmp_path / "nobegin.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"missing keys \['begin_conv\.weight'\]"):
        load_official_checkpoint(path)


def test_shape_mismatch(tmp_path: Path, model_state: OrderedDict[str, Tensor]) -> None:
    state = OrderedDict(model_state)
    state["res3.1.conv2.weight"] = torch.zeros(16, 16, 1, 1)
    path = tmp_path / "shape.pth"
    torch.save(state, path)
    pattern = (
        r"shape mismatch for 'res3\.1\.conv2\.weight': the checkpoint has \(16, 16, 1, 1\), "
        r"RefineNet\(channels=3, ngf=8, L=10\) expects \(16, 16, 3, 3\)"
    )
    with pytest.raises(CheckpointError, match=pattern):
        load_official_checkpoint(path)


def test_inference_key_with_wrong_rank(
    tmp_path: Path, model_state: OrderedDict[str, Tensor]
) -> None:
    state = OrderedDict(model_state)
    state["normalizer.embed.weight"] = torch.zeros(240)
    path = tmp_path / "rank.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"'normalizer\.embed\.weight' has shape \(240,\)"):
        load_official_checkpoint(path)


@pytest.mark.parametrize(
    ("payload", "pattern"),
    [
        ([], "holds an empty list"),
        ([torch.zeros(3), {}], "holds a Tensor; expected a state dict"),
        (torch.zeros(3), "holds a Tensor; expected a state dict"),
        ({"begin_conv.weight": 3}, r"not a state dict: entries that are not \(str, Tensor\)"),
    ],
)
def test_not_a_state_dict(tmp_path: Path, payload: object, pattern: str) -> None:
    path = tmp_path / "odd.pth"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=pattern):
        load_official_checkpoint(path)
