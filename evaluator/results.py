"""A run folder read once: its manifest, the rubrics as judged, every judgment, and one record per
item (samples folded), so every analysis and view starts from the same data and none re-reads or
re-folds it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from evaluator.aggregate import aggregate_samples
from evaluator.models import Aggregate, Judgment, Rubric, RunManifest, Transcript
from evaluator.store import load_judgments, read_manifest, read_transcript_snapshot

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
    rubrics = {rid: Rubric.model_validate(info["definition"]) for rid, info in manifest.rubrics.items()}
    judgments = load_judgments(run_dir)
    items: list[Item]
    if manifest.samples > 1:
        items = list(aggregate_samples(judgments, rubrics, manifest.aggregate))
    else:
        items = [j for j in judgments if j.sample == 0]
    return RunData(run_dir, manifest, rubrics, judgments, items)
