"""ncsn.sharing: model folders (safetensors weights, config.json, model card) and the pretrained
models shipped in the package."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import ncsn
from ncsn.sharing import CARD, CONFIG, WEIGHTS, load_model, save_model

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SIGMAS = ncsn.geometric_sigmas(1.0, 0.01, 5)
SAMPLING = {"sampler": "annealed", "step_size": 1e-4, "steps_per_level": 3, "denoise": True}


def _seeded(make: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        torch.manual_seed(0)  # test-side seeding of the initial weights only
        return make()

    return build


NETWORKS = [
    ("refinenet", _seeded(lambda: ncsn.nets.RefineNet(1, 4, SIGMAS, norm="paper")), (2, 1, 8, 8)),
    ("refinenet_logit", _seeded(lambda: ncsn.nets.RefineNet(3, 4, SIGMAS, logit_transform=True)), (2, 3, 8, 8)),
    ("refinenet_baseline", _seeded(lambda: ncsn.nets.RefineNetBaseline(1, 4)), (2, 1, 8, 8)),
    ("score_mlp", _seeded(lambda: ncsn.nets.ScoreMLP(2, hidden=8, sigmas=SIGMAS)), (3, 2)),
    ("score_mlp_unconditional", _seeded(lambda: ncsn.nets.ScoreMLP(3, hidden=8)), (3, 3)),
    ("score_mlp_float64", _seeded(lambda: ncsn.nets.ScoreMLP(2, hidden=8, sigmas=SIGMAS).double()), (3, 2)),
    ("scaled_by_inverse_sigma", _seeded(lambda: ncsn.nets.ScaledByInverseSigma(ncsn.nets.RefineNetBaseline(1, 4))), (2, 1, 8, 8)),
    ("preconditioned", _seeded(lambda: ncsn.nets.Preconditioned(ncsn.nets.RefineNetBaseline(1, 4), sigma_data=0.3)), (2, 1, 8, 8)),
    ("denoiser_score", _seeded(lambda: ncsn.nets.DenoiserScore(ncsn.nets.ScoreMLP(2, hidden=8))), (3, 2)),
    ("noise_predictor_score", _seeded(lambda: ncsn.nets.NoisePredictorScore(ncsn.nets.ScoreMLP(2, hidden=8, sigmas=SIGMAS))), (3, 2)),
]  # fmt: skip


def _trained(make: Callable[[], nn.Module]) -> nn.Module:
    """A network whose weights differ from a fresh initialisation (and from each other)."""
    net = make()
    with torch.no_grad():
        for k, p in enumerate(net.parameters()):
            p.add_(0.01 * (k + 1))
    return net


def _grid(net: nn.Module) -> torch.Tensor:
    own = getattr(getattr(net, "module", net), "sigmas", None)
    return own if isinstance(own, torch.Tensor) else SIGMAS


@pytest.mark.parametrize("name, make, shape", NETWORKS, ids=[n[0] for n in NETWORKS])
def test_round_trip_is_bit_exact_for_every_network_kind(
    name: str, make: Callable[[], nn.Module], shape: tuple[int, ...], tmp_path: Path
) -> None:
    net = _trained(make).eval()
    sigmas = _grid(net)
    folder = save_model(
        net, tmp_path / name, sigmas=sigmas, sampling=SAMPLING, data={"shape": list(shape[1:])}
    )
    loaded = ncsn.load(folder)
    assert ncsn.nets.model_config(loaded.model) == ncsn.nets.model_config(net)
    ours, theirs = net.state_dict(), loaded.model.state_dict()
    assert list(ours) == list(theirs)
    for key in ours:
        assert ours[key].dtype == theirs[key].dtype, key
        assert torch.equal(ours[key], theirs[key]), key
    assert loaded.sigmas is not None and torch.equal(loaded.sigmas, sigmas.float())
    assert loaded.sampling == SAMPLING and loaded.data == {"shape": list(shape[1:])}
    assert loaded.file == folder / WEIGHTS and not loaded.model.training
    x = torch.rand(shape, dtype=ours[next(iter(ours))].dtype)
    sigma = torch.full((shape[0],), float(sigmas[1]), dtype=x.dtype)
    with torch.no_grad():
        assert torch.equal(loaded.model(x, sigma), net(x, sigma))
    assert loaded.sampler() == ncsn.presets.build_sampler("annealed", sigmas, **{k: v for k, v in SAMPLING.items() if k != "sampler"})  # fmt: skip


@pytest.mark.parametrize(
    "wrap", [ncsn.nets.autocast, ncsn.nets.compiled, ncsn.nets.cuda_graphed], ids=["autocast", "compiled", "cuda_graphed"]
)  # fmt: skip
def test_a_wrapped_model_saves_the_network_inside(
    wrap: Callable[[nn.Module], nn.Module], tmp_path: Path
) -> None:
    net = _trained(NETWORKS[0][1])
    loaded = ncsn.load(save_model(wrap(net), tmp_path / "m"))
    assert type(loaded.model) is ncsn.nets.RefineNet
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key


def test_the_folder_holds_its_three_files_and_a_readable_config(tmp_path: Path) -> None:
    net = _trained(NETWORKS[3][1])
    meta = {"step": 1200, "command": "ncsn train --data moons", "quality": "FD 1.0", "seed": 3}
    folder = save_model(net, tmp_path / "m", sampling=SAMPLING, data={"shape": [2]}, metadata=meta)
    assert sorted(p.name for p in folder.iterdir()) == sorted([CARD, CONFIG, WEIGHTS])
    config = json.loads((folder / CONFIG).read_text())
    assert config["format"] == ncsn.sharing.FORMAT and config["ncsn_version"] == ncsn.__version__
    assert config["model"] == ncsn.nets.model_config(net) and config["dtype"] == "float32"
    assert config["metadata"] == meta and config["sigmas"] == SIGMAS.tolist()
    card = (folder / CARD).read_text()
    assert card.startswith("---\nlibrary_name: ncsn\n")
    for text in ("ncsn train --data moons", "FD 1.0", "seed: 3", "ScoreMLP", "5 levels"):
        assert text in card, text
    assert ncsn.load(folder).step == 1200
    assert ncsn.sharing.is_model_folder(folder) and not ncsn.sharing.is_model_folder(tmp_path)


def test_a_card_of_ones_own_is_written_as_given(tmp_path: Path) -> None:
    folder = save_model(_trained(NETWORKS[3][1]), tmp_path / "m", card="# mine\n")
    assert (folder / CARD).read_text() == "# mine\n"


def test_an_existing_model_is_replaced_only_when_asked(tmp_path: Path) -> None:
    a, b = _trained(NETWORKS[3][1]), NETWORKS[3][1]()
    save_model(a, tmp_path / "m")
    with pytest.raises(FileExistsError, match=r"config\.json exists"):
        save_model(b, tmp_path / "m")
    save_model(b, tmp_path / "m", overwrite=True)
    assert torch.equal(ncsn.load(tmp_path / "m").model.fc1.weight, b.fc1.weight)
    assert not list((tmp_path / "m").glob(".*.tmp"))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"sampling": {"sampler": "annealed", "steps_per_level": 0}}, ValueError, "steps_per_level"),
        ({"sampling": {"sampler": "nope"}}, ValueError, "name must be one of"),
        ({"sampling": {"sampler": "annealed", "speed": 2}}, TypeError, "speed"),
        ({"sigmas": [1.0, 0.5]}, ValueError, "network's own 5 levels"),
        ({"metadata": {"weights": torch.ones(2)}}, TypeError, r"metadata\['weights'\]"),
        ({"metadata": {"score": float("nan")}}, ValueError, r"metadata\['score'\] must be finite"),
        ({"data": {1: "a"}}, TypeError, "data keys must be strings"),
        ({"card": b"# bytes"}, TypeError, "card must be a str"),
    ],
)  # fmt: skip
def test_bad_arguments_are_refused_before_anything_is_written(
    kwargs: dict[str, object], error: type[Exception], match: str, tmp_path: Path
) -> None:
    with pytest.raises(error, match=match):
        save_model(_trained(NETWORKS[3][1]), tmp_path / "m", **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "m").exists()


def test_sampling_needs_a_grid_for_a_network_that_takes_any_sigma(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sampling needs sigmas"):
        save_model(NETWORKS[4][1](), tmp_path / "m", sampling=SAMPLING)


def test_other_modules_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="model_config supports"):
        save_model(nn.Linear(2, 2), tmp_path / "m")
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        save_model(lambda x, s: x, tmp_path / "m")  # type: ignore[arg-type]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return save_model(
        _trained(NETWORKS[3][1]), tmp_path / "m", sampling=SAMPLING, data={"shape": [2]}
    )


def _edit_config(folder: Path, **changes: object) -> None:
    config = json.loads((folder / CONFIG).read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key)
        else:
            config[key] = value
    (folder / CONFIG).write_text(json.dumps(config))


def _edit_weights(folder: Path, change: Callable[[dict[str, torch.Tensor]], None]) -> None:
    weights = load_file(str(folder / WEIGHTS))
    change(weights)
    save_file(weights, str(folder / WEIGHTS))


def _one_line_error(folder: Path, match: str) -> str:
    with pytest.raises(ncsn.CheckpointError, match=match) as info:
        load_model(folder)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_folder_from_a_newer_format_names_the_file_the_key_and_the_writer(folder: Path) -> None:
    _edit_config(folder, format=ncsn.sharing.FORMAT + 1, ncsn_version="9.0.0")
    message = _one_line_error(folder, "'format' 2 is newer")
    assert str(folder / CONFIG) in message and "ncsn 9.0.0" in message and "upgrade ncsn" in message


def test_a_missing_tensor_names_the_file_and_the_key(folder: Path) -> None:
    _edit_weights(folder, lambda w: w.pop("fc2.bias"))
    message = _one_line_error(folder, "missing keys fc2.bias")
    assert message.startswith(f"{folder / WEIGHTS}: ") and "ScoreMLP" in message


def test_an_extra_tensor_names_the_file_and_the_key(folder: Path) -> None:
    _edit_weights(folder, lambda w: w.update(extra=torch.zeros(1)))
    assert _one_line_error(folder, "unexpected keys extra").startswith(f"{folder / WEIGHTS}: ")


def test_a_tensor_of_another_shape_or_dtype_or_with_nan_is_named(folder: Path) -> None:
    _edit_weights(folder, lambda w: w.update({"fc2.bias": torch.zeros(7)}))
    _one_line_error(folder, "shape mismatches .* fc2.bias")
    _edit_weights(folder, lambda w: w.update({"fc2.bias": torch.zeros(8, dtype=torch.float64)}))
    _one_line_error(folder, "the tensor fc2.bias is torch.float64, config.json says torch.float32")
    _edit_weights(folder, lambda w: w.update({"fc2.bias": torch.full((8,), float("nan"))}))
    _one_line_error(folder, "the tensor fc2.bias holds NaN or infinity")


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"format": None}, "the key 'format' must be an integer; got None"),
        ({"format": "1"}, "the key 'format' must be an integer"),
        ({"model": None}, "the key 'model' must be a JSON object; got None"),
        ({"model": {"kind": "Nope"}}, "the key 'model' does not rebuild a network"),
        ({"model": {"kind": "ScoreMLP"}}, "the key 'model' does not rebuild a network .*'dim'"),
        ({"dtype": "int8"}, "the key 'dtype' must be one of"),
        ({"sigmas": "many"}, "the key 'sigmas' must be a list of numbers"),
        ({"sampling": [1]}, "the key 'sampling' must be a JSON object"),
    ],
)  # fmt: skip
def test_a_malformed_config_names_the_file_and_the_key(
    folder: Path, changes: dict[str, object], match: str
) -> None:
    _edit_config(folder, **changes)
    assert _one_line_error(folder, match).startswith(f"{folder / CONFIG}: ")


def test_unreadable_files_are_one_line_errors(folder: Path) -> None:
    (folder / WEIGHTS).write_bytes(b"\x00" * 5)
    assert str(folder / WEIGHTS) in _one_line_error(folder, "not a readable safetensors file")
    (folder / CONFIG).write_text("{not json")
    assert str(folder / CONFIG) in _one_line_error(folder, "not a readable model config")
    (folder / CONFIG).write_text("[1, 2]")
    _one_line_error(folder, "holds a list, not a model config")


def test_missing_files_and_folders(folder: Path, tmp_path: Path) -> None:
    (folder / WEIGHTS).unlink()
    with pytest.raises(FileNotFoundError, match="has no weights file"):
        load_model(folder)
    with pytest.raises(FileNotFoundError, match="no such model folder"):
        load_model(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="not a model folder"):
        load_model(tmp_path)


def test_ncsn_load_takes_folders_but_not_the_options_of_checkpoints(folder: Path) -> None:
    assert torch.equal(ncsn.load(str(folder)).model.fc1.weight, load_model(folder).model.fc1.weight)
    with pytest.raises(ValueError, match="ema=False does not apply to the model folder"):
        ncsn.load(folder, ema=False)
    with pytest.raises(ValueError, match="image_size does not apply to the model folder"):
        ncsn.load(folder, image_size=28)


def test_pretrained_names_are_checked() -> None:
    with pytest.raises(ValueError, match=r"name must be one of \['digits'\]; got name='cifar'"):
        ncsn.pretrained("cifar")
    with pytest.raises(ValueError, match="name must be one of"):
        ncsn.load("pretrained:cifar")


def test_the_export_script_writes_the_pretrained_folder_with_its_sampler_and_card(
    tmp_path: Path,
) -> None:
    spec = importlib.util.spec_from_file_location("pretrained_script", BENCHMARKS / "pretrained.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    sigmas = ncsn.geometric_sigmas(4.8, 0.01, 22)
    net = _trained(_seeded(lambda: ncsn.nets.RefineNet(1, 16, sigmas)))
    weights = tmp_path / "weights-8000.pt"
    saved = {"state_dict": net.state_dict(), "sigmas": sigmas.tolist(), "step_size": 4.7e-5}
    torch.save(saved | {"steps_per_level": 5, "ema_rate": 0.999, "train_seconds": 1.0}, weights)
    folder = script.export(weights, tmp_path / "digits")
    loaded = ncsn.load(folder)
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    expected = ncsn.samplers.AnnealedLangevin(
        sigmas, 2 * ncsn.ncsnv2_step_size(sigmas, 10), 10, denoise=True
    )
    assert loaded.sampler() == expected and loaded.data["shape"] == [1, 8, 8]
    assert loaded.sampler(steps_per_level=5).step_size == 2 * ncsn.ncsnv2_step_size(sigmas, 5)
    assert loaded.step == 8000
    card = (folder / CARD).read_text("utf-8")
    assert script.COMMAND in card and "classifier score 9.11" in card
    assert sum(p.stat().st_size for p in folder.iterdir()) < 3_000_000
