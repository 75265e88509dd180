"""report/ pages of a large run: each transcript's judgments read from its own lines of judgments.jsonl,
as the whole-run reader would see them."""

from __future__ import annotations

from pathlib import Path

from evaluator.results import judgment_offsets, transcript_judgments
from evaluator.store import JUDGMENTS, load_judgments
from evaluator.views.pages import page_name
from tests.runs import LIKERT, judgment, make_rubric, write_run


def test_one_transcripts_lines_hold_what_the_whole_run_holds_for_it(tmp_path: Path) -> None:
    """A re-judged key (--retry-failed) shows its last judgment once; a line cut short by a kill is not read."""
    first = [judgment(t, turn, 2.0) for t in ("a", "b", "c") for turn in (1, 3)]
    run_dir = write_run(tmp_path, "run", make_rubric(LIKERT), first)
    with (run_dir / JUDGMENTS).open("a", encoding="utf-8") as handle:
        handle.write(judgment("b", 3, 5.0, rationale="judged again").model_dump_json() + "\n")
        handle.write(judgment("c", 5, 1.0).model_dump_json()[:40])
    offsets = judgment_offsets(run_dir)
    assert sorted(offsets) == ["a", "b", "c"]
    whole = load_judgments(run_dir)
    for transcript_id, found in offsets.items():
        mine = transcript_judgments(run_dir, found)
        assert sorted(j.key for j in mine) == sorted(j.key for j in whole if j.transcript_id == transcript_id)
        assert {j.key: j for j in mine} == {j.key: j for j in whole if j.transcript_id == transcript_id}
    b = {j.turn_index: j for j in transcript_judgments(run_dir, offsets["b"])}
    assert b[3].score == 5.0 and b[3].rationale == "judged again" and len(b) == 2


def test_page_names_are_safe_distinct_file_names_for_any_id() -> None:
    names = [page_name(n, tid) for n, tid in enumerate(["a/b", "a b", "../../etc", "ü", ".hidden", ""])]
    assert names == [
        "00000-a-b.html",
        "00001-a-b.html",
        "00002-etc.html",
        "00003.html",
        "00004-hidden.html",
        "00005.html",
    ]
    assert len(set(names)) == len(names)
