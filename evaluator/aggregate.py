"""Repeated judgments of one item (`--samples N`) folded into one verdict with its spread.

With several samples a reader needs both the verdict and how much the judge wavered; a mean over
samples that disagree is not the same finding as a mean over samples that agree.
"""

from __future__ import annotations

from collections import Counter
from statistics import mean, median, pstdev
from typing import Any, Iterable, Iterator

from evaluator.models import STATUSES, Aggregate, AggregateMethod, CategoricalScale, Criterion, Judgment, Rubric

AGGREGATES = "aggregates.jsonl"


def method_for(criterion: Criterion, requested: AggregateMethod) -> str:
    """`auto`: majority for yes/no and labels (a mean of labels means nothing), mean for scores."""
    if isinstance(criterion.scale, CategoricalScale):
        return "majority"
    if requested != "auto":
        return requested
    return "majority" if criterion.scale.type == "binary" else "mean"


def iter_aggregates(
    judgments: Iterable[Judgment], rubrics: dict[str, Rubric], requested: AggregateMethod, samples: int | None = None
) -> Iterator[Aggregate]:
    """One Aggregate per item, in the order its first sample comes. With `samples` (one judgment per
    key given), an item is folded as soon as its samples are all in and everything before it is done,
    so only items still open are held: a run's samples of one item are written close together."""
    groups: dict[str, list[Judgment]] = {}
    for judgment in judgments:
        item = judgment.key.rsplit("/", 1)[0]
        groups.setdefault(item, []).append(judgment)
        if samples is not None and len(groups[item]) >= samples:
            while groups:
                first = next(iter(groups))
                if len(groups[first]) < samples:
                    break
                yield _fold_group(first, groups.pop(first), rubrics, requested)
    for item, group in groups.items():
        yield _fold_group(item, group, rubrics, requested)


def _fold_group(key: str, group: list[Judgment], rubrics: dict[str, Rubric], requested: AggregateMethod) -> Aggregate:
    return _fold(key, group, rubrics[group[0].rubric_id].criterion(group[0].criterion_id), requested)


def _fold(key: str, group: list[Judgment], criterion: Criterion, requested: AggregateMethod) -> Aggregate:
    first = group[0]
    ok = [j for j in group if j.status == "ok"]
    method = method_for(criterion, requested)
    common: dict[str, Any] = {
        "key": key,
        "rubric_id": first.rubric_id,
        "transcript_id": first.transcript_id,
        "turn_index": first.turn_index,
        "criterion_id": first.criterion_id,
        "samples": len(group),
        "scored": len(ok),
        "method": method,
    }
    if not ok:
        statuses = Counter(j.status for j in group)
        status = max(STATUSES, key=lambda s: (statuses[s], -STATUSES.index(s)))
        reasons = sorted({j.unscored_reason or j.error or j.rationale for j in group if j.status == status} - {""})
        return Aggregate(**common, status=status, unscored_reason="; ".join(reasons) if status == "unscored" else None)
    weighted = [j.weighted_score for j in ok if j.weighted_score is not None]
    extra: dict[str, Any] = {"weighted_score": mean(weighted) if weighted else None}
    if method == "majority":
        votes = Counter(j.verdict for j in ok)
        winner, count = max(votes.items(), key=lambda vote: (vote[1], str(vote[0])))
        winner_judgment = next(j for j in ok if j.verdict == winner)
        return Aggregate(
            **common,
            status="ok",
            score=winner_judgment.score,
            label=winner_judgment.label,
            spread=1 - count / len(ok),
            **extra,
        )
    scores = [j.score for j in ok if j.score is not None]
    value = mean(scores) if method == "mean" else median(scores)
    return Aggregate(**common, status="ok", score=value, spread=pstdev(scores), **extra)
