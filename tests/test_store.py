"""Result files: appended line by line, a cut-short last line never loses or corrupts a finished judgment."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluator.models import Judgment, RunManifest
from evaluator.store import (
    JUDGMENTS,
    JudgmentWriter,
    PriorVerdict,
    ResultsError,
    iter_judgments,
    judgments_size,
    load_judgments,
    new_run_id,
    read_manifest,
    resolve_run,
    scan_run,
    write_manifest,
)


def _judgment(turn: int, status: str = "ok", score: float | None = 1) -> Judgment:
    return Judgment(
        key=f"t/{turn}/c/0",
        rubric_id="r",
        rubric_version=1,
        rubric_hash="h",
        transcript_id="t",
        turn_index=turn,
        criterion_id="c",
        status=status,  # type: ignore[arg-type]
        score=score if status == "ok" else None,
        unscored_reason="no LLM judge configured" if status == "unscored" else None,
        judge="rules",
    )


def test_each_judgment_is_on_disk_as_soon_as_it_is_appended(tmp_path: Path) -> None:
    writer = JudgmentWriter(tmp_path)
    writer.append(_judgment(1))
    assert [j.turn_index for j in load_judgments(tmp_path)] == [1]
    writer.append(_judgment(3))
    assert [j.turn_index for j in load_judgments(tmp_path)] == [1, 3]
    writer.close()


def test_a_line_cut_short_by_a_kill_is_dropped_and_truncated_on_reopen(tmp_path: Path) -> None:
    with JudgmentWriter(tmp_path) as writer:
        writer.append(_judgment(1))
        writer.append(_judgment(3))
    path = tmp_path / JUDGMENTS
    whole = path.read_bytes()
    path.write_bytes(whole + whole[: len(whole) // 3])
    assert [j.turn_index for j in load_judgments(tmp_path)] == [1, 3]
    with JudgmentWriter(tmp_path) as writer:
        writer.append(_judgment(5))
    assert path.read_bytes().count(b"\n") == 3
    assert [j.turn_index for j in load_judgments(tmp_path)] == [1, 3, 5]


def test_a_rejudged_key_keeps_the_latest_judgment(tmp_path: Path) -> None:
    with JudgmentWriter(tmp_path) as writer:
        writer.append(_judgment(1, status="unscored"))
        writer.append(_judgment(1, score=0))
    (only,) = load_judgments(tmp_path)
    assert (only.status, only.score) == ("ok", 0)


def test_a_corrupt_complete_line_names_file_and_line(tmp_path: Path) -> None:
    with JudgmentWriter(tmp_path) as writer:
        writer.append(_judgment(1))
    with (tmp_path / JUDGMENTS).open("a") as handle:
        handle.write('{"key": "broken"}\n')
    with pytest.raises(ResultsError, match=r"judgments.jsonl, line 2: not a valid judgment"):
        load_judgments(tmp_path)


def test_manifest_round_trip_and_run_lookup(tmp_path: Path) -> None:
    run_id = new_run_id()
    run_dir = tmp_path / run_id
    run_dir.mkdir()
    manifest = RunManifest(
        run_id=run_id,
        created_at="now",
        command=["evaluator", "run"],
        package_version="0",
        transcripts=["t"],
        transcript_files=["t.txt"],
        rubrics={},
        template_hashes={},
        judge={"judge": "rules"},
    )
    write_manifest(run_dir, manifest)
    assert read_manifest(run_dir) == manifest
    assert not list(run_dir.glob(".*.tmp"))
    assert resolve_run(Path(run_id), tmp_path) == run_dir
    with pytest.raises(ResultsError, match="no run found"):
        resolve_run(Path("nope"), tmp_path)


def test_a_resume_scan_reads_the_latest_judgment_of_each_key_as_load_judgments_does(tmp_path: Path) -> None:
    """Errors are judged again; a key written twice counts once, at its last line, and the earlier line is
    skipped when the run is read again; kept keys and the verdicts dependents read are all a resume holds."""
    with JudgmentWriter(tmp_path) as writer:
        writer.append(_judgment(1, status="error"))
        writer.append(_judgment(2, score=0))
        writer.append(_judgment(1, score=1))
        writer.append(_judgment(3, status="error"))
    scan = scan_run(tmp_path, keep=("ok", "not_applicable", "unscored"), prerequisites={("r", "c")})
    assert scan.done == {"r/t/1/c/0", "r/t/2/c/0"} and set(scan.replaceable) == {"r/t/3/c/0"}
    assert scan.verdicts["r/t/2/c/0"] == PriorVerdict("ok", 0) and scan.superseded == {1}
    assert dict(scan.tally.counts) == {"ok": 2, "error": 1}
    with JudgmentWriter(tmp_path) as writer:
        writer.append(_judgment(3, score=1))
    scan.replaced("r/t/3/c/0")
    scan.tally.add("ok", _judgment(3).usage)
    assert dict(scan.tally.counts) == {"ok": 3, "error": 0} and scan.superseded == {1, 4}
    streamed = [(j.key, j.status) for j in iter_judgments(tmp_path, scan.superseded)]
    assert streamed == [(j.key, j.status) for j in load_judgments(tmp_path)]


def test_the_end_of_the_last_complete_line_is_found_from_the_end_of_a_large_file(tmp_path: Path) -> None:
    with JudgmentWriter(tmp_path) as writer:
        for turn in range(400):
            writer.append(_judgment(turn))
    path = tmp_path / JUDGMENTS
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"key": "cut sh')
    assert path.stat().st_size > 1 << 16 and judgments_size(tmp_path) == len(whole)
    assert [j.turn_index for j in iter_judgments(tmp_path)] == list(range(400))
