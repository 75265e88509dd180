"""report/ beside report.html: one page per transcript, for runs too large for one file.

A report that inlines every turn of every session grows with the run (246 MB and minutes to open at
40,000 judgments), so past SINGLE_FILE_SESSIONS sessions or SINGLE_FILE_JUDGMENTS judgments report.html
keeps the figures and an index, and each transcript's conversation goes to its own small page here.
Pages are written one transcript at a time from its own lines of judgments.jsonl (results.
judgment_offsets), so the build never holds every judgment; they go to a temporary folder that then
replaces report/ as a whole, so a reader never follows a link into half a report. A write killed midway
leaves its temporary folder behind; the next write removes it, and one write at a time per run folder
means no write removes another's work in progress.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from evaluator.analysis.summary import RunSummary
from evaluator.models import Judgment, Transcript
from evaluator.results import judgment_offsets, transcript_judgments
from evaluator.views.sessions import SessionView, session_layout, session_view

PAGES_DIR = "report"
SINGLE_FILE_SESSIONS = 50
SINGLE_FILE_JUDGMENTS = 2000
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
BUILDING = f".{PAGES_DIR}."
"""The prefix of the temporary folder pages are written to; the folder an old report/ is moved into
before it is deleted adds OLD."""
OLD = "old."
_TEMPORARY = re.compile(re.escape(BUILDING) + f"(?:{re.escape(OLD)})?" + r"[a-z0-9_]{8}")
"""Only the names tempfile.mkdtemp gives with these prefixes (8 letters, digits or underscores)."""


def fits_one_file(summary: RunSummary) -> bool:
    """Small runs keep one self-contained report.html, which can be mailed or archived as it is."""
    sessions = set(summary.manifest.transcripts).union(*(rs.by_transcript for rs in summary.rubrics))
    return len(sessions) <= SINGLE_FILE_SESSIONS and summary.judged <= SINGLE_FILE_JUDGMENTS


def transcript_ids(summary: RunSummary, extra: Iterable[str]) -> list[str]:
    """The run's transcripts in the report's order: as planned, then any judged but not planned."""
    ids = dict.fromkeys(summary.manifest.transcripts)
    ids.update(dict.fromkeys(extra))
    return list(ids)


def page_name(number: int, transcript_id: str) -> str:
    """A file name for any transcript id (slashes, spaces, any script): its number, then its safe letters."""
    slug = _UNSAFE.sub("-", transcript_id).strip("-")[:60]
    return f"{number:05d}-{slug}.html" if slug else f"{number:05d}.html"


@dataclass(frozen=True)
class PageContext:
    """What a transcript page shows besides its session: where it sits among the run's pages."""

    session: SessionView
    judgments: list[Judgment]
    previous: str | None
    next: str | None


def write_pages(
    run_dir: Path,
    summary: RunSummary,
    transcript_of: Callable[[str], Transcript | None],
    problems: list[str],
    render: Callable[[PageContext], str],
    assets: dict[str, str],
) -> dict[str, str]:
    """Write report/ (one page per transcript and the shared `assets`); return each transcript's page
    as a link relative to report.html."""
    offsets = judgment_offsets(run_dir)
    ids = transcript_ids(summary, offsets)
    names = [page_name(number, tid) for number, tid in enumerate(ids)]
    layout = session_layout(summary)
    target = run_dir / PAGES_DIR
    with _one_writer(run_dir):
        _remove_leftovers(run_dir)
        building = Path(tempfile.mkdtemp(prefix=BUILDING, dir=run_dir))
        try:
            for name, text in assets.items():
                (building / name).write_text(text, encoding="utf-8")
            for number, transcript_id in enumerate(ids):
                found = offsets.get(transcript_id)
                judgments = transcript_judgments(run_dir, found) if found is not None else []
                view = session_view(number, layout, transcript_id, judgments, transcript_of(transcript_id), problems)
                previous = names[number - 1] if number else None
                following = names[number + 1] if number + 1 < len(names) else None
                page = render(PageContext(view, judgments, previous, following))
                (building / names[number]).write_text(page, encoding="utf-8")
            os.chmod(building, 0o755)  # mkdtemp makes it private; the report is as readable as the run folder
            _replace(building, target)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
    return {tid: f"{PAGES_DIR}/{name}" for tid, name in zip(ids, names)}


def _replace(building: Path, target: Path) -> None:
    """Swap the new folder in for the old one, then delete the old one."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=BUILDING + OLD, dir=target.parent))
        os.replace(target, old / PAGES_DIR)
    os.replace(building, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_pages(run_dir: Path) -> None:
    """A single-file report replaces an earlier large one: its pages would be stale."""
    with _one_writer(run_dir):
        _remove_leftovers(run_dir)
        shutil.rmtree(run_dir / PAGES_DIR, ignore_errors=True)


@contextmanager
def _one_writer(run_dir: Path) -> Iterator[None]:
    """One report write at a time in a run folder (a lock on the folder itself, released when the process
    ends however it ends), so a temporary folder found by a write is a killed write's, never a live one's."""
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _remove_leftovers(run_dir: Path) -> None:
    """The temporary folders of writes killed midway: only folders named as this module names them."""
    with os.scandir(run_dir) as entries:
        for entry in entries:
            if _TEMPORARY.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
