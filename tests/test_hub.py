"""The Hugging Face Hub glue (``ncsn.sharing.push_to_hub``, ``ncsn.load("hf:OWNER/NAME")``),
checked against a stand-in for ``huggingface_hub`` that keeps repositories in a local folder: the
calls ncsn makes, and the round trip of a model folder through a "repository". The real Hub is
not reachable from the test machines; nothing here touches the network."""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch

import ncsn
from ncsn.cli import main


class _Hub:
    """Repositories as folders under ``root``: what the stand-in module's functions act on."""

    def __init__(self, root: Path) -> None:
        self.root, self.calls = root, []

    def folder(self, repo_id: str, revision: str | None) -> Path:
        return self.root / repo_id / (revision or "main")

    def module(self) -> types.ModuleType:
        hub = self

        class HfApi:
            def __init__(self, token: str | None = None, **kwargs: Any) -> None:
                hub.calls.append(("HfApi", {"token": token, **kwargs}))

            def create_repo(self, repo_id: str, **kwargs: Any) -> str:
                hub.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
                return f"https://hub.test/{repo_id}"

            def upload_folder(self, *, repo_id: str, folder_path: str, **kwargs: Any) -> str:
                hub.calls.append(("upload_folder", {"repo_id": repo_id, **kwargs}))
                target = hub.folder(repo_id, kwargs.get("revision"))
                target.mkdir(parents=True, exist_ok=True)
                for pattern in kwargs["allow_patterns"]:
                    for path in Path(folder_path).glob(pattern):
                        shutil.copy(path, target / path.name)
                return f"https://hub.test/{repo_id}/commit/1"

        def snapshot_download(repo_id: str, **kwargs: Any) -> str:
            hub.calls.append(("snapshot_download", {"repo_id": repo_id, **kwargs}))
            source = hub.folder(repo_id, kwargs.get("revision"))
            if not source.is_dir():
                raise FileNotFoundError(f"Repository Not Found: {repo_id}")
            cache = hub.root / "cache" / repo_id.replace("/", "--")
            shutil.copytree(source, cache, dirs_exist_ok=True)
            return str(cache)

        module = types.ModuleType("huggingface_hub")
        module.HfApi = HfApi  # type: ignore[attr-defined]
        module.snapshot_download = snapshot_download  # type: ignore[attr-defined]
        return module


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> _Hub:
    stand_in = _Hub(tmp_path / "hub")
    monkeypatch.setitem(sys.modules, "huggingface_hub", stand_in.module())
    return stand_in


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    sigmas = ncsn.geometric_sigmas(1.0, 0.01, 4)
    net = ncsn.nets.RefineNet(1, 4, sigmas, generator=torch.Generator().manual_seed(0))
    sampling = {"sampler": "cas", "denoise": True}
    data = {"shape": [1, 8, 8]}
    return ncsn.save_model(
        net, tmp_path / "model", sampling=sampling, data=data, metadata={"step": 7}
    )


def test_a_folder_goes_to_the_hub_and_loads_back_bit_for_bit(hub: _Hub, folder: Path) -> None:
    url = ncsn.sharing.push_to_hub(folder, "me/digits", token="t0k", private=True)
    assert url == "https://hub.test/me/digits/commit/1"
    (_, api), (_, create), (_, upload) = hub.calls
    assert api["token"] == "t0k" and api["library_name"] == "ncsn"
    assert create == {
        "repo_id": "me/digits",
        "private": True,
        "exist_ok": True,
        "repo_type": "model",
    }
    assert sorted(upload["allow_patterns"]) == ["README.md", "config.json", "model.safetensors"]
    assert upload["revision"] is None and "RefineNet at step 7" in upload["commit_message"]
    loaded = ncsn.load("hf:me/digits")
    assert hub.calls[-1][1]["repo_id"] == "me/digits" and hub.calls[-1][1]["revision"] is None
    original = ncsn.load(folder)
    for key, value in original.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    assert loaded.sampler() == original.sampler() and loaded.step == 7


def test_a_revision_is_pushed_and_loaded_by_name(hub: _Hub, folder: Path, tmp_path: Path) -> None:
    ncsn.sharing.push_to_hub(folder, "me/digits@v1")
    assert hub.calls[-1][1]["revision"] == "v1"
    assert ncsn.load("hf:me/digits@v1").step == 7
    with pytest.raises(FileNotFoundError, match="Repository Not Found"):
        ncsn.load("hf:me/digits@v2")


def test_the_command_line_samples_a_hub_model(hub: _Hub, folder: Path, tmp_path: Path) -> None:
    ncsn.sharing.push_to_hub(folder, "me/digits")
    out = tmp_path / "samples"
    assert main(["sample", "hf:me/digits", "--num-samples", "2", "--quiet", "--output", str(out)]) == 0  # fmt: skip
    assert torch.load(out / "samples.pt", weights_only=True).shape == (2, 1, 8, 8)


@pytest.mark.parametrize("name", ["digits", "me/", "/digits", "me/digits/x", "me/digits@"])
def test_bad_hub_names_are_named(name: str) -> None:
    with pytest.raises(
        ValueError, match=r"a Hub model is named OWNER/NAME or OWNER/NAME@REVISION; got"
    ):
        ncsn.load(f"hf:{name}")
    with pytest.raises(ValueError, match=f"got {name!r}"):
        ncsn.sharing.push_to_hub("anything", name)


def test_a_folder_that_does_not_load_is_not_uploaded(hub: _Hub, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a model folder"):
        ncsn.sharing.push_to_hub(tmp_path / "empty", "me/digits")
    assert hub.calls == []


def test_without_huggingface_hub_the_error_says_what_to_install(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    with pytest.raises(
        ImportError, match=r"hf:me/digits: .*needs huggingface_hub \(pip install 'ncsn\[hub\]'\)"
    ):
        ncsn.load("hf:me/digits")
    with pytest.raises(ImportError, match=r"push_to_hub needs huggingface_hub"):
        ncsn.sharing.push_to_hub(folder, "me/digits")


def test_the_command_line_says_what_to_install_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    assert main(["sample", "hf:me/digits", "--output", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'ncsn[hub]'" in err, err
