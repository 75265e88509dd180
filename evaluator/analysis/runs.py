"""Every run in a results folder, read from its manifest alone, and which runs follow which.

The run index and `evaluator runs` list what a prompt engineer has tried; the pairs of consecutive
runs of one rubric are the comparisons worth opening ("what did my last edit move?"). Only manifests
are read, so listing a folder of many runs stays cheap; a folder whose manifest is missing or broken
is listed as unreadable with the reason, never skipped silently and never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from evaluator.models import STATUSES, RunManifest
from evaluator.store import MANIFEST, read_manifest


@dataclass(frozen=True)
class RunEntry:
    """One folder of the results folder: its manifest, or why it could not be read."""

    run_dir: Path
    manifest: RunManifest | None = None
    problem: str | None = None

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def readable(self) -> bool:
        return self.manifest is not None

    @property
    def created_at(self) -> str:
        return self.manifest.created_at if self.manifest else ""

    @property
    def rubric_ids(self) -> list[str]:
        return list(self.manifest.rubrics) if self.manifest else []

    def counts(self) -> dict[str, int]:
        """Judgments per status, every status present (0 when none), in the usual order."""
        counts = self.manifest.counts if self.manifest else {}
        return {status: counts.get(status, 0) for status in STATUSES}


@dataclass(frozen=True)
class RunPair:
    """Two consecutive runs sharing at least one rubric: `later` is the run whose change is checked."""

    earlier: RunEntry
    later: RunEntry
    rubric_ids: tuple[str, ...]


@dataclass
class RunListing:
    results_dir: Path
    runs: list[RunEntry] = field(default_factory=list)
    """Oldest first; unreadable folders last (they have no date)."""
    pairs: list[RunPair] = field(default_factory=list)

    def newest_first(self) -> list[RunEntry]:
        readable = [r for r in self.runs if r.readable]
        return [*reversed(readable), *(r for r in self.runs if not r.readable)]

    def pairs_of(self, run: RunEntry) -> list[RunPair]:
        """The comparisons in which this run is the later one."""
        return [p for p in self.pairs if p.later.run_dir == run.run_dir]


def _is_candidate(path: Path) -> bool:
    """A run folder, or something in the results folder that looks like one but is broken. Hidden
    folders (temporary files, caches) and plain files (README, index.html) are not runs."""
    return path.is_dir() and not path.name.startswith((".", "_"))


def read_entry(run_dir: Path) -> RunEntry:
    try:
        return RunEntry(run_dir, read_manifest(run_dir))
    except Exception as exc:  # noqa: BLE001 - any broken folder is listed, never allowed to stop the index
        if not (run_dir / MANIFEST).exists():
            return RunEntry(run_dir, problem=f"no {MANIFEST}")
        return RunEntry(run_dir, problem=f"{type(exc).__name__}: {exc}")


def list_runs(results_dir: Path) -> RunListing:
    """All runs under results_dir, oldest first, and the consecutive pairs per rubric."""
    if not results_dir.is_dir():
        return RunListing(results_dir)
    entries = [read_entry(p) for p in sorted(results_dir.iterdir()) if _is_candidate(p)]
    readable = sorted((e for e in entries if e.readable), key=lambda e: (e.created_at, e.name))
    broken = [e for e in entries if not e.readable]
    return RunListing(results_dir, [*readable, *broken], consecutive_pairs(readable))


def consecutive_pairs(runs: list[RunEntry]) -> list[RunPair]:
    """Per rubric id, each run paired with the previous run that judged the same rubric; a pair that
    shares several rubrics is listed once, naming them all. Runs must be given oldest first."""
    last: dict[str, RunEntry] = {}
    shared: dict[tuple[Path, Path], list[str]] = {}
    order: list[tuple[RunEntry, RunEntry]] = []
    for run in runs:
        for rubric_id in run.rubric_ids:
            previous = last.get(rubric_id)
            last[rubric_id] = run
            if previous is None:
                continue
            key = (previous.run_dir, run.run_dir)
            if key not in shared:
                shared[key] = []
                order.append((previous, run))
            shared[key].append(rubric_id)
    return [RunPair(a, b, tuple(shared[(a.run_dir, b.run_dir)])) for a, b in order]
