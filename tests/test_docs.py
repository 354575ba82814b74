"""The documentation stays true: API coverage, runnable snippets, the Extending examples.

* Every name in ``ncsn.__all__`` and in the ``__all__`` of every public submodule is rendered on
  an API reference page (``docs/reference/*.md``), and every name those pages list exists.
* The code blocks of the guides marked ``<!-- test: run id=NAME -->`` run, and what the page says
  about their result is checked here (``CHECKS``).
* The four complete "Extending" examples (``examples/extending/*.py``) are included in
  ``docs/extending.md`` and do what that page claims.
* The README's install and test commands are those of the Getting started page.

The site itself is built by ``nox -s docs`` (``mkdocs build --strict``).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import pkgutil
import re
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

import ncsn

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference"
EXTENDING = ROOT / "examples" / "extending"

# ---------------------------------------------------------------------------------------------
# API reference coverage
# ---------------------------------------------------------------------------------------------

_DIRECTIVE = re.compile(r"^::: *([\w.]+)[ \t]*$")


def _documented_paths() -> dict[str, str]:
    """``{dotted path: reference page}`` for every object the reference pages render.

    A ``::: module`` directive with an explicit ``members:`` list renders those members (and the
    module page itself); any other directive renders the one object it names.
    """
    paths: dict[str, str] = {}
    for page in sorted(REFERENCE.glob("*.md")):
        lines = page.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            match = _DIRECTIVE.match(line)
            if not match:
                continue
            target = match.group(1)
            paths[target] = page.name
            members: list[str] = []
            in_members = False
            for option in lines[i + 1 :]:
                if option and not option.startswith(" "):
                    break
                stripped = option.strip()
                if stripped == "members:":
                    in_members = True
                elif in_members and stripped.startswith("- "):
                    members.append(stripped[2:].strip())
                elif in_members and stripped:
                    in_members = False
            for member in members:
                paths[f"{target}.{member}"] = page.name
    return paths


def _resolve(path: str) -> Any:
    """Import the longest module prefix of ``path`` and get the remaining attributes."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(path)


def _public_modules() -> Iterator[types.ModuleType]:
    yield ncsn
    for info in pkgutil.walk_packages(ncsn.__path__, "ncsn."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        yield importlib.import_module(info.name)


def test_reference_pages_exist_and_list_members() -> None:
    pages = {p.name for p in REFERENCE.glob("*.md")}
    assert {"index.md", "ncsn.md", "losses.md", "samplers.md", "nets.md"} <= pages
    assert len(_documented_paths()) > 100


def test_every_documented_name_exists() -> None:
    missing = []
    for path, page in _documented_paths().items():
        try:
            _resolve(path)
        except (ImportError, AttributeError):
            missing.append(f"{path} ({page})")
    assert not missing, f"reference pages name objects that do not exist: {missing}"


def test_every_public_name_is_in_the_reference() -> None:
    documented: dict[str, Any] = {}
    for path in _documented_paths():
        documented[path] = _resolve(path)
    undocumented = []
    modules = list(_public_modules())
    assert {m.__name__ for m in modules} >= {"ncsn", "ncsn.losses", "ncsn.samplers", "ncsn.nets"}
    for module in modules:
        exported = getattr(module, "__all__", None)
        assert exported is not None, f"public module {module.__name__} has no __all__"
        for name in exported:
            obj = getattr(module, name)
            if isinstance(obj, types.ModuleType):
                found = obj.__name__ in documented
            else:
                found = any(
                    path.rsplit(".", 1)[-1] == name and value is obj
                    for path, value in documented.items()
                )
            if not found:
                undocumented.append(f"{module.__name__}.{name}")
    assert not undocumented, (
        "names exported in __all__ but missing from docs/reference/*.md "
        f"(add them to a page's members list): {undocumented}"
    )


def test_every_page_is_in_the_navigation() -> None:
    # mkdocs only logs a page missing from the nav (even with --strict), so check it here
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    docs = ROOT / "docs"
    pages = [page.relative_to(docs).as_posix() for page in docs.rglob("*.md")]
    assert len(pages) > 20
    missing = [page for page in pages if f" {page}" not in nav]
    assert not missing, f"pages missing from the nav in mkdocs.yml: {missing}"


# ---------------------------------------------------------------------------------------------
# Runnable snippets of the guides
# ---------------------------------------------------------------------------------------------

_RUN = re.compile(r"<!-- test: run id=([\w-]+)( slow)? -->\n```python\n(.*?)```", re.S)


@dataclass(frozen=True)
class Snippet:
    id: str
    page: str
    slow: bool
    code: str


def _snippets() -> list[Snippet]:
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in _RUN.finditer(text):
            rel = page.relative_to(DOCS).as_posix()
            found.append(Snippet(match.group(1), rel, bool(match.group(2)), match.group(3)))
    return found


def _mode_weight(ns: dict[str, Any], name: str = "samples") -> float:
    return float(ncsn.metrics.mode_weights(ns[name], ncsn.toy.paper_mixture())[1])


def _check_getting_started(ns: dict[str, Any]) -> None:
    assert ns["samples"].shape == (1280, 2)
    # The page says "about the true weights [0.2, 0.8]".
    assert abs(_mode_weight(ns) - 0.8) < 4 * math.sqrt(0.8 * 0.2 / 1280)


def _check_function_model(ns: dict[str, Any]) -> None:
    x = ns["x"]
    assert x.shape == (1000, 3, 4, 4)
    assert abs(float(x.mean())) < 0.02
    assert abs(float(x.var()) - 1.01) < 0.03  # the page says ≈ 1.01


def _check_paper_schedule(ns: dict[str, Any]) -> None:
    expected = [1.0, 0.599484, 0.359381, 0.215443, 0.129155, 0.077426, 0.046416, 0.027826]
    assert [round(s, 6) for s in ns["sigmas"].tolist()][:8] == expected
    assert [round(s, 6) for s in ns["sigmas"].tolist()][8:] == [0.016681, 0.01]


def _check_step_size_mapping(ns: dict[str, Any]) -> None:
    assert torch.allclose(ns["official"], ns["ours"], rtol=0, atol=1e-6)
    assert not torch.allclose(ns["official"], ns["x"])


def _check_exact_score(ns: dict[str, Any]) -> None:
    assert torch.allclose(ns["exact"](ns["x"], torch.zeros(2))[0], torch.ones(2), atol=1e-4)
    assert abs(_mode_weight(ns) - 0.8) < 4 * math.sqrt(0.8 * 0.2 / 1280)


def _check_sampler_callback(ns: dict[str, Any]) -> None:
    assert len(ns["snapshots"]) == 10
    assert ns["sampler"].num_model_calls == 1000
    last = ns["snapshots"][min(ns["snapshots"])]
    assert torch.equal(last, ns["samples"])


def _check_exact_resume(ns: dict[str, Any]) -> None:
    assert ns["c"].step == 100
    assert ns["same"] is True


def _check_own_loop(ns: dict[str, Any]) -> None:
    assert ns["averaged"] is ns["ema"].model
    assert not torch.equal(ns["averaged"].fc1.weight, ns["model"].fc1.weight)
    fresh = ncsn.nets.ScoreMLP(
        2, sigmas=ns["schedule"].sigmas, generator=torch.Generator().manual_seed(0)
    )
    x = ns["data"].sample(512, generator=torch.Generator().manual_seed(9))

    def held_out(m: Any) -> float:
        return float(ns["loss"](m, x, generator=torch.Generator().manual_seed(3)).detach())

    assert held_out(ns["model"]) < 0.8 * held_out(fresh)  # 200 steps lowered the loss


def _check_inpaint_gaussian(ns: dict[str, Any]) -> None:
    out, mean = ns["out"], ns["mean"]
    # The known entry is re-imposed as y = x + σ_L·z̃ with σ_L = 0.05 (Algorithm 2).
    assert abs(float((out[:, 0] - 1.5).std()) - 0.05) < 0.005
    standard_error = torch.tensor([0.36, 0.91]).sqrt() / math.sqrt(out.shape[0])
    assert torch.all((out[:, 1:].mean(0).double() - mean).abs() < 4 * standard_error)


def _check_ncsnv2_all_five(ns: dict[str, Any]) -> None:
    assert ns["sigma_1"] > 1.0
    assert ns["sigmas"][0].item() == pytest.approx(ns["sigma_1"], rel=1e-6)
    assert len(ns["sigmas"]) >= 2
    assert 0 < ns["step_size"] < 4 * 0.01**2
    assert ns["x0"].shape == (16, 1, 8, 8)


def _check_ncsnv2_published(ns: dict[str, Any]) -> None:
    assert ns["levels"] == 2311  # the last of the four printed
    assert ns["eps"] == pytest.approx(1.24e-5, rel=0.02)


def _check_digits_evaluator(ns: dict[str, Any]) -> None:
    assert ns["evaluator"].test_accuracy > 0.9
    assert ns["floor"] < ns["bad"] / 10


def _check_digits_small_run(ns: dict[str, Any]) -> None:
    assert ns["samples"].shape == (16, 1, 8, 8)
    assert bool(torch.isfinite(ns["samples"]).all())


def _check_five_samplers(ns: dict[str, Any]) -> None:
    assert set(ns["samplers"]) == {"annealed", "cas", "pc", "ode"}
    assert ns["x"].shape == (2000, 2) and bool(torch.isfinite(ns["x"]).all())
    assert ns["samplers"]["ode"].num_model_calls == 2 * 199


def _check_ode_encode(ns: dict[str, Any]) -> None:
    assert ns["z"].abs().max() > 10  # latents at σ₁ = 50, far from the data
    assert (ns["back"] - ns["x"]).abs().max() < 1e-2


def _check_likelihood_exact(ns: dict[str, Any]) -> None:
    assert ns["nats"].shape == (4,)
    assert (ns["nats"] - ns["gmm"].log_prob(ns["x"], sigma=0.1)).abs().max() < 1e-2


def _check_recipe(ns: dict[str, Any]) -> None:
    r, x = ns["r"], ns["x"]
    assert float(r.sigmas[0]) == pytest.approx(ncsn.max_pairwise_distance(x))
    assert len(r.sigmas) == 22 and ns["setup"].sampler.denoise


def _check_conditional_exact(ns: dict[str, Any]) -> None:
    assert ncsn.metrics.mode_weights(ns["x"], ns["gmm"]).tolist() == [1.0, 0.0]
    probe = torch.ones(ns["x"].shape[0])
    assert torch.allclose(ns["guided"](ns["x"], probe), ns["also"](ns["x"], probe), atol=1e-5)


def _check_save_a_model(ns: dict[str, Any]) -> None:
    assert sorted(p.name for p in ns["folder"].iterdir()) == ["README.md", "config.json", "model.safetensors"]  # fmt: skip
    assert torch.equal(ns["loaded"].model.fc1.weight, ns["net"].fc1.weight)
    assert ns["samples"].shape == (64, 2) and ns["loaded"].sampler().denoise


def _check_pretrained_digits(ns: dict[str, Any]) -> None:
    assert ns["digits"].step == 8000 and ns["digits"].sampler().num_model_calls == 221
    assert ns["x"].shape == (16, 1, 8, 8) and bool(ns["x"].isfinite().all())


CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "recipe-in-one-call": _check_recipe,
    "five-samplers": _check_five_samplers,
    "ode-encode": _check_ode_encode,
    "likelihood-exact": _check_likelihood_exact,
    "getting-started": _check_getting_started,
    "function-as-score-model": _check_function_model,
    "paper-schedule": _check_paper_schedule,
    "step-size-mapping": _check_step_size_mapping,
    "exact-score": _check_exact_score,
    "sampler-callback": _check_sampler_callback,
    "exact-resume": _check_exact_resume,
    "own-loop": _check_own_loop,
    "inpaint-gaussian": _check_inpaint_gaussian,
    "ncsnv2-all-five": _check_ncsnv2_all_five,
    "ncsnv2-published": _check_ncsnv2_published,
    "digits-evaluator": _check_digits_evaluator,
    "digits-small-run": _check_digits_small_run,
    "conditional-exact": _check_conditional_exact,
    "save-a-model": _check_save_a_model,
    "pretrained-digits": _check_pretrained_digits,
}


def _params() -> list[Any]:
    return [
        pytest.param(s, id=s.id, marks=[pytest.mark.slow] if s.slow else []) for s in _snippets()
    ]


def test_snippet_ids_are_unique_and_checked() -> None:
    ids = [s.id for s in _snippets()]
    assert len(ids) == len(set(ids)), ids
    assert set(ids) == set(CHECKS), set(ids) ^ set(CHECKS)


@pytest.mark.parametrize("snippet", _params())
def test_snippet_runs(
    snippet: Snippet,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # anything a snippet writes lands in a temporary folder
    namespace: dict[str, Any] = {"__name__": f"docs_snippet_{snippet.id.replace('-', '_')}"}
    exec(compile(snippet.code, f"{snippet.page}:{snippet.id}", "exec"), namespace)
    assert capsys.readouterr().out, "a snippet prints what the page says it prints"
    CHECKS[snippet.id](namespace)


# ---------------------------------------------------------------------------------------------
# Extending examples
# ---------------------------------------------------------------------------------------------


def _example(name: str) -> types.ModuleType:
    path = EXTENDING / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"extending_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


def test_extending_page_includes_every_example() -> None:
    page = (DOCS / "extending.md").read_text(encoding="utf-8")
    included = set(re.findall(r'--8<-- "examples/extending/([\w]+\.py)"', page))
    files = {p.name for p in EXTENDING.glob("*.py")}
    assert files == {
        "custom_score_model.py",
        "custom_loss.py",
        "custom_schedule.py",
        "custom_sampler.py",
    }
    assert included == files


def test_every_snippet_include_exists() -> None:
    for page in DOCS.rglob("*.md"):
        for target in re.findall(r'--8<-- "([^"]+)"', page.read_text(encoding="utf-8")):
            assert (ROOT / target).is_file(), f"{page.name} includes missing {target}"


def test_custom_score_model_accepts_any_sigma() -> None:
    module = _example("custom_score_model")
    model = module.FourierScoreMLP(dim=3, generator=torch.Generator().manual_seed(0))
    again = module.FourierScoreMLP(dim=3, generator=torch.Generator().manual_seed(0))
    for p, q in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(p, q)  # the generator alone decides the initial weights
    x = torch.randn(5, 3)
    out = model(x, torch.tensor([0.013, 0.5, 1.0, 7.3, 19.9]))  # no schedule: any σ > 0
    assert out.shape == x.shape
    assert isinstance(model, ncsn.ScoreModel)
    with pytest.raises(ValueError, match=r"expects x of shape \[B, D\]; got \(5, 1, 3\)"):
        model(x[:, None], torch.ones(5))


@pytest.mark.slow
def test_custom_score_model_recovers_the_mode_weights() -> None:
    result = _example("custom_score_model").main()
    assert abs(result["weight_of_(5,5)"] - 0.8) < 4 * result["standard_error"]
    for key, value in result.items():
        if key.startswith("sigma2_error_at_"):
            assert value < 0.1, (key, value)


def test_custom_loss_is_unbiased_with_a_smaller_spread() -> None:
    result = _example("custom_loss").main(draws=100, steps=150)
    plain_se = result["plain_std"] / math.sqrt(100)
    anti_se = result["antithetic_std"] / math.sqrt(100)
    assert abs(result["plain_mean"] - result["antithetic_mean"]) < 4 * math.hypot(plain_se, anti_se)
    assert result["antithetic_std"] < result["plain_std"]
    assert result["last_loss"] < result["first_loss"] / 5


def test_custom_schedule_draws_levels_with_its_probabilities() -> None:
    result = _example("custom_schedule").main(steps=300, draws=20_000)
    assert abs(result["share_of_small_levels"] - 2 / 3) < 4 * math.sqrt(2 / 9 / 20_000)
    assert result["last_loss"] < result["first_loss"] / 5


def test_custom_schedule_rejects_bad_input() -> None:
    module = _example("custom_schedule")
    sigmas = ncsn.geometric_sigmas(20.0, 1.0, 3)
    with pytest.raises(ValueError, match=r"probabilities must be 3 non-negative numbers"):
        module.WeightedSchedule(sigmas, [1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="strictly decreasing"):
        module.WeightedSchedule(sigmas.flip(0))
    schedule = module.WeightedSchedule(sigmas)
    assert isinstance(schedule, ncsn.NoiseSchedule)
    drawn = schedule.sample(7, generator=torch.Generator().manual_seed(0))
    assert drawn.shape == (7,)
    assert all(float(s) in sigmas.tolist() for s in drawn)


def test_custom_sampler_recovers_fig3_with_exact_scores() -> None:
    result = _example("custom_sampler").main()
    assert abs(result["weight_of_(5,5)"] - 0.8) < 4 * result["standard_error"]
    assert result["model_calls"] == 1000
    assert result["step_first_level"] > 100 * result["step_last_level"]


def test_custom_sampler_rejects_bad_input() -> None:
    module = _example("custom_sampler")
    levels = ncsn.schedules.SigmaGrid([1.0, 0.1])
    with pytest.raises(ValueError, match=r"snr must be positive and finite; got snr=-1"):
        module.SNRAnnealedLangevin(levels, -1.0, 10)
    with pytest.raises(ValueError, match=r"steps_per_level must be an int >= 1; got 0"):
        module.SNRAnnealedLangevin(levels, 0.1, 0)
    with pytest.raises(
        TypeError, match=r"sigmas must be a SigmaGrid\(levels\); got \[1\.0, 0\.1\]"
    ):
        module.SNRAnnealedLangevin([1.0, 0.1], 0.1, 10)
    # settings compare by value: the grid is a value
    assert module.SNRAnnealedLangevin(levels, 0.1, 10) == module.SNRAnnealedLangevin(
        ncsn.schedules.SigmaGrid(torch.tensor([1.0, 0.1])), 0.1, 10
    )


# ---------------------------------------------------------------------------------------------
# README and Getting started agree
# ---------------------------------------------------------------------------------------------


def test_readme_commands_are_on_the_getting_started_page() -> None:
    page = (DOCS / "getting-started.md").read_text(encoding="utf-8")
    for command in ('pip install -e ".[examples]"', "ncsn demo", 'pip install -e ".[test]"'):
        assert command in page
    assert "python -m pytest" in page
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(?:bash|sh|shell|console)?\n(.*?)```", readme, re.S)
    commands = [
        line.strip().removeprefix("$ ")
        for block in blocks
        for line in block.splitlines()
        if re.match(r"\s*(\$ )?(pip install|ncsn demo|python -m pytest)", line)
    ]
    for command in commands:
        assert command.split("#")[0].strip() in page, f"README command not in the docs: {command}"
