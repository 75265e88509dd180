"""Groups of sessions by their metadata (`--by model`, `--by model,condition`): per group and criterion,
how many sessions and turns were scored, the mean and the share meeting `pass_at`, each with a 95%
interval from resampling whole sessions, since the turns of one session are not independent.

Means are over turns by default (a long session weighs more, as in the run's summary, so the figures
agree with report.html's cards); `weight="sessions"` averages each session's mean instead, so every
session counts once. Metadata is read by field name from the run's manifest (flat: a nested record's
fields are `a.b`); a field a transcript lacks is an error naming the fields that exist. Pure computation: the views render a GroupSummary.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from evaluator.analysis.stats import Estimate, cluster_bootstrap_mean
from evaluator.errors import EvaluatorError
from evaluator.metadata import value_text
from evaluator.models import Criterion
from evaluator.results import RunData, open_run, stream_items

Weight = Literal["turns", "sessions"]
WEIGHTS: tuple[Weight, ...] = ("turns", "sessions")
CriterionKey = tuple[str, str]  # (rubric id, criterion id)
ScoresBySession = dict[str, list[float]]
FEW_SESSIONS = 10
"""Below this many sessions in a group, percentile-bootstrap intervals are too narrow (see FEW_SESSIONS_NOTE)."""
FEW_SESSIONS_NOTE = (
    "percentile-bootstrap intervals undercover with few sessions (simulated, a nominal 95% interval covered "
    "a group's mean 52% of the time at 2 sessions, 79% at 4, 88% at 8, and a difference of two such arms "
    "66%, 86%, 90%; benchmarks/coverage.py): read them as optimistic"
)
GROUP_SEPARATOR = " · "


class GroupingError(EvaluatorError):
    """A grouping or pairing field that the run's transcripts do not carry, or a group that is not there."""


@dataclass(frozen=True)
class GroupCell:
    """One criterion in one group: sessions and turns scored, the mean and the share meeting pass_at."""

    group: str
    sessions: int
    turns: int
    mean: Estimate | None
    share: Estimate | None
    """Share of scored turns meeting the criterion's pass_at, with its interval; None without pass_at."""


@dataclass(frozen=True)
class GroupCriterion:
    rubric_id: str
    criterion: Criterion
    cells: dict[str, GroupCell]
    """Per group label, in the summary's group order."""


@dataclass
class GroupSummary:
    run: RunData
    fields: tuple[str, ...]
    groups: list[str]
    """Group labels in sorted order (numbers numerically): the values of the fields joined by ' · '."""
    members: dict[str, str]
    """Per transcript id, its group label."""
    values: dict[str, tuple[str, ...]]
    """Per transcript id, its value of each field, for tables with one column per field."""
    criteria: list[GroupCriterion]
    weight: Weight

    def size(self, group: str) -> int:
        """Sessions of the run in the group, scored on anything or not."""
        return sum(1 for label in self.members.values() if label == group)

    @property
    def small(self) -> list[str]:
        """Groups with fewer than FEW_SESSIONS sessions, whose intervals are optimistic."""
        return [g for g in self.groups if self.size(g) < FEW_SESSIONS]

    @property
    def method(self) -> str:
        return method_note(self.weight)


def method_note(weight: Weight) -> str:
    """What every group and contrast figure is, said once beside the tables that show it."""
    averaged = (
        "Means are over turns, so a long session weighs more than a short one"
        if weight == "turns"
        else "Means are over sessions (each session's own mean, every session weighing the same)"
    )
    return (
        f"{averaged}. 95% intervals are percentile bootstraps that resample whole sessions, since the turns "
        "of one session are not independent; n sessions counts sessions with at least one scored turn."
    )


def split_fields(by: str | Sequence[str]) -> tuple[str, ...]:
    """`model,condition` or ["model", "condition"] as field names, blanks dropped."""
    items = by.split(",") if isinstance(by, str) else [f for part in by for f in part.split(",")]
    fields = tuple(dict.fromkeys(f.strip() for f in items if f.strip()))
    if not fields:
        raise GroupingError("no metadata field to group by: give one, e.g. --by model or --by model,condition")
    return fields


def metadata_values(run: RunData, fields: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Per judged transcript, its value of each field; a field some transcript lacks is an error that
    names the transcripts without it and the fields they all have."""
    transcripts = list(run.manifest.transcripts)
    metadata = {t: run.manifest.transcript_metadata.get(t, {}) for t in transcripts}
    for field in fields:
        missing = [t for t in transcripts if metadata[t].get(field) is None]
        if missing:
            raise GroupingError(_missing_message(run, field, missing, metadata))
    return {t: tuple(value_text(metadata[t][f]) for f in fields) for t in transcripts}


def _missing_message(run: RunData, field: str, missing: list[str], metadata: Mapping[str, Mapping[str, Any]]) -> str:
    per_transcript = [set(m) for m in metadata.values()]
    everywhere = sorted(set.intersection(*per_transcript)) if per_transcript else []
    somewhere = sorted(set.union(*per_transcript)) if per_transcript else []
    where = f"run {run.manifest.run_id} ({run.run_dir})"
    fix = "add it to the transcripts' records (or a sidecar metadata CSV) and re-run, or use one of those"
    if len(missing) == len(metadata):
        present = ", ".join(somewhere) or "none"
        return f"no transcript of {where} has the metadata field {field!r}; fields present: {present}; {fix}"
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    common = ", ".join(everywhere) or "none"
    return (
        f"{len(missing)} of {len(metadata)} transcripts of {where} lack the metadata field {field!r} "
        f"({shown}); fields every transcript has: {common}; {fix}"
    )


def sort_key(value: str) -> tuple[bool, float, str]:
    """Numbers in numeric order first, then text alphabetically: `2` before `10`, `10` before `b`."""
    try:
        return (False, float(value), value)
    except ValueError:
        return (True, 0.0, value)


def label_of(values: Sequence[str]) -> str:
    return GROUP_SEPARATOR.join(values)


def ordered_labels(values: Iterable[tuple[str, ...]]) -> list[str]:
    ordered = sorted(set(values), key=lambda vs: [sort_key(v) for v in vs])
    return [label_of(vs) for vs in ordered]


def scores_by_session(run: RunData) -> dict[CriterionKey, ScoresBySession]:
    """Per criterion, per transcript, the scores of its ok items, read one item at a time: the figures
    are kept, not the judgments, so grouping a large run holds a few numbers per judgment."""
    found: dict[CriterionKey, ScoresBySession] = defaultdict(lambda: defaultdict(list))
    for item in stream_items(run):
        if item.status == "ok" and item.score is not None:
            found[item.rubric_id, item.criterion_id][item.transcript_id].append(float(item.score))
    return {key: dict(sessions) for key, sessions in found.items()}


def weighted(by_session: Mapping[str, Sequence[float]], weight: Weight) -> dict[str, list[float]]:
    """Sessions as the bootstrap sees them: every turn (turn-weighted), or one mean per session."""
    sessions = {s: list(v) for s, v in by_session.items() if len(v)}
    if weight == "turns":
        return sessions
    return {s: [sum(v) / len(v)] for s, v in sessions.items()}


def _cell(group: str, criterion: Criterion, by_session: ScoresBySession, weight: Weight, seed: int) -> GroupCell:
    scored = {s: v for s, v in by_session.items() if v}
    mean = cluster_bootstrap_mean(weighted(scored, weight), seed=seed)
    share = None
    if criterion.pass_at is not None:
        met = {s: [1.0 if criterion.meets(x) else 0.0 for x in v] for s, v in scored.items()}
        share = cluster_bootstrap_mean(weighted(met, weight), seed=seed)
    return GroupCell(group, len(scored), sum(len(v) for v in scored.values()), mean, share)


def summarize_groups(
    run: RunData | Path, by: str | Sequence[str], weight: Weight = "turns", seed: int = 0
) -> GroupSummary:
    """Per group of the fields' values and per criterion of every rubric: sessions, turns, mean and share."""
    run = run if isinstance(run, RunData) else open_run(run)
    fields = split_fields(by)
    values = metadata_values(run, fields)
    members = {t: label_of(v) for t, v in values.items()}
    groups = ordered_labels(values.values())
    scores = scores_by_session(run)
    criteria = []
    for rubric in run.rubrics.values():
        for criterion in rubric.criteria:
            by_session = scores.get((rubric.id, criterion.id), {})
            cells = {
                g: _cell(g, criterion, {t: v for t, v in by_session.items() if members.get(t) == g}, weight, seed)
                for g in groups
            }
            criteria.append(GroupCriterion(rubric.id, criterion, cells))
    return GroupSummary(run, fields, groups, members, values, criteria, weight)
