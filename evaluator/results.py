"""A run folder read once: its manifest, the rubrics as judged, every judgment, and one record per
item (samples folded), so every analysis and view starts from the same data and none re-reads or
re-folds it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from evaluator.aggregate import aggregate_samples
from evaluator.models import Aggregate, Judgment, Rubric, RunManifest, Transcript
from evaluator.reading import TranscriptError
from evaluator.store import load_judgments, read_manifest, read_transcript_snapshot
from evaluator.transcripts import read_transcripts

Item = Judgment | Aggregate


@dataclass(frozen=True)
class RunData:
    run_dir: Path
    manifest: RunManifest
    rubrics: dict[str, Rubric]
    """Per rubric id, the definition as judged (the manifest's snapshot), whatever the file says now."""
    judgments: list[Judgment]
    """Every judgment, the latest per key, every sample."""
    items: list[Item]
    """One record per item: its judgment, or with `--samples N` the samples folded into one verdict."""

    @property
    def folded(self) -> bool:
        return self.manifest.samples > 1

    @cached_property
    def transcripts(self) -> list[Transcript] | None:
        """The transcripts as the run read them; None for run folders older than snapshots."""
        return read_transcript_snapshot(self.run_dir)


def open_run(run_dir: Path) -> RunData:
    manifest = read_manifest(run_dir)
    rubrics = {rid: Rubric.model_validate(record.definition) for rid, record in manifest.rubrics.items()}
    judgments = load_judgments(run_dir)
    items: list[Item]
    if manifest.samples > 1:
        items = list(aggregate_samples(judgments, rubrics, manifest.aggregate))
    else:
        items = [j for j in judgments if j.sample == 0]
    return RunData(run_dir, manifest, rubrics, judgments, items)


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


def _candidates(name: str, run_dir: Path) -> list[Path]:
    """Where a recorded transcript file may be now: as recorded (absolute, or relative to the working
    directory) or relative to the project holding results/<run>/."""
    path = Path(name)
    return [path] if path.is_absolute() else [path, run_dir.resolve().parent.parent / path]
