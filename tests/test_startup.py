"""Fast start: the CLI and the package root import no heavy library until a command needs it. Checked
in a fresh interpreter by which modules are loaded, never by timing (benchmarks/startup.py times it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

import evaluator
from evaluator import config, models
from evaluator.reading import ReadOptions

HEAVY = ("pandas", "pyarrow", "numpy", "scipy", "sklearn", "krippendorff", "matplotlib", "openai", "aiohttp")
HELP = "from evaluator.cli.main import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
NOT_FOR_HELP = ("pydantic", "rich", "yaml", "jinja2", "asyncio", "regex", "evaluator.models", "evaluator.reading")
"""What --help must not load: the models (most of its time went into building them), the terminal and the
template engines, the YAML and regex parsers and asyncio; each is a module the commands import when they run."""


def _modules_after(code: str) -> set[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def _loaded_after(code: str) -> set[str]:
    return {name.split(".")[0] for name in _modules_after(code)}


@pytest.mark.parametrize(
    "code",
    [
        "import evaluator",
        "import evaluator.cli",
        HELP.format(argv=["--help"]),
        HELP.format(argv=["run", "--help"]),
    ],
)
def test_start_up_loads_no_heavy_library(code: str) -> None:
    assert _loaded_after(code).isdisjoint(HEAVY), sorted(_loaded_after(code) & set(HEAVY))


@pytest.mark.parametrize(
    "argv", [["--help"], ["run", "--help"], ["watch", "--help"], ["batch", "submit", "--help"], ["report", "--help"]]
)
def test_help_builds_the_parser_without_the_models_rich_or_the_parsers_of_the_commands(argv: list[str]) -> None:
    loaded = _modules_after(HELP.format(argv=argv))
    found = sorted(name for name in loaded if name in NOT_FOR_HELP or name.split(".")[0] in NOT_FOR_HELP)
    assert not found, f"{' '.join(argv)} loads {found[:8]}"


def test_config_which_the_parser_reads_its_choices_from_builds_no_pydantic_model() -> None:
    """Most of --help's time went into building the pydantic models; config is where the parser's defaults
    and choices come from, so importing it must not build them (a RunConfig still gets its ReadOptions)."""
    assert "pydantic" not in _loaded_after("import evaluator.config\nevaluator.config.JudgeSettings()")
    assert config.MODES == get_args(models.JudgeMode)
    assert config.AGGREGATE_METHODS == get_args(models.AggregateMethod)
    assert config.RunConfig().read_options == ReadOptions()


def test_the_lazy_package_root_still_gives_every_public_name() -> None:
    for name in evaluator.__all__:
        assert getattr(evaluator, name) is not None, name
    assert set(evaluator.__all__) <= set(dir(evaluator))
    with pytest.raises(AttributeError):
        evaluator.no_such_name  # noqa: B018


def test_a_rules_run_loads_only_numpy_of_the_heavy_ones(tmp_path: Path) -> None:
    """The summary needs numpy (bootstrap); the report draws its charts by hand; nothing else heavy."""
    repo = Path(__file__).resolve().parent.parent
    argv = [str(repo / "transcripts"), "--rubric", str(repo / "rubrics"), "--judge", "rules", "--no-progress"]
    code = (
        "import contextlib, io\nfrom evaluator.cli.main import main\n"
        f"with contextlib.redirect_stdout(io.StringIO()):\n    main(['run', *{argv!r}, '--output', {str(tmp_path)!r}])"
    )
    assert _loaded_after(code) & set(HEAVY) <= {"numpy"}


def test_yaml_is_parsed_by_libyaml_and_still_composed_within_the_bounds() -> None:
    """Rubrics parse through libyaml (a tenth of PyYAML's time), but the nodes are still built by the
    bounded composer: an alias bomb, a recursive alias and deep nesting are refused by the fast loader
    itself, with the message the Python loader gives, not by its fallback."""
    import yaml

    from evaluator.files import BoundedLoader, YamlBoundsError, with_libyaml
    from evaluator.rubrics import load_rubrics

    fast = with_libyaml(BoundedLoader)
    assert fast is not BoundedLoader and issubclass(fast, BoundedLoader)
    bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]\n" for n in range(1, 6)
    )
    cases = [(bomb, "expands to more than"), ("a: &a [1, *a]\n", "refers to a node that contains it")]
    cases.append(("x: " + "[" * 100 + "]" * 100 + "\n", "nested more than 64 levels deep"))
    for text, problem in cases:
        with pytest.raises(YamlBoundsError, match=problem):
            yaml.load(text, Loader=fast)  # noqa: S506 (a SafeLoader)
    repo = Path(__file__).resolve().parent.parent
    for rubric in load_rubrics([repo / "rubrics"]):
        text = Path(rubric.source).read_text()
        assert yaml.load(text, Loader=with_libyaml(BoundedLoader)) == yaml.load(text, Loader=BoundedLoader)  # noqa: S506


RUBRIC = """\
id: demo
title: Demo rubric
criteria:
  - id: acknowledges
    name: Acknowledges
    question: Does the therapist acknowledge the request?
    scale: {type: binary}
"""


def _render_user(prompts: Path, rubric_file: Path) -> str:
    from evaluator.models import Transcript, Turn
    from evaluator.prompts import PromptRenderer
    from evaluator.rubrics import load_rubric

    rubric = load_rubric(rubric_file)
    turns = [
        Turn(index=0, speaker="patient", label="P", text="Slow down."),
        Turn(index=1, speaker="therapist", label="T", text="Sure."),
    ]
    transcript = Transcript(id="t", source="t.txt", turns=turns)
    return PromptRenderer(prompts).render(rubric, rubric.criteria[0], transcript, turns[1]).messages[1].content


def test_compiled_templates_are_kept_across_runs_and_an_edited_template_compiles_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prompt templates' compiled code is reused by the next run (no file rewritten), but an edit is
    never served stale, and a rubric's own template (often in a temporary folder) is never kept."""
    import shutil
    import tempfile

    from evaluator.prompts import bundled_prompts_dir

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where Jinja puts its per-user cache folder
    prompts = tmp_path / "prompts"
    shutil.copytree(bundled_prompts_dir(), prompts)
    rubric_dir = tmp_path / "rubric"
    rubric_dir.mkdir()
    rubric_file = rubric_dir / "demo.yaml"
    rubric_file.write_text(RUBRIC)
    first = _render_user(prompts, rubric_file)
    kept = {p: p.stat().st_mtime_ns for p in tmp_path.glob("_jinja2-cache-*/__evaluator_*.cache")}
    assert len(kept) >= 2, "per_criterion.j2 and its includes are kept"
    assert _render_user(prompts, rubric_file) == first
    assert {p: p.stat().st_mtime_ns for p in kept} == kept, "a second run loads them instead of compiling again"

    template = prompts / "per_criterion.j2"
    template.write_text(template.read_text().replace("Rated turn:", "The turn to rate:"))
    edited = _render_user(prompts, rubric_file)
    assert "The turn to rate:" in edited and "Rated turn:" not in edited

    shutil.copy(template, rubric_dir / "own.j2")
    rubric_file.write_text(RUBRIC.replace("criteria:", "template: own.j2\ncriteria:"))
    before = set(tmp_path.glob("_jinja2-cache-*/*"))
    assert _render_user(prompts, rubric_file) == edited
    assert set(tmp_path.glob("_jinja2-cache-*/*")) == before, "a rubric's own template is compiled, not kept"


def test_a_sandboxed_and_a_plain_environment_never_share_compiled_code() -> None:
    """Jinja's cache keys a template by name, file and source only; the sandbox compiles other code, so
    the file name carries the environment's compile options too."""
    from jinja2 import Environment
    from jinja2.sandbox import SandboxedEnvironment

    from evaluator.prompts import _compile_fingerprint

    sandboxed = SandboxedEnvironment(trim_blocks=True)
    assert _compile_fingerprint(sandboxed) == _compile_fingerprint(SandboxedEnvironment(trim_blocks=True))
    assert _compile_fingerprint(sandboxed) != _compile_fingerprint(Environment(trim_blocks=True))
    assert _compile_fingerprint(sandboxed) != _compile_fingerprint(SandboxedEnvironment(trim_blocks=False))
