"""`ncsn` itself (src/ncsn/cli/__init__.py and _common.py): the parser, --help, --version,
--threads, which options were given, devices, one-line errors and their exit statuses."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
import torch
from cli_runner import Runner

import ncsn
from ncsn.cli import build_parser, parse
from ncsn.cli._common import as_options

COMMANDS = ("train", "sample", "evaluate", "inpaint", "restore", "likelihood", "export", "demo")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help_and_threads(command: str, cli: Runner) -> None:
    outcome = cli(command, "--help")
    assert outcome.code == 0 and "usage: ncsn " + command in outcome.out
    assert "--threads" in outcome.out


def test_version(cli: Runner) -> None:
    outcome = cli("--version")
    assert outcome.code == 0 and outcome.out == f"ncsn {ncsn.__version__}"


def test_demo_help_shows_the_defaults(cli: Runner) -> None:
    out = cli("demo", "--help").out
    for default in (  # the per-dataset defaults of ncsn.demo.DATASETS
        "1500 for digits, 400 for mnist",
        "128 for digits, 64 for mnist",
        "16 for digits",
        "500 for digits, 256 for mnist",
        "(default: outputs/demo)",
    ):
        assert default in " ".join(out.split()), default


def test_given_options_are_those_on_the_command_line() -> None:
    args = parse(["sample", "run", "--eta", "0.5", "--no-denoise", "--seed", "0"])
    assert args.given == {"checkpoint", "eta", "denoise", "seed"}  # --seed 0 is the default, given
    assert (args.eta, args.denoise, args.steps_per_level) == (0.5, False, 100)
    assert parse(["train", "--output", "o", "--steps", "3"]).given == {"output", "steps"}
    # the parser itself keeps its defaults
    assert vars(build_parser().parse_args(["sample", "run"]))["steps_per_level"] == 100


def test_threads_sets_torchs_thread_count(cli: Runner, tmp_path: Path) -> None:
    before = torch.get_num_threads()
    try:
        outcome = cli("sample", str(tmp_path / "none"), "--threads", "2", "--output", str(tmp_path))
        assert outcome.code == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--data", "digits", "--output", "x", "--steps", "0"], "expected a positive integer, got '0'"),
        (["train", "--data", "digits", "--output", "x"], "the following arguments are required: --steps"),
        (["train", "--data", "digits", "--output", "x", "--steps", "5", "--loss", "nce"], "invalid choice: 'nce'"),
        (["sample", "ckpt", "--step-size", "-1"], "expected a positive number, got '-1'"),
        (["sample", "ckpt", "--threads", "0"], "expected a positive integer, got '0'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)  # fmt: skip
def test_bad_arguments_print_one_line_and_exit_2(
    args: list[str], message: str, cli: Runner
) -> None:
    cli(*args).one_line(2, message)


@pytest.mark.parametrize("seed", [str(2**64), "-1", "1.5"])
def test_a_seed_outside_64_bits_is_refused(seed: str, cli: Runner) -> None:
    outcome = cli("train", "--data", "mixture", "--output", "o", "--steps", "1", "--seed", seed)
    outcome.one_line(2, "--seed")


def test_devices_are_checked(cli: Runner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    base = ["train", "--data", "mixture", "--output", str(tmp_path / "r"), "--steps", "1"]
    cli(*base, "--device", "foo").one_line(2, "--device 'foo' is not a device")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cli(*base, "--device", "cuda").one_line(2, "--device cuda: CUDA is not available")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    cli("sample", "c.pt", "--device", "cuda:3").one_line(2, "has 1 CUDA device(s)")


def test_library_messages_are_put_in_the_commands_terms() -> None:
    names = {"sigma_max", "sigma_min", "logit"}
    assert (
        as_options("sigma_max=0.5 must be larger than sigma_min=1; format=x", names)
        == "--sigma-max 0.5 must be larger than --sigma-min 1; format=x"
    )
    assert as_options("logit=True needs data in [0, 1]", names) == "--logit needs data in [0, 1]"


def test_a_missing_optional_package_is_one_line(
    cli: Runner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import ncsn.cli.evaluate as evaluate

    def needs_scipy(*args: object, **kwargs: object) -> None:
        raise ModuleNotFoundError("No module named 'scipy'", name="scipy")

    torch.save(torch.rand(4, 1, 8, 8), tmp_path / "samples.pt")
    monkeypatch.setattr(evaluate.metrics, "digits_evaluator", needs_scipy)
    cli("evaluate", str(tmp_path), "--reference", "digits").one_line(
        2, "needs the package 'scipy' (pip install scipy)"
    )


def test_no_subcommand_imports_another_or_argparse_internals() -> None:
    folder = Path(ncsn.cli.__file__).parent
    for module in folder.glob("*.py"):
        text = module.read_text()
        assert "_actions" not in text and "_SubParsersAction" not in text, module.name
        for other in COMMANDS:
            if module.stem != other:
                assert f"ncsn.cli.{other} import" not in text, (module.name, other)
                assert f"from ncsn.cli import {other}" not in text or module.stem == "__init__"


def test_the_parser_is_the_documented_one() -> None:
    parser = build_parser()
    assert isinstance(parser, argparse.ArgumentParser) and parser.prog == "ncsn"
    assert sys.modules["ncsn.cli"].main is ncsn.cli.main
