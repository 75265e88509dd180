"""The prompt engineer's loop from the command line: subsets of a run, `render --mode`, rubrics by
name (local, installed) and `--no-report`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluator.cli import main
from evaluator.models import RunManifest
from evaluator.rubrics import bundled_rubrics_dir
from evaluator.store import read_manifest
from tests.conftest import IGNORING_SEED, SLOWING_SEED
from tests.test_cli import workdir  # noqa: F401  (a fresh folder with the rubrics and one seed)

SLOWING_ID = SLOWING_SEED.stem


@pytest.fixture
def two_seeds(workdir: Path) -> Path:  # noqa: F811
    (workdir / "transcripts" / IGNORING_SEED.name).write_text(IGNORING_SEED.read_text())
    return workdir


def _judged(run_dir: Path) -> list[str]:
    return [json.loads(line)["key"] for line in (run_dir / "judgments.jsonl").read_text().splitlines()]


def test_a_subset_run_judges_only_the_selection_and_says_so(
    two_seeds: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "-r", "pacing", "--transcript", "004_*", "--criterion", "pacing/acknowledges_request"]
    assert main([*argv, "--turns", "3-5", "--no-progress", "--run-id", "s"]) == 0  # complete subset: exit 0
    out, err = capsys.readouterr()
    run_dir = two_seeds / "results" / "s"
    keys = _judged(run_dir)
    assert sorted(keys) == sorted(
        f"pacing/{SLOWING_ID}/{turn}/{criterion}/0"
        for turn in (3, 5)
        for criterion in ("slow_down_requested", "acknowledges_request")
    )
    manifest = read_manifest(run_dir)
    assert manifest.items_planned == 4 and manifest.complete and manifest.transcripts == [SLOWING_ID]
    assert manifest.subset is not None and manifest.subset.prerequisites == ["pacing/slow_down_requested"]
    assert manifest.subset.turns == (3, 5) and manifest.subset.transcripts == ["004_*"]
    assert "plus prerequisites pacing/slow_down_requested" in err  # the added criterion is announced
    assert "Subset run (only part of the plan was judged)" in out
    assert "Subset run (only part of the plan was judged)" in (run_dir / "summary.md").read_text()
    assert "subset" in (run_dir / "report.html").read_text()


def test_limit_and_dry_run_share_the_selection(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert main(["run", "-r", "pacing", "--limit", "3", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "subset: first 3 items" in out
    assert "│ total │     3 │" in out.replace(" ", " ") or "total" in out
    assert main(["run", "-r", "pacing", "--limit", "3", "--no-progress", "--run-id", "l"]) == 0
    assert len(_judged(workdir / "results" / "l")) == 3
    assert read_manifest(workdir / "results" / "l").items_planned == 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--criterion", "nope"], "--criterion 'nope': no such criterion"),
        (["--transcript", "zzz*"], "--transcript 'zzz*' matches no transcript"),
        (["--turns", "900"], "--turns 900-900: no therapist turn in that range"),
        (["--limit", "0"], "--limit must be at least 1"),
    ],
)
def test_a_subset_that_selects_nothing_fails_before_anything_is_written(
    workdir: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    message: str,
) -> None:
    assert main(["run", "-r", "pacing", *options, "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not (workdir / "results").exists()


def test_turns_takes_a_range_or_one_index(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "--turns", "7-3"])
    assert exc.value.code == 2 and "expected FIRST-LAST" in capsys.readouterr().err


def test_a_manifest_without_a_subset_still_reads(workdir: Path) -> None:  # noqa: F811
    assert main(["run", "-r", "pacing", "--no-progress", "--run-id", "full"]) == 0
    path = workdir / "results" / "full" / "manifest.json"
    data = json.loads(path.read_text())
    assert data.pop("subset") is None
    assert RunManifest.model_validate(data).subset is None


def test_no_report_writes_the_summary_only(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert main(["run", "-r", "pacing", "--no-report", "--no-progress", "--run-id", "n"]) == 0
    files = {p.name for p in (workdir / "results" / "n").iterdir()}
    assert "summary.md" in files and "report.html" not in files
    assert "Report:" not in capsys.readouterr().out


# --- render --mode ---------------------------------------------------------------------------------


def _render(argv: list[str], capsys: pytest.CaptureFixture[str]) -> object:
    assert main(["render", str(SLOWING_SEED), "-r", "pacing", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_render_per_turn_puts_every_criterion_of_the_turn_in_one_prompt(
    workdir: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls = _render(["--turn", "5", "--mode", "per-turn"], capsys)
    assert isinstance(calls, list)
    # stage by stage, as the runner sends them: the verdict condition first, then what depends on it
    assert calls[0]["criteria"][0] == "slow_down_requested" and all(c["turns"] == [5] for c in calls)
    assert len(calls[1]["criteria"]) > 1
    prompt = "\n".join(m["content"] for m in calls[1]["messages"])
    assert all(criterion in prompt for criterion in calls[1]["criteria"])


def test_render_per_transcript_covers_the_session_without_a_turn(
    workdir: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls = _render(["--mode", "per-transcript", "--criterion", "questions_asked"], capsys)
    assert isinstance(calls, dict)  # one call: one criterion over every therapist turn
    assert calls["criteria"] == ["questions_asked"] * len(calls["turns"]) and calls["turns"][:3] == [1, 3, 5]
    assert "[5] Therapist: Let's take a tiny step" in calls["messages"][1]["content"]


def test_render_needs_a_turn_unless_per_transcript(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert main(["render", str(SLOWING_SEED), "-r", "pacing"]) == 2
    assert "pick a turn with --turn N or --turns A-B" in capsys.readouterr().err


def test_render_takes_several_criteria_and_a_turn_range(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    calls = _render(["--turns", "1-3", "--criterion", "questions_asked", "--criterion", "relative_length"], capsys)
    assert isinstance(calls, list)
    assert sorted((c["criterion"], c["turns"][0]) for c in calls) == [
        ("questions_asked", 1),
        ("questions_asked", 3),
        ("relative_length", 1),
        ("relative_length", 3),
    ]


# --- rubrics by name ---------------------------------------------------------------------------------


def test_a_rubric_name_falls_back_to_the_installed_rubrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No ./rubrics/ here: `-r pacing` is the rubric shipped with the package."""
    monkeypatch.chdir(tmp_path)
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    assert main(["run", str(SLOWING_SEED), "-r", "pacing", "--no-progress", "--run-id", "b"]) == 0
    record = read_manifest(tmp_path / "results" / "b").rubrics["pacing"]
    assert Path(record.file).resolve() == (bundled_rubrics_dir() / "pacing.yaml").resolve()


def test_a_local_rubric_wins_over_the_installed_one(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert main(["run", "-r", "pacing", "--no-progress", "--run-id", "loc"]) == 0
    assert read_manifest(workdir / "results" / "loc").rubrics["pacing"].file == str(Path("rubrics") / "pacing.yaml")


def test_rubrics_lists_local_and_installed_with_criteria_and_scales(
    workdir: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    (workdir / "rubrics" / "act_fidelity.yaml").unlink()
    assert main(["rubrics"]) == 0
    out = capsys.readouterr().out
    assert "pacing  local" in out and "pacing  installed (hidden by the local one)" in out
    assert "act_fidelity  installed" in out and "act_fidelity  local" not in out
    assert "    slow_down_requested: " in out
