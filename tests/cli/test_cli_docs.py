"""The command as the docs show it: docs/reference/cli.md lists every option of every
subcommand and nothing else, and every `ncsn` command line in the docs and the README parses and
runs (with tiny settings and data standing in for the shown ones)."""

from __future__ import annotations

import pickle
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import ncsn
from ncsn.cli import build_parser, main, parse

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
FIXTURES = ROOT / "tests" / "fixtures"


def _cli_sections() -> dict[str, str]:
    text = (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")
    parts = re.split(r"^## `ncsn (\w+)`$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_cli_reference_matches_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    sections = _cli_sections()
    commands = {"train", "sample", "evaluate", "inpaint", "restore", "likelihood", "export", "demo"}
    assert set(sections) == commands
    for name, section in sections.items():
        capsys.readouterr()
        with pytest.raises(SystemExit):
            build_parser().parse_args([name, "--help"])
        usage = capsys.readouterr().out.split("\n\n")[0]
        options = set(re.findall(r"(--[\w-]+)", usage)) - {"--help"}
        documented = set(re.findall(r"^\| `(--[\w-]+)", section, flags=re.M))
        assert documented == options, (name, documented ^ options)


def _documented_blocks() -> list[tuple[str, list[str]]]:
    """Every shell block of the docs and README that holds `ncsn` commands, as (page, commands);
    ``torchrun ... -m ncsn ARGS`` counts as ``ncsn ARGS`` (one process here)."""
    found = []
    for page in [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]:
        text = page.read_text(encoding="utf-8")
        for block in re.findall(r"```(?:bash|sh|shell|console)\n(.*?)```", text, re.S):
            commands = []
            for line in block.replace("\\\n", " ").splitlines():
                for part in line.split(" #")[0].split("&&"):
                    part = re.sub(r"^torchrun .*? -m ncsn ", "ncsn ", part.strip())
                    if part.startswith("ncsn "):
                        commands.append(part)
            if commands:
                found.append((page.relative_to(ROOT).as_posix(), commands))
    return found


BLOCKS = _documented_blocks()


def test_every_documented_command_line_parses() -> None:
    commands = [command for _, block in BLOCKS for command in block]
    assert len(commands) >= 20
    for command in commands:
        try:
            parse(shlex.split(command)[1:])
        except SystemExit:
            pytest.fail(f"`{command}` does not parse with the current `ncsn` command")


# ----------------------------------------------------------------------- running the examples
_TINY = {"--steps": None, "--num-samples": "4", "--num-examples": "4", "--num-images": "2",
         "--completions": "2", "--ngf": "4", "--batch-size": None}  # fmt: skip
_ADDED = {
    "train": ["--ngf", "4", "--batch-size", "4", "--quiet"],
    "sample": ["--quiet", "--batch-size", "256"],
    "inpaint": ["--quiet", "--num-images", "2", "--completions", "2"],
    "restore": ["--quiet", "--num-images", "2", "--samples", "2"],
    "demo": [
        "--steps",
        "2",
        "--ngf",
        "4",
        "--batch-size",
        "8",
        "--steps-per-level",
        "1",
        "--quiet",
    ],
    "likelihood": ["--num-examples", "4"],
    "evaluate": [],
    "export": [],
}


def tiny(command: str) -> list[str]:
    """``command``'s arguments with tiny settings: few steps, samples and examples, a narrow
    network, one Langevin step per level (annealed Langevin only); argparse takes the last value
    of an option given twice."""
    args = shlex.split(command)[1:]
    name, kept = args[0], args[:1]
    pairs = iter(args[1:])
    for arg in pairs:
        if arg in _TINY:
            value = _TINY[arg] or ("3" if "--resume" in args else "2")
            next(pairs)
            if not (arg == "--batch-size" and name == "train"):
                kept += [arg, value]
        else:
            kept.append(arg)
    if name == "train" and "--resume" in args:
        kept += ["--quiet"]
    else:
        kept += _ADDED[name]
    if name in ("sample", "inpaint") and ("--sampler" not in args or "annealed" in args):
        kept += ["--steps-per-level", "1"]
    if "cuda" in kept and not torch.cuda.is_available():
        kept[kept.index("cuda")] = "cpu"  # the example's GPU, where there is one
    return kept


def _images(folder: Path) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(0).integers(0, 256, size=(24, 8, 8), dtype=np.uint8)
    for i, image in enumerate(pixels):
        Image.fromarray(image, mode="L").save(folder / f"{i:02d}.png")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "run"
    args = ["train", "--data", "digits", "--ngf", "4", "--steps", "2", "--batch-size", "4", "--quiet"]  # fmt: skip
    assert main([*args, "--output", str(out)]) == 0
    return out


def _inception_weights(path: Path) -> None:
    """A stand-in for the FID Inception-v3 weights file: its keys and shapes, random values
    scaled so that activations stay O(1)."""
    from ncsn.metrics.inception import _FIDInceptionV3

    g, state = torch.Generator().manual_seed(0), {}
    for key, value in _FIDInceptionV3().state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros((), dtype=torch.int64)
        elif key.endswith(("running_var", "bn.weight")):
            state[key] = torch.ones(value.shape)
        elif key.endswith(("running_mean", "bias")):
            state[key] = torch.zeros(value.shape)
        else:
            state[key] = torch.randn(value.shape, generator=g) * (2.0 / value[0].numel()) ** 0.5
    torch.save(state, path)


def _cifar_folder(folder: Path) -> None:
    """Three 32x32 RGB images per batch file, as CIFAR-10's python batches hold them."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        rows = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
        (folder / name).write_bytes(pickle.dumps({b"data": rows, b"labels": [0, 1, 2]}))


def _provide(cwd: Path, commands: list[str], run: Path) -> None:
    """What the block uses and does not make itself: runs, data, checkpoints, weights, samples."""
    split = [shlex.split(command) for command in commands]
    made = {a[a.index("--output") + 1].rstrip("/") for a in split if "--output" in a}
    trained = {a[a.index("--output") + 1].rstrip("/") for a in split if a[1] == "train" and "--resume" not in a}  # fmt: skip
    text = " ".join(commands)
    for name in set(re.findall(r"\bruns/\w+", text)) - trained:
        shutil.copytree(run, cwd / name)
    for name in ("path/to/images", "my_images"):
        if name in text:
            _images(cwd / name)
    if "cifar-10-batches-py" in text:
        _cifar_folder(cwd / "cifar-10-batches-py")
    for name in re.findall(r"(\S+\.pth|\bFILE\b)", text):
        (cwd / name).parent.mkdir(parents=True, exist_ok=True)
        if "inception" in name or name == "FILE":
            _inception_weights(cwd / name)
        else:
            shutil.copy(FIXTURES / "official_refinenet_c3_ngf8.pth", cwd / name)
    digits, _ = ncsn.data.load("digits", split="train")
    for args in split:
        if args[1] == "evaluate" and args[2].rstrip("/") not in made:
            cifar = "cifar" in args[args.index("--reference") + 1]
            x = torch.rand(8, 3, 32, 32) if cifar else digits[:8].clone()
            (cwd / args[2]).mkdir(exist_ok=True)
            torch.save(x, cwd / args[2] / "samples.pt")


@pytest.mark.slow
@pytest.mark.parametrize("page, commands", BLOCKS, ids=[f"{p}:{c[0][:40]}" for p, c in BLOCKS])
def test_every_documented_command_runs(
    page: str,
    commands: list[str],
    tiny_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    _provide(tmp_path, commands, tiny_run)
    for command in commands:
        args = tiny(command)
        assert main(args) == 0, f"{page}: `{command}` (run as `ncsn {shlex.join(args)}`) failed"
