"""report/ pages of a large run: each transcript's judgments read from its own lines of judgments.jsonl,
as the whole-run reader would see them."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from evaluator.results import judgment_offsets, transcript_judgments
from evaluator.store import JUDGMENTS, load_judgments
from evaluator.views.html import write_html_report
from evaluator.views.pages import PAGES_DIR, page_name
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


# A report write killed at its second page, as a kill -9 stops it: no cleanup runs.
KILLED_WRITE = """
import os, signal, sys
from pathlib import Path
from evaluator.analysis.summary import summarize
from evaluator.views.pages import write_pages

run_dir = Path(sys.argv[1])
written = []

def render(page):
    written.append(page)
    if len(written) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return "<p>page</p>"

write_pages(run_dir, summarize(run_dir), lambda _: None, [], render, {"report.css": "p {}"})
"""


def test_the_next_report_write_removes_what_a_killed_one_left_and_nothing_else(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, "run", make_rubric(LIKERT), [judgment(t, 1, 2.0) for t in ("a", "b", "c")])
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITE, str(run_dir)], capture_output=True, text=True)
    assert killed.returncode < 0, killed.stderr
    (left,) = [p for p in run_dir.iterdir() if p.name.startswith(f".{PAGES_DIR}.")]
    assert left.is_dir() and (left / "report.css").is_file()
    old = Path(tempfile.mkdtemp(prefix=f".{PAGES_DIR}.old.", dir=run_dir))  # killed between swap and delete
    (old / PAGES_DIR).mkdir()
    others = [run_dir / name for name in (".report.notmine", ".reports.abcd1234", "report.abcd1234", ".report.x")]
    for other in others:
        other.mkdir()
    (run_dir / ".report.abcdefgh").write_text("a file, not a folder of ours", encoding="utf-8")
    write_html_report(run_dir, single_file=False)
    assert not left.exists() and not old.exists()
    assert all(other.is_dir() for other in others) and (run_dir / ".report.abcdefgh").is_file()
    assert [p.name for p in sorted((run_dir / PAGES_DIR).glob("0*.html"))] == [
        page_name(n, t) for n, t in enumerate("abc")
    ]
    again = Path(tempfile.mkdtemp(prefix=f".{PAGES_DIR}.", dir=run_dir))
    write_html_report(run_dir, single_file=True)  # a single-file report cleans up as well
    assert not again.exists() and not (run_dir / PAGES_DIR).exists() and all(other.is_dir() for other in others)
