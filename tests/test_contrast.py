"""Contrasts: a two-arm corpus with a known injected difference on one criterion and none on another,
judged offline by the rules judge, must show an interval that excludes 0 for the first and includes it
for the second; pairing on the patient narrows it; the interval resamples sessions, never turns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

import evaluator
from evaluator.analysis.contrast import (
    contrast_groups,
    contrast_runs,
    holm,
    paired_difference,
    unpaired_difference,
)
from evaluator.analysis.groups import GroupingError
from evaluator.cli.main import main
from evaluator.models import RunManifest
from evaluator.store import MANIFEST
from evaluator.views import format as fmt
from evaluator.views.contrast import CONTRAST_HTML, CONTRAST_MD, print_contrast
from tests.arms import QUESTIONS, VALIDATES, judged_corpus
from tests.runs import BINARY, LIKERT, judgment, make_rubric, write_run


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return judged_corpus(tmp_path_factory.mktemp("arms"))


def _row(contrast, criterion: str):  # type: ignore[no-untyped-def]
    return next(r for r in contrast.rows if r.criterion.id == criterion)


def _width(row) -> float:  # type: ignore[no-untyped-def]
    return row.difference.high - row.difference.low


@pytest.mark.parametrize("pair_by", [None, "patient_id"])
def test_the_injected_difference_is_found_and_the_absent_one_is_not(corpus: Path, pair_by: str | None) -> None:
    contrast = contrast_groups(corpus, "model", pair_by=pair_by)
    assert contrast.baseline == "model-a" and contrast.compared() == ["model-b"]
    questions, validates = _row(contrast, QUESTIONS), _row(contrast, VALIDATES)
    assert questions.difference.low > 0 and questions.excludes_zero  # model-b asks one question more per turn
    assert questions.difference.value == pytest.approx(1.0, abs=0.15)
    assert questions.verdict == "worse"  # fewer questions is better on this criterion
    assert validates.difference.low < 0 < validates.difference.high and validates.verdict == "unclear"
    assert questions.p_holm is not None and questions.p_holm < 0.01 < validates.p_value  # type: ignore[operator]


def test_pairing_on_the_patient_narrows_the_interval(corpus: Path) -> None:
    """The patient sets how many questions any therapist asks them: pairing removes that, unpaired keeps it."""
    unpaired = _row(contrast_groups(corpus, "model"), QUESTIONS)
    paired = _row(contrast_groups(corpus, "model", pair_by="patient_id"), QUESTIONS)
    assert paired.pairs == 20 and unpaired.pairs is None
    assert _width(paired) < 0.5 * _width(unpaired)


def test_the_baseline_can_be_chosen_and_flips_the_sign(corpus: Path) -> None:
    default = _row(contrast_groups(corpus, "model"), QUESTIONS)
    flipped = _row(contrast_groups(corpus, "model", baseline="model-b"), QUESTIONS)
    assert flipped.difference.value == pytest.approx(-default.difference.value)
    assert flipped.verdict == "better"
    with pytest.raises(GroupingError, match="no arm 'model-c'.*model-a, model-b"):
        contrast_groups(corpus, "model", baseline="model-c")


def _sessions(values: list[int], turns: int) -> dict[str, list[float]]:
    """One session per value, each of `turns` identical turns: all variation is between sessions."""
    return {f"s{n}": [float(v)] * turns for n, v in enumerate(values)}


def test_the_unpaired_interval_resamples_sessions_not_turns() -> None:
    """Ten sessions per arm of 50 identical turns, half 0 and half 1 in each arm: the difference is 0 and
    its session-level standard error about 0.22, so the 95% interval spans about 0.9; resampling the
    1,000 turns would make it about 0.12 wide."""
    arm = _sessions([0, 1] * 5, 50)
    estimate, p = unpaired_difference(arm, dict(arm))  # type: ignore[misc]
    assert estimate.value == 0 and estimate.sessions == 20 and estimate.n == 1000
    assert 0.6 < estimate.high - estimate.low < 1.2
    assert p == 1.0


def test_the_paired_interval_resamples_pairs_not_turns() -> None:
    """Ten pairs whose differences are 0 or 1 (half each), 50 turns a session: the interval spans about 0.6."""
    pairs = [([0.0] * 50, [float(n % 2)] * 50) for n in range(10)]
    estimate, _ = paired_difference(pairs)  # type: ignore[misc]
    assert estimate.value == 0.5 and 0.4 < estimate.high - estimate.low < 0.9


def test_holm_on_a_known_case() -> None:
    # sorted: .005*4=.02, .01*3=.03, .03*2=.06, .04*1=.04 -> kept monotone: .06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.02, None, 0.9]) == [pytest.approx(0.04), None, pytest.approx(0.9)]  # None is no test
    assert holm([0.4, 0.6]) == [pytest.approx(0.8), pytest.approx(0.8)]  # capped and monotone
    assert holm([]) == []


def _with_metadata(run_dir: Path, metadata: dict[str, dict]) -> Path:
    manifest = RunManifest.model_validate_json((run_dir / MANIFEST).read_text(encoding="utf-8"))
    manifest.transcript_metadata = metadata
    (run_dir / MANIFEST).write_text(manifest.model_dump_json(), encoding="utf-8")
    return run_dir


def test_three_arms_each_against_the_baseline_with_holm_across_every_row(tmp_path: Path) -> None:
    arms = {"a": 2, "b": 3, "c": 4}
    judgments = [
        judgment(f"{arm}{s}", t, score + (s % 2)) for arm, score in arms.items() for s in range(4) for t in (1, 3)
    ]
    run_dir = _with_metadata(
        write_run(tmp_path, "r", make_rubric(LIKERT), judgments),
        {f"{arm}{s}": {"arm": arm} for arm in arms for s in range(4)},
    )
    contrast = contrast_groups(run_dir, "arm")
    assert contrast.baseline == "a" and contrast.compared() == ["b", "c"]
    assert [r.difference.value for r in contrast.rows] == pytest.approx([1.0, 2.0])
    assert [r.p_holm for r in contrast.rows] == holm([r.p_value for r in contrast.rows])
    assert any("arm a has 4 sessions" in w and "79% at 4" in w for w in contrast.warnings)


def test_two_runs_are_paired_by_transcript(tmp_path: Path) -> None:
    """Run B scores every item one point higher than run A, over sessions that differ a lot: paired by
    transcript, the difference is exactly 1 with no width (unpaired, the sessions' spread would widen it)."""
    rubric = make_rubric(LIKERT)
    scores = {f"t{n}": 1 + n % 3 for n in range(12)}
    run_a = write_run(tmp_path, "a", rubric, [judgment(t, i, s) for t, s in scores.items() for i in (1, 3)])
    run_b = write_run(tmp_path, "b", rubric, [judgment(t, i, s + 1) for t, s in scores.items() for i in (1, 3)])
    contrast = contrast_runs(run_a, run_b)
    row = contrast.rows[0]
    assert (contrast.baseline, contrast.compared()) == ("a", ["b"]) and row.pairs == 12
    assert (row.difference.value, row.difference.low, row.difference.high) == (1.0, 1.0, 1.0)
    assert row.p_value is not None and row.p_value < 0.01


def test_the_python_api_returns_a_dataframe(corpus: Path) -> None:
    frame = evaluator.contrast(corpus, by="model", pair_by="patient_id")
    row = frame.set_index("criterion").loc[QUESTIONS]
    assert row["arm"] == "model-b" and row["baseline"] == "model-a" and row["pairs"] == 20
    assert row["ci_low"] > 0 and row["verdict"] == "worse"
    assert {"p", "p_holm", "difference", "ci_high"} <= set(frame.columns)
    assert any("Paired by patient_id" in n for n in frame.attrs["notes"])


def test_the_terminal_table_reads_at_80_columns(corpus: Path) -> None:
    contrast = contrast_groups(corpus, "model")
    console = Console(width=80, record=True, force_terminal=False)
    print_contrast(contrast, console)
    text = console.export_text()
    d = _row(contrast, QUESTIONS).difference
    assert f"{d.value:+.2f} [{d.low:+.2f}, {d.high:+.2f}]" in text
    assert "Holm" in text and "resample whole sessions" in text
    assert max(len(line) for line in text.splitlines() if "│" in line) <= 80


def test_the_command_writes_contrast_md_and_html(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["contrast", str(corpus), "--by", "model", "--pair-by", "patient_id"]) == 0
    out = capsys.readouterr().out
    assert "model-b − model-a (baseline)" in out and "pairs" in out
    md = (corpus / CONTRAST_MD).read_text(encoding="utf-8")
    assert "| questions | 20 |" in md and "Holm" in md
    page = (corpus / CONTRAST_HTML).read_text(encoding="utf-8")
    assert '<svg class="forest"' in page and 'data-criterion="arms:questions"' in page


def test_the_command_refuses_what_it_cannot_do(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["contrast", str(corpus)]) == 2
    assert "--by model" in capsys.readouterr().err
    assert main(["contrast", str(corpus), "--by", "nope"]) == 2
    err = capsys.readouterr().err
    assert "'nope'" in err and "patient_id" in err
    assert main(["contrast", str(corpus), str(corpus), "--by", "model"]) == 2
    assert json.dumps("--by")[1:-1] in capsys.readouterr().err


def test_two_runs_from_the_command_line_write_into_run_b(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rubric = make_rubric(LIKERT)
    run_a = write_run(tmp_path, "a", rubric, [judgment(f"t{n}", 1, 2 + n % 2) for n in range(12)])
    run_b = write_run(tmp_path, "b", rubric, [judgment(f"t{n}", 1, 4) for n in range(12)])
    assert main(["contrast", str(run_a), str(run_b)]) == 0
    assert "b − a (baseline)" in capsys.readouterr().out
    assert (run_b / CONTRAST_MD).is_file() and (run_b / CONTRAST_HTML).is_file()
    assert not (run_a / CONTRAST_MD).exists()


def test_two_runs_name_the_criteria_and_transcripts_only_one_of_them_judged(tmp_path: Path) -> None:
    run_a = write_run(tmp_path, "a", make_rubric(LIKERT), [judgment(f"t{n}", 1, 3) for n in range(4)])
    run_b = write_run(
        tmp_path,
        "b",
        make_rubric(LIKERT, BINARY),
        [judgment(f"t{n}", 1, 4) for n in range(5)] + [judgment("t0", 1, 1, criterion=BINARY["id"])],
    )
    contrast = contrast_runs(run_a, run_b)
    assert [r.criterion.id for r in contrast.rows] == [LIKERT["id"]]
    assert any("1 transcript(s) judged in one run only" in w for w in contrast.warnings)
    assert any(f"synthetic/{BINARY['id']}" in w for w in contrast.warnings)


def test_a_baseline_of_several_fields_is_given_as_they_are_on_the_command_line(tmp_path: Path) -> None:
    judgments = [judgment(f"s{n}", 1, 1 + n % 4) for n in range(8)]
    run_dir = _with_metadata(
        write_run(tmp_path, "r", make_rubric(LIKERT), judgments),
        {f"s{n}": {"model": "m" if n % 2 else "n", "site": "x" if n % 4 < 2 else "y"} for n in range(8)},
    )
    contrast = contrast_groups(run_dir, "model,site", baseline="n,y")
    assert contrast.baseline == "n · y" and len(contrast.compared()) == 3


def test_a_criterion_no_arm_scored_is_named_once_not_shown_as_a_row(tmp_path: Path) -> None:
    """E.g. LLM criteria under the rules judge: listed as not scored, no row, no pairing warning."""
    scored = [judgment(f"s{n}", 1, 1 + n % 5) for n in range(24)]
    unscored = [judgment(f"s{n}", 1, None, criterion=BINARY["id"], status="unscored") for n in range(24)]
    run_dir = _with_metadata(
        write_run(tmp_path, "r", make_rubric(LIKERT, BINARY), scored + unscored),
        {f"s{n}": {"model": "ab"[n % 2], "patient": str(n // 2)} for n in range(24)},
    )
    contrast = contrast_groups(run_dir, "model", pair_by="patient")
    assert contrast.warnings == [] and [r.scored for r in contrast.rows] == [True, False]
    console = Console(width=80, record=True, force_terminal=False)
    print_contrast(contrast, console)
    text = console.export_text()
    assert f"Not scored in any arm (left out): {BINARY['id']}." in text
    d = contrast.rows[0].difference
    assert text.count(BINARY["id"]) == 1 and d is not None and fmt.interval(d.value, d.low, d.high, True) in text
