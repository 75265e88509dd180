"""A run folder: its manifest and the rubrics as judged, then read in the pieces each use needs:
stream_items one item at a time (samples folded as they come in) for the summary, groups, contrasts,
agreement and comparisons, stream_judgments one judgment at a time, judgment_offsets and
transcript_judgments one transcript at a time for report pages, and (on first use, once) every
judgment for the single-file report of a small run."""

from __future__ import annotations

import json
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from evaluator.aggregate import iter_aggregates
from evaluator.models import Aggregate, Judgment, Rubric, RunManifest, Transcript
from evaluator.reading import TranscriptError
from evaluator.store import (
    JUDGMENTS,
    TRANSCRIPTS,
    ResultsError,
    iter_judgments,
    judgment_lines,
    load_judgments,
    read_manifest,
    read_transcript_snapshot,
    superseded_lines,
)
from evaluator.transcripts import read_transcripts

Item = Judgment | Aggregate


@dataclass(frozen=True)
class RunData:
    run_dir: Path
    manifest: RunManifest
    rubrics: dict[str, Rubric]
    """Per rubric id, the definition as judged (the manifest's snapshot), whatever the file says now."""

    @property
    def folded(self) -> bool:
        return self.manifest.samples > 1

    @cached_property
    def judgments(self) -> list[Judgment]:
        """Every judgment, the latest per key, every sample; read on first use (a summary streams them
        instead, stream_judgments, so summarising a large run does not hold them all)."""
        return load_judgments(self.run_dir)

    @cached_property
    def transcripts(self) -> list[Transcript] | None:
        """The transcripts as the run read them; None for run folders older than snapshots."""
        return read_transcript_snapshot(self.run_dir)


def open_run(run_dir: Path) -> RunData:
    manifest = read_manifest(run_dir)
    rubrics = {rid: Rubric.model_validate(record.definition) for rid, record in manifest.rubrics.items()}
    return RunData(run_dir, manifest, rubrics)


def stream_judgments(run_dir: Path) -> Iterator[Judgment]:
    """The judgments load_judgments returns, in its order (a re-judged key where it was last written),
    one at a time, holding a few bytes a line instead of every judgment (store.superseded_lines)."""
    return iter_judgments(run_dir, superseded_lines(run_dir / JUDGMENTS))


def stream_items(run: RunData, seen: Callable[[Judgment], None] | None = None) -> Iterator[Item]:
    """One record per item, in the order of its first judgment: the item's judgment, or with `--samples N`
    its samples folded as soon as they are all in (only items still open are held). `seen`
    is shown every judgment on the way, samples unfolded, for a tally that counts those too."""
    judgments = stream_judgments(run.run_dir)
    if seen is not None:
        judgments = _shown(judgments, seen)
    if run.folded:
        yield from iter_aggregates(judgments, run.rubrics, run.manifest.aggregate, run.manifest.samples)
    else:
        yield from (j for j in judgments if j.sample == 0)


def _shown(judgments: Iterator[Judgment], seen: Callable[[Judgment], None]) -> Iterator[Judgment]:
    for judgment in judgments:
        seen(judgment)
        yield judgment


def judged_transcripts(run: RunData) -> tuple[dict[str, Transcript], list[str]]:
    """The conversations the run judged, by id, and what could not be read. The run's own snapshot is
    what was judged; only run folders older than snapshots reread the files, where a file moved or
    edited since the run costs the conversation view, never the judgments."""
    if run.transcripts is not None:
        return {t.id: t for t in run.transcripts}, []
    skipped = {s.path for s in run.manifest.skipped_files}
    found: dict[str, Transcript] = {}
    problems: list[str] = []
    for name in run.manifest.transcript_files:
        if name in skipped:
            continue
        path = next((p for p in _candidates(name, run.run_dir) if p.is_file()), None)
        if path is None:
            problems.append(f"{name}: file not found")
            continue
        try:
            for transcript in read_transcripts(path):
                found.setdefault(transcript.id, transcript)
        except (TranscriptError, OSError) as exc:
            problems.append(str(exc))
    return found, problems


def transcript_reader(run: RunData) -> tuple[Callable[[str], Transcript | None], list[str]]:
    """judged_transcripts one transcript at a time, for views that show one at a time: from the run's
    snapshot, each transcript is read when asked for (a scan first notes where each id's line starts);
    an old run folder without a snapshot rereads its files as judged_transcripts does."""
    path = run.run_dir / TRANSCRIPTS
    if not path.is_file():
        found, problems = judged_transcripts(run)
        return found.get, problems
    offsets: dict[str, int] = {}
    with path.open("rb") as handle:
        position = 0
        for raw in handle:
            if raw.strip():
                offsets[str(json.loads(raw)["id"])] = position
            position += len(raw)

    def read(transcript_id: str) -> Transcript | None:
        if transcript_id not in offsets:
            return None
        with path.open("rb") as handle:
            handle.seek(offsets[transcript_id])
            return Transcript.model_validate_json(handle.readline())

    return read, []


def _candidates(name: str, run_dir: Path) -> list[Path]:
    """Where a recorded transcript file may be now: as recorded (absolute, or relative to the working
    directory) or relative to the project holding results/<run>/."""
    path = Path(name)
    return [path] if path.is_absolute() else [path, run_dir.resolve().parent.parent / path]


def judgment_offsets(run_dir: Path) -> dict[str, array[int]]:
    """Per transcript id, where its judgment lines start in judgments.jsonl, in the order written: one
    pass that keeps a few bytes per judgment, so a view can read one transcript's judgments at a time
    (transcript_judgments) instead of holding every judgment of a large run."""
    offsets: dict[str, array[int]] = {}
    path = run_dir / JUDGMENTS
    if path.is_file():
        for number, offset, raw in judgment_lines(path):
            offsets.setdefault(_transcript_id(raw, path, number), array("q")).append(offset)
    return offsets


def _transcript_id(raw: bytes, path: Path, number: int) -> str:
    try:
        return str(json.loads(raw)["transcript_id"])
    except (ValueError, KeyError, TypeError):
        raise ResultsError(f"{path}, line {number}: not a valid judgment (no transcript_id)") from None


def transcript_judgments(run_dir: Path, offsets: array[int]) -> list[Judgment]:
    """One transcript's judgments from the lines judgment_offsets found, the last written winning where
    a key was re-judged, as load_judgments decides for the whole run."""
    latest: dict[str, Judgment] = {}
    with (run_dir / JUDGMENTS).open("rb") as handle:
        for position in offsets:
            handle.seek(position)
            judgment = Judgment.model_validate_json(handle.readline())
            latest.pop(judgment.key, None)
            latest[judgment.key] = judgment
    return list(latest.values())
