"""Comparing two runs, on results of the real pipeline with the offline rules judge: what moved, by
how much, and whether a rubric edit explains it. Expected figures are recomputed here from the raw
judgments, independently of evaluator.analysis.compare."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path
from statistics import mean

import pytest
from rich.console import Console
from scipy.stats import binom
from sklearn.metrics import cohen_kappa_score

from evaluator.analysis.compare import Comparison, compare_runs, kappa_between
from evaluator.config import JudgeSettings, RunConfig
from evaluator.runner import run
from evaluator.store import JUDGMENTS, MANIFEST, load_judgments
from evaluator.views.compare import print_comparison, write_comparison
from tests.conftest import IGNORING_SEED, REPO, SLOWING_SEED
from tests.runs import LIKERT, RUBRIC_ID, judgment, make_rubric, sampled, write_run

EDITED = "acknowledges_request"
PACING = REPO / "rubrics" / "pacing.yaml"

# One criterion edited: the rules judge scores by `check`, so the check moves with the question and
# the yes/no anchors, as a prompt engineer's rewrite would move an LLM judge's verdicts.
EDITS = (
    ("check: acknowledges_pacing_request", "check: offers_choice_or_pause"),
    (
        (
            "Does this therapist turn acknowledge the patient's request to slow down, in words: naming the\n"
            "      pace, the pause, the patient's discomfort, or agreeing to go slower?"
        ),
        "Does this therapist turn answer the request by offering a pause or a choice?",
    ),
    (
        "yes: The request or the patient's discomfort with the pace is acknowledged.",
        "yes: The request is answered with a pause or a choice.",
    ),
)


def _run(output: Path, run_id: str, transcripts: list[Path], rubrics: list[Path], samples: int = 1) -> Path:
    config = RunConfig(
        transcripts=transcripts,
        rubrics=rubrics,
        output=output,
        judge=JudgeSettings(kind="rules"),
        run_id=run_id,
        samples=samples,
        show_progress=False,
    )
    return run(config).run_dir


@pytest.fixture(scope="module")
def same_twice(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("same")
    seeds, rubrics = [IGNORING_SEED, SLOWING_SEED], [REPO / "rubrics"]
    return _run(out, "a", seeds, rubrics), _run(out, "b", seeds, rubrics)


@pytest.fixture(scope="module")
def edited(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("edited")
    rubric = out / "pacing.yaml"
    shutil.copy(PACING, rubric)
    run_a = _run(out, "a", [IGNORING_SEED, SLOWING_SEED], [rubric])
    text = rubric.read_text(encoding="utf-8")
    for old, new in EDITS:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    rubric.write_text(text, encoding="utf-8")
    return run_a, _run(out, "b", [IGNORING_SEED, SLOWING_SEED], [rubric])


def _scores(run_dir: Path, criterion: str) -> dict[tuple[str, int], float]:
    return {
        (j.transcript_id, j.turn_index): j.score
        for j in load_judgments(run_dir)
        if j.criterion_id == criterion and j.status == "ok" and j.score is not None
    }


def _rendered(comparison: Comparison, top: int = 20) -> str:
    console = Console(record=True, width=200)
    print_comparison(comparison, console, top=top)
    return console.export_text()


def test_the_same_inputs_twice_agree_everywhere(same_twice) -> None:
    comparison = compare_runs(*same_twice)
    assert comparison.changed == [] and comparison.warnings == []
    scored = [c for c in comparison.criteria if c.paired]
    assert len(scored) >= 10  # the rules judge scores the criteria that have a check, in all four rubrics
    for c in comparison.criteria:
        assert not c.edited and not c.moved and c.only_a == c.only_b == 0
        if c.paired:
            assert c.exact == 1.0 and c.difference is not None and c.difference.value == 0.0
            assert c.kappa == 1.0 or (c.kappa is None and "undefined" in c.kappa_note), c.criterion_id
        else:
            assert c.kappa is None and c.kappa_note == "no paired items"
    ordinal = comparison.criterion("pacing", "questions_asked")
    assert ordinal.kappa == 1.0 and ordinal.kappa_weights == "quadratic"
    assert "edited" not in _rendered(comparison)


def test_an_edited_criterion_is_named_and_nothing_else_moves(edited) -> None:
    run_a, run_b = edited
    comparison = compare_runs(run_a, run_b)
    target = comparison.criterion("pacing", EDITED)
    assert target.edited and set(target.edit.fields) == {"check", "question", "scale.yes"}

    a, b = _scores(run_a, EDITED), _scores(run_b, EDITED)
    paired = sorted(a.keys() & b.keys())
    moved = {k for k in paired if a[k] != b[k]}
    assert moved, "the edit must move some verdicts, or this test proves nothing"
    assert target.paired == len(paired) and target.changed == len(moved)
    assert target.mean_a == pytest.approx(mean(a[k] for k in paired))
    assert target.mean_b == pytest.approx(mean(b[k] for k in paired))
    assert target.difference.value == pytest.approx(mean(b[k] - a[k] for k in paired))
    assert target.exact == pytest.approx(1 - len(moved) / len(paired))
    assert target.kappa == pytest.approx(cohen_kappa_score([a[k] for k in paired], [b[k] for k in paired]))
    assert {(i.transcript_id, i.turn_index) for i in comparison.changed} == moved
    assert all(i.criterion_id == EDITED and i.rationale_a != i.rationale_b for i in comparison.changed)

    (warning,) = comparison.warnings
    assert warning.kind == "edited" and warning.criterion_id == EDITED
    assert warning.message.startswith(f"criterion {EDITED} of rubric pacing changed: ")
    for c in comparison.criteria:
        if c.criterion_id != EDITED:
            assert not c.edited and not c.moved and c.changed == 0 and c.exact == 1.0, c.criterion_id


def test_a_verdict_that_moves_without_an_edit_is_flagged(same_twice, tmp_path: Path) -> None:
    run_a, run_b = same_twice
    copy = tmp_path / "b"
    shutil.copytree(run_b, copy)
    rejudged = next(j for j in load_judgments(copy) if j.criterion_id == "questions_asked" and j.status == "ok")
    with (copy / JUDGMENTS).open("a", encoding="utf-8") as handle:  # a later line wins, as with --retry-failed
        handle.write(rejudged.model_copy(update={"score": rejudged.score + 2}).model_dump_json() + "\n")
    comparison = compare_runs(run_a, copy)
    (item,) = comparison.changed
    assert (item.transcript_id, item.turn_index, item.magnitude) == (rejudged.transcript_id, rejudged.turn_index, 2.0)
    (warning,) = comparison.warnings
    assert warning.kind == "moved_without_edit" and warning.criterion_id == "questions_asked"
    assert "judge nondeterminism" in warning.message
    assert comparison.criterion("pacing", "questions_asked").kappa < 1


def test_html_in_a_rationale_is_shown_not_run_in_compare_md(same_twice, tmp_path: Path) -> None:
    run_a, run_b = same_twice
    copy = tmp_path / "b"
    shutil.copytree(run_b, copy)
    rejudged = next(j for j in load_judgments(copy) if j.criterion_id == "questions_asked" and j.status == "ok")
    hostile = "<script>alert(1)</script> | asked"
    with (copy / JUDGMENTS).open("a", encoding="utf-8") as handle:
        handle.write(rejudged.model_copy(update={"score": rejudged.score + 1, "rationale": hostile}).model_dump_json())
        handle.write("\n")
    _, path = write_comparison(run_a, copy)
    text = path.read_text(encoding="utf-8")
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt; \\| asked" in text


def test_a_changed_template_or_judge_is_warned_and_blamed(same_twice, tmp_path: Path) -> None:
    run_a, run_b = same_twice
    copy = tmp_path / "b"
    shutil.copytree(run_b, copy)
    manifest = json.loads((copy / MANIFEST).read_text(encoding="utf-8"))
    manifest["template_hashes"]["pacing"] = "0000000000000000"
    manifest["judge"]["temperature"] = 0.7
    (copy / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    rejudged = next(j for j in load_judgments(copy) if j.criterion_id == "relative_length" and j.label == "shorter")
    with (copy / JUDGMENTS).open("a", encoding="utf-8") as handle:
        handle.write(rejudged.model_copy(update={"label": "longer", "score": 2.0}).model_dump_json() + "\n")
    comparison = compare_runs(run_a, copy)
    kinds = {w.kind: w for w in comparison.warnings}
    assert set(kinds) == {"template", "judge", "moved_without_edit"}
    assert kinds["template"].rubric_id == "pacing" and "temperature None → 0.7" in kinds["judge"].message
    assert "the prompt template changed" in kinds["moved_without_edit"].message
    assert comparison.changed[0].magnitude == 1.0  # a changed label counts 1, whatever the values


def test_different_transcripts_are_listed_and_not_paired(same_twice, tmp_path: Path) -> None:
    run_a, _ = same_twice
    run_b = _run(tmp_path, "one", [IGNORING_SEED], [REPO / "rubrics"])
    comparison = compare_runs(run_a, run_b)
    assert comparison.transcripts_only_a == [SLOWING_SEED.stem] and comparison.transcripts_only_b == []
    (warning,) = comparison.warnings
    assert warning.kind == "transcripts" and SLOWING_SEED.stem in warning.message and "only in run A" in warning.message

    judgments = load_judgments(run_a)
    for c in comparison.criteria:
        mine = [j for j in judgments if j.criterion_id == c.criterion_id and j.rubric_id == c.rubric_id]
        assert c.only_a == sum(j.transcript_id == SLOWING_SEED.stem for j in mine), c.criterion_id
        assert c.paired == sum(j.transcript_id == IGNORING_SEED.stem and j.status == "ok" for j in mine)
        assert c.only_b == 0 and not c.moved
    assert SLOWING_SEED.stem in _rendered(comparison)


def test_the_interval_holds_the_difference_and_is_reproducible(edited) -> None:
    target = compare_runs(*edited).criterion("pacing", EDITED).difference
    again = compare_runs(*edited).criterion("pacing", EDITED).difference
    assert target is not None and target == again
    assert target.low <= target.value <= target.high and target.low < target.high
    assert target.sessions == 2
    other_seed = compare_runs(*edited, seed=1).criterion("pacing", EDITED).difference
    assert other_seed.value == target.value


def test_compare_md_has_the_edit_and_both_rationales(edited) -> None:
    run_a, run_b = edited
    comparison, path = write_comparison(run_a, run_b)
    assert path == run_b / "compare.md" and not list(run_b.glob(".*.tmp"))
    text = path.read_text(encoding="utf-8")
    assert f"criterion {EDITED} of rubric pacing changed" in text
    assert len(comparison.changed) >= 2
    for item in comparison.changed:  # every changed item, not only the terminal's top
        row = next(line for line in text.splitlines() if f"| {item.transcript_id} | {item.turn_index} |" in line)
        assert item.rationale_a in row and item.rationale_b in row
    terminal = _rendered(comparison, top=1)
    assert f"(1 of {len(comparison.changed)}" in terminal and comparison.changed[0].rationale_b in terminal


def test_out_dir_is_honoured(edited, tmp_path: Path) -> None:
    _, path = write_comparison(*edited, out_dir=tmp_path / "reports")
    assert path == tmp_path / "reports" / "compare.md" and path.is_file()


def test_runs_with_samples_are_folded_before_matching(tmp_path: Path) -> None:
    single = _run(tmp_path, "one", [SLOWING_SEED], [PACING])
    repeated = _run(tmp_path, "two", [SLOWING_SEED], [PACING], samples=2)
    comparison = compare_runs(single, repeated)
    assert comparison.changed == []
    (warning,) = comparison.warnings
    assert warning.kind == "judge" and "samples 1 → 2" in warning.message
    samples = defaultdict(set)
    for j in load_judgments(repeated):
        samples[j.criterion_id, j.transcript_id, j.turn_index].add(j.sample)
    assert set(map(frozenset, samples.values())) == {frozenset({0, 1})}
    for c in comparison.criteria:
        assert c.only_a == c.only_b == 0 and c.exact in (1.0, None)
        assert c.paired == len(_scores(single, c.criterion_id)), c.criterion_id


# Run A's samples waver around the verdict run B gives steadily; folded (mean over three samples) the two
# runs agree on every item. Sample 0 and the last sample of run A both differ from its folded verdict.
WAVERING = {("t1", 1): [2, 5, 2], ("t1", 3): [5, 2, 5], ("t2", 1): [1, 4, 1], ("t2", 3): [4, 1, 4]}
STEADY = {("t1", 1): [3, 3, 3], ("t1", 3): [4, 4, 4], ("t2", 1): [2, 2, 2], ("t2", 3): [3, 3, 3]}


def test_sampled_runs_are_matched_on_their_folded_verdicts(tmp_path: Path) -> None:
    rubric = make_rubric(LIKERT)
    runs = [
        write_run(
            tmp_path, run_id, rubric, [j for (t, turn), s in items.items() for j in sampled(t, turn, s)], samples=3
        )
        for run_id, items in (("wavering", WAVERING), ("steady", STEADY))
    ]
    comparison = compare_runs(*runs)
    c = comparison.criterion(RUBRIC_ID, LIKERT["id"])
    assert c.paired == 4 and c.changed == 0 and comparison.changed == [] and c.exact == 1.0
    assert c.mean_a == c.mean_b == pytest.approx(mean([3, 4, 2, 3]))
    assert c.kappa == 1.0 and c.kappa_weights == "quadratic"
    assert c.difference.value == 0.0 and c.difference.low == c.difference.high == 0.0
    assert comparison.warnings == []  # nothing moved, so no "moved without an edit" either


def test_a_folded_verdict_that_moves_is_reported_with_its_folded_values(tmp_path: Path) -> None:
    rubric = make_rubric(LIKERT)
    moved = {**STEADY, ("t2", 3): [5, 5, 2]}  # folded 4, where run A's samples fold to 3
    runs = [
        write_run(
            tmp_path, run_id, rubric, [j for (t, turn), s in items.items() for j in sampled(t, turn, s)], samples=3
        )
        for run_id, items in (("wavering", WAVERING), ("moved", moved))
    ]
    comparison = compare_runs(*runs)
    (item,) = comparison.changed
    assert (item.transcript_id, item.turn_index, item.verdict_a, item.verdict_b) == ("t2", 3, 3, 4)
    assert item.magnitude == 1.0
    c = comparison.criterion(RUBRIC_ID, LIKERT["id"])
    assert c.changed == 1 and c.exact == 0.75 and c.difference.value == pytest.approx(1 / 4)


def test_the_difference_interval_is_95_percent_over_whole_sessions(tmp_path: Path) -> None:
    """Ten sessions of three paired items; run B scores 4 higher in five sessions and the same in the
    others, alike on every item of a session. Resampling sessions, B − A is 4 * Binomial(10, 1/2) / 10,
    whose 2.5% and 97.5% points are read off the binomial here: [0.8, 3.2] (80%: [1.2, 2.8]; resampling
    the 30 items as if independent: about [1.3, 2.7])."""
    rubric = make_rubric(LIKERT)
    items = [(f"s{i}", turn) for i in range(10) for turn in (1, 3, 5)]
    run_a = write_run(tmp_path, "a", rubric, [judgment(t, turn, 1.0) for t, turn in items])
    run_b = write_run(tmp_path, "b", rubric, [judgment(t, turn, 5.0 if t < "s5" else 1.0) for t, turn in items])
    comparison, path = write_comparison(run_a, run_b)
    difference = comparison.criterion(RUBRIC_ID, LIKERT["id"]).difference
    low, high = (4 * binom(10, 0.5).ppf(q) / 10 for q in (0.025, 0.975))
    assert (low, high) == (0.8, 3.2)
    assert difference.value == pytest.approx(2.0)
    assert (difference.low, difference.high) == pytest.approx((low, high))
    assert difference.n == 30 and difference.sessions == 10
    assert "+2.00 [+0.80, +3.20]" in path.read_text(encoding="utf-8")


def test_kappa_is_never_nan() -> None:
    assert kappa_between([1, 1, 1], [1, 1, 1], "binary") == (
        None,
        None,
        "undefined: both runs gave every paired item the verdict 1",
    )
    assert kappa_between([], [], "likert")[0] is None
    assert kappa_between([2.5, 3.0], [2.5, 4.0], "likert")[0] is None
    # Same marginals, one swap each: unweighted kappa cannot tell them apart, the ordinal one must.
    near, weights, _ = kappa_between([1, 2, 3, 4, 5], [2, 1, 3, 4, 5], "likert")
    far, _, _ = kappa_between([1, 2, 3, 4, 5], [5, 2, 3, 4, 1], "likert")
    assert weights == "quadratic" and near > far
    assert kappa_between([0, 1, 0, 1], [0, 1, 1, 1], "binary") == (pytest.approx(0.5), None, "")


def test_a_criterion_moved_by_an_edit_upstream_is_blamed_on_that_edit(tmp_path: Path) -> None:
    rubric = tmp_path / "pacing.yaml"
    shutil.copy(PACING, rubric)
    run_a = _run(tmp_path, "a", [SLOWING_SEED], [rubric])
    text = rubric.read_text(encoding="utf-8")
    rubric.write_text(text.replace("check: pacing_request", "check: offers_choice_or_pause"), encoding="utf-8")
    comparison = compare_runs(run_a, _run(tmp_path, "b", [SLOWING_SEED], [rubric]))
    (edit,) = [w for w in comparison.warnings if w.kind == "edited"]
    assert edit.criterion_id == "slow_down_requested" and "check edited" in edit.message
    dependents = {w.criterion_id: w.message for w in comparison.warnings if w.kind == "moved_without_edit"}
    assert "slow_down_responsiveness" in dependents and "questions_asked" not in dependents
    assert all("after criterion slow_down_requested, which was edited" in m for m in dependents.values())
    assert comparison.criterion("pacing", "slow_down_responsiveness").status_changes.get("ok→not_applicable", 0) > 0


def test_an_anchor_edit_under_an_llm_judge_moves_only_that_criterion(tmp_path: Path, fake_server) -> None:
    """The prompt engineer's loop: edit one criterion's anchors, re-run against the same endpoint,
    and see that criterion named, its moved items listed, and nothing else moved."""
    rubric = tmp_path / "pacing.yaml"
    rubric.write_text((REPO / "rubrics" / "pacing.yaml").read_text())
    server = fake_server()

    def judged(run_id: str) -> Path:
        judge = JudgeSettings(kind="openai", model="fake-judge", base_url=server.url, cache_path=None)
        config = RunConfig(
            transcripts=[IGNORING_SEED, SLOWING_SEED],
            rubrics=[rubric],
            output=tmp_path / "results",
            judge=judge,
            run_id=run_id,
            show_progress=False,
            concurrency=16,
        )
        return run(config).run_dir

    run_a = judged("a")
    rubric.write_text(
        rubric.read_text().replace(
            "3: Acknowledges the request in words but keeps the same pace or agenda.",
            "3: Names the request but carries on with the same exercise or question.",
        )
    )
    run_b = judged("b")
    comparison = compare_runs(run_a, run_b)
    edited_warnings = [w for w in comparison.warnings if w.kind == "edited"]
    assert [(w.criterion_id, "scale.anchors" in w.message) for w in edited_warnings] == [
        ("slow_down_responsiveness", True)
    ]
    moved = {c.criterion_id for c in comparison.changed}
    assert moved == {"slow_down_responsiveness"}
    assert comparison.criterion("pacing", "slow_down_responsiveness").changed == len(comparison.changed) > 0
    for other in ("slow_down_requested", "acknowledges_request", "questions_asked", "relative_length"):
        assert comparison.criterion("pacing", other).changed == 0


def test_repeated_samples_that_differ_are_folded_into_one_verdict(tmp_path: Path) -> None:
    """Samples 1 and 2 of one item rejudged +1 and +2: compared on their mean, not sample 0 or the last
    line, with the samples' distinct rationales. Fails if compare matches unfolded judgments."""
    single = _run(tmp_path, "one", [SLOWING_SEED], [PACING])
    repeated = _run(tmp_path, "three", [SLOWING_SEED], [PACING], samples=3)
    judgments = load_judgments(repeated)
    first = next(j for j in judgments if j.criterion_id == "questions_asked" and j.status == "ok" and j.sample == 0)
    same_item = [j for j in judgments if j.key.rsplit("/", 1)[0] == first.key.rsplit("/", 1)[0]]
    with (repeated / JUDGMENTS).open("a", encoding="utf-8") as handle:
        for j in same_item:
            if j.sample:
                update = {"score": first.score + j.sample, "rationale": f"sample {j.sample} disagrees"}
                handle.write(j.model_copy(update=update).model_dump_json() + "\n")
    comparison = compare_runs(single, repeated)
    (item,) = comparison.changed
    assert (item.transcript_id, item.turn_index) == (first.transcript_id, first.turn_index)
    assert item.verdict_b == first.score + 1 and item.magnitude == 1.0
    assert item.rationale_b == f"{first.rationale} / sample 1 disagrees / sample 2 disagrees"
    target = comparison.criterion("pacing", "questions_asked")
    scores = _scores(single, "questions_asked")
    assert target.mean_b == pytest.approx(mean(scores.values()) + 1 / len(scores))
