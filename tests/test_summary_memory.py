"""A summary of a large run holds figures, not judgments: it reads judgments.jsonl once, line by line,
and gives exactly the figures of the run's judgments held in memory. So do groups, contrasts, agreement and comparisons."""

from __future__ import annotations

import json
from pathlib import Path

from evaluator.aggregate import iter_aggregates
from evaluator.analysis.agreement import agreement
from evaluator.analysis.compare import compare
from evaluator.analysis.contrast import contrast_groups
from evaluator.analysis.summary import summarize
from evaluator.labels import HumanLabel
from evaluator.results import open_run, stream_items, stream_judgments
from evaluator.store import JUDGMENTS, MANIFEST, load_judgments
from tests.runs import LIKERT, QUESTIONS, RUBRIC_ID, judgment, make_rubric, write_run


def _run(tmp_path: Path) -> Path:
    judgments = [judgment(t, turn, float(turn % 5 + 1)) for t in ("a", "b", "c") for turn in (1, 3, 5)]
    judgments += [judgment("a", 1, None, criterion=QUESTIONS["id"], status="unscored")]
    run_dir = write_run(tmp_path, "run", make_rubric(LIKERT, QUESTIONS), judgments)
    with (run_dir / JUDGMENTS).open("a", encoding="utf-8") as handle:  # re-judged, then a line cut short
        handle.write(judgment("b", 3, 1.0, rationale="judged again").model_dump_json() + "\n")
        handle.write(judgment("a", 1, None, criterion=QUESTIONS["id"], status="unscored").model_dump_json() + "\n")
        handle.write(judgment("c", 7, 5.0).model_dump_json()[:50])
    return run_dir


def test_streamed_judgments_are_the_judgments_load_judgments_gives_in_its_order(tmp_path: Path) -> None:
    run_dir = _run(tmp_path)
    assert list(stream_judgments(run_dir)) == load_judgments(run_dir)


def test_a_summary_never_holds_every_judgment_and_its_figures_match_them(tmp_path: Path) -> None:
    run_dir = _run(tmp_path)
    summary = summarize(run_dir)
    assert "judgments" not in vars(summary.run) and "items" not in vars(summary.run)
    judgments = load_judgments(run_dir)
    assert summary.judged == len(judgments) == 10 and summary.turns_judged == 9
    cell = summary.rubrics[0].overall[LIKERT["id"]]
    assert cell.scores == [j.score for j in judgments if j.criterion_id == LIKERT["id"]]
    assert summary.rubrics[0].by_transcript["b"][LIKERT["id"]].scores == [2.0, 1.0, 1.0]
    assert summary.rubrics[0].reasons[QUESTIONS["id"]] == "the reply did not validate"


def test_a_summary_keeps_one_float_per_score_value_not_one_per_judgment(tmp_path: Path) -> None:
    """Every cell keeps every score (for the intervals), a million at a million judgments: pointers to
    one shared float per value, not a float of their own (24 bytes each, in two cells). -0.0 stays -0.0."""
    judgments = [judgment(t, turn, float(turn % 3)) for t in "abcdefgh" for turn in range(1, 40, 2)]
    judgments.append(judgment("z", 1, -0.0))
    summary = summarize(write_run(tmp_path, "run", make_rubric(LIKERT), judgments))
    scores = summary.rubrics[0].overall[LIKERT["id"]].scores
    assert scores == [j.score for j in judgments] and len(scores) == 161
    assert len({id(score) for score in scores}) == 4 and str(scores[-1]) == "-0.0"
    per_transcript = summary.rubrics[0].by_transcript["c"][LIKERT["id"]].scores
    assert {id(score) for score in per_transcript} <= {id(score) for score in scores}
    assert summary.turns_judged == 161


def test_items_stream_as_the_run_holds_them_folded_or_not(tmp_path: Path) -> None:
    """stream_items gives what folding every judgment at once gives, one item at a time and in the same
    order: with --samples each item folded as its samples come in (a resumed item's last sample written at
    the end included)."""
    judgments = [
        judgment(t, turn, float((turn + s) % 5 + 1), sample=s) for t in "ab" for turn in (1, 3) for s in (0, 1, 2)
    ]
    late = judgments.pop(1)  # item a/1 gets its second sample last, as a resume writes it
    folded = write_run(tmp_path, "folded", make_rubric(LIKERT), [*judgments, late], samples=3)
    plain = write_run(tmp_path, "plain", make_rubric(LIKERT), [j for j in judgments if j.sample == 0])
    streamed = list(stream_items(open_run(folded)))
    assert streamed == list(iter_aggregates(load_judgments(folded), {RUBRIC_ID: make_rubric(LIKERT)}, "auto"))
    assert len(streamed) == 4
    assert list(stream_items(open_run(plain))) == [j for j in load_judgments(plain) if j.sample == 0]


def test_a_folded_summary_a_contrast_an_agreement_and_a_comparison_hold_no_judgment(tmp_path: Path) -> None:
    judgments = [judgment(t, turn, float(turn % 5 + 1), sample=s) for t in "abcd" for turn in (1, 3) for s in (0, 1)]
    run_dir = write_run(tmp_path, "run", make_rubric(LIKERT), judgments, samples=2)
    manifest = json.loads((run_dir / MANIFEST).read_text(encoding="utf-8"))
    manifest["transcript_metadata"] = {t: {"arm": "x" if t in "ab" else "y"} for t in "abcd"}
    (run_dir / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    run = open_run(run_dir)
    summary = summarize(run)
    contrast = contrast_groups(run, "arm")
    labels = [
        HumanLabel(t, turn, LIKERT["id"], "3", rater, line)
        for line, (t, turn, rater) in enumerate(
            [("a", 1, "r1"), ("a", 1, "r2"), ("b", 3, "r1"), ("z", 1, "r1")], start=2
        )
    ]
    report = agreement(run, labels, tmp_path / "labels.csv")
    comparison = compare(run, run)
    assert "judgments" not in vars(run) and "items" not in vars(run)
    assert comparison.criteria and not any(c.moved for c in comparison.criteria)
    assert summary.turns_judged == 8 and contrast.rows
    criterion = report.criteria[0]
    assert criterion.unmatched.matched == 3 and criterion.unmatched.judged_unlabelled == 6
