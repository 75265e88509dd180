"""Agreement between a run's verdicts and human ratings of the same items (`evaluator agree RUN LABELS`).

A judge is trustworthy only as far as it agrees with clinicians, and clinicians do not agree
perfectly either: with several raters, the judge's figures sit beside the raters' agreement with
each other on the same items, so a reader sees whether the judge is within human disagreement.
Chance-corrected statistics come with the mean difference (leniency), never correlation alone.
Per criterion a verdict says whether the judge is within human disagreement: the judge's kappa with
each rater beside the raters' kappa with each other on the same items, both with intervals that
resample whole sessions (see VERDICT_RULE). Every label that matches no judged item is listed with
its line and reason, and every judged item without a label is counted: no figure rests on silently
dropped rows. This module only pairs the ratings (the run's items, samples folded once by
evaluator.results) and returns the figures, computed by evaluator.analysis.agreement_stats;
evaluator.views.agreement shows them, and evaluator.analysis.agreement_against sets two runs side by side.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from statistics import mean
from typing import Final, Literal

from sklearn.metrics import confusion_matrix

from evaluator.analysis.agreement_stats import (
    MIN_SESSIONS,
    Comparison,
    HumanAgreement,
    ItemKey,
    KappaInterval,
    Level,
    SessionBootstrap,
    compare,
    human_agreement,
)
from evaluator.analysis.stats import DEFAULT_RESAMPLES
from evaluator.labels import Code, HumanLabel, Rating, category_rating, rate_labels
from evaluator.models import CategoricalScale, Criterion, RunManifest
from evaluator.results import Item, RunData, stream_items

ORDINAL_SCALES = ("likert", "count")
REASONS = ("transcript not in run", "no such item", "judge said not applicable", "unscored", "judge error")
STATUS_REASONS = {"not_applicable": "judge said not applicable", "unscored": "unscored", "error": "judge error"}

WITHIN: Final = "within human disagreement"
BELOW: Final = "below human agreement"
UNKNOWN: Final = "not enough items/raters to say"
MIN_ITEMS = 20  # items rated by two or more raters and scored by the judge

Verdict = Literal["within human disagreement", "below human agreement", "not enough items/raters to say"]
VerdictKey = tuple[str, str, int, str]  # (rubric id, transcript id, turn index, criterion id)


@dataclass
class Confusion:
    """Rows: human ratings; columns: the judge's; over the scale's values."""

    against: str
    values: list[Code]
    counts: list[list[int]]


@dataclass(frozen=True)
class UnmatchedLabel:
    """A label row compared with nothing, with where it is in the file and why."""

    line: int
    transcript_id: str
    turn_index: int
    criterion_id: str
    rater: str
    reason: str


@dataclass
class Unmatched:
    labels: int = 0
    matched: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    judged_unlabelled: int = 0
    rows: list[UnmatchedLabel] = field(default_factory=list)


@dataclass
class Ceiling:
    """The judge against the humans' disagreement on the same items: the judge's kappa with each rater
    (averaged) beside the raters' kappa with each other (averaged over pairs), and the verdict."""

    items: int
    sessions: int
    judge: KappaInterval
    humans: KappaInterval
    difference: KappaInterval  # judge - humans, on the same resampled sessions
    verdict: Verdict
    reason: str  # why there is not enough to say; empty with a verdict


@dataclass
class CriterionAgreement:
    rubric_id: str
    criterion: Criterion
    level: Level
    comparison: Comparison  # against the consensus, or the only rater
    per_rater: list[Comparison]  # empty with a single rater
    humans: HumanAgreement | None  # None with a single rater
    confusion: Confusion
    unmatched: Unmatched
    ceiling: Ceiling
    judged: dict[ItemKey, Rating]  # the judge's ok verdicts of this criterion
    ratings: dict[ItemKey, dict[str, Rating]]  # matched human ratings by item and rater
    domain: list[Code]

    @property
    def kappa_kind(self) -> str:
        return "quadratic-weighted" if self.level == "ordinal" else "unweighted"


@dataclass
class AgreementReport:
    run_dir: Path
    labels_path: Path
    manifest: RunManifest
    raters: list[str]
    labels: int
    criteria: list[CriterionAgreement]

    @property
    def several_raters(self) -> bool:
        return len(self.raters) > 1

    @property
    def unmatched(self) -> list[UnmatchedLabel]:
        """Every label row compared with nothing, in file order."""
        return sorted((row for ca in self.criteria for row in ca.unmatched.rows), key=lambda row: row.line)


# --- ratings -----------------------------------------------------------------------------------------


def level_of(criterion: Criterion) -> Level:
    return "ordinal" if criterion.scale.type in ORDINAL_SCALES else "nominal"


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def _domain(criterion: Criterion, observed: list[Code]) -> list[Code]:
    """The scale's values; a count without a maximum runs from 0 to the largest count seen."""
    allowed = criterion.scale.allowed()
    if allowed is not None:
        return list(allowed)
    return list(range(max((int(c) for c in observed), default=0) + 1))


def judge_rating(verdict: Item, criterion: Criterion) -> Rating:
    """The judge's verdict as a scale value; a mean over samples is rounded for kappa, kept for bias and rho."""
    scale = criterion.scale
    if isinstance(scale, CategoricalScale):
        return category_rating(str(verdict.label), scale)
    assert verdict.score is not None  # an ok verdict on a numeric scale has a score
    return Rating(_round_half_up(verdict.score), verdict.score)


# --- the verdict: the judge within human disagreement? ------------------------------------------------


def ceiling(
    judged: Mapping[ItemKey, Rating],
    ratings: Mapping[ItemKey, Mapping[str, Rating]],
    raters: list[str],
    level: Level,
    domain: list[Code],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Ceiling:
    """Is the judge within human disagreement? On the items two or more raters rated and the judge scored,
    the judge's kappa with each rater (averaged) against the raters' kappa with each other (averaged over
    pairs), with intervals from one session bootstrap, so the difference is paired (see VERDICT_RULE)."""
    shared = [item for item, by_rater in ratings.items() if len(by_rater) > 1 and item in judged]
    boot = SessionBootstrap(shared, domain, level, resamples, seed)
    here = [r for r in raters if any(r in ratings[item] for item in shared)]
    columns = {r: {item: ratings[item][r].code for item in shared if r in ratings[item]} for r in here}
    judge = {item: judged[item].code for item in shared}
    judge_draws = boot.mean_kappa([(judge, columns[r]) for r in here])
    human_draws = boot.mean_kappa([(columns[a], columns[b]) for a, b in combinations(here, 2)])
    difference = boot.interval(judge_draws - human_draws)
    if len(raters) < 2:
        reason = "one rater: no human agreement to read the judge by"
    elif len(here) < 2:
        reason = "no item rated by two raters and scored by the judge"
    elif len(shared) < MIN_ITEMS:
        reason = f"{len(shared)} item(s) rated by two raters and scored by the judge; a verdict needs {MIN_ITEMS}"
    elif len(boot.sessions) < MIN_SESSIONS:
        reason = (
            f"{len(boot.sessions)} session(s); intervals and a verdict need {MIN_SESSIONS}, as they resample sessions"
        )
    elif difference.high is None:
        reason = "kappa undefined in too many resamples (a column gives nearly every item one value)"
    else:
        reason = ""
    verdict: Verdict = UNKNOWN
    if not reason:
        verdict = BELOW if difference.high is not None and difference.high < 0 else WITHIN
    return Ceiling(
        len(shared),
        len(boot.sessions),
        boot.interval(judge_draws),
        boot.interval(human_draws),
        difference,
        verdict,
        reason,
    )


def consensus(ratings: list[Rating], level: Level) -> Rating | None:
    """The raters' joint rating of one item (see CONSENSUS_RULE); None where a nominal vote ties."""
    if level == "ordinal":
        average = mean(float(r.number) for r in ratings)  # type: ignore[arg-type]
        return Rating(_round_half_up(average), average)
    (top, votes), *rest = Counter(r.code for r in ratings).most_common()
    if rest and rest[0][1] == votes:
        return None
    return next(r for r in ratings if r.code == top)


def _confusion(against: str, pairs: list[tuple[Rating, Rating]], domain: list[Code]) -> Confusion:
    if not pairs:
        return Confusion(against, domain, [[0] * len(domain) for _ in domain])
    matrix = confusion_matrix([h.code for _, h in pairs], [j.code for j, _ in pairs], labels=domain)
    return Confusion(against, domain, matrix.tolist())


# --- matching a run and its labels --------------------------------------------------------------


def _unmatched_reason(key: VerdictKey, verdict: Item | None, transcripts: set[str]) -> str | None:
    if verdict is None:
        return "transcript not in run" if key[1] not in transcripts else "no such item"
    return STATUS_REASONS.get(verdict.status)


def _criterion_agreement(
    rubric_id: str,
    criterion: Criterion,
    labelled: list[tuple[HumanLabel, Rating]],
    verdicts: Mapping[VerdictKey, Item],
    judged: dict[ItemKey, Rating],
    transcripts: set[str],
    raters: list[str],
) -> CriterionAgreement:
    """`verdicts`: the run's items the labels name; `judged`: the judge's ok verdicts of this criterion."""
    unmatched = Unmatched(labels=len(labelled))
    humans: dict[ItemKey, dict[str, Rating]] = defaultdict(dict)
    for label, rating in labelled:
        key = (rubric_id, label.transcript_id, label.turn_index, criterion.id)
        reason = _unmatched_reason(key, verdicts.get(key), transcripts)
        if reason:
            unmatched.reasons[reason] += 1
            unmatched.rows.append(
                UnmatchedLabel(label.line, label.transcript_id, label.turn_index, criterion.id, label.rater, reason)
            )
            continue
        unmatched.matched += 1
        humans[(label.transcript_id, label.turn_index)][label.rater] = rating
    unmatched.judged_unlabelled = len(judged.keys() - humans.keys())
    items = sorted(humans)
    level = level_of(criterion)
    domain = _domain(criterion, [judged[i].code for i in items] + [r.code for i in items for r in humans[i].values()])
    here = [r for r in raters if any(label.rater == r for label, _ in labelled)]

    def against(rater: str) -> list[tuple[Rating, Rating]]:
        return [(judged[i], humans[i][rater]) for i in items if rater in humans[i]]

    data = (ceiling(judged, humans, here, level, domain), judged, dict(humans), domain)
    if len(here) == 1:
        pairs = against(here[0])
        return CriterionAgreement(
            rubric_id,
            criterion,
            level,
            compare(here[0], pairs, level, domain),
            [],
            None,
            _confusion(here[0], pairs, domain),
            unmatched,
            *data,
        )
    joint = {i: consensus(list(humans[i].values()), level) for i in items}
    pairs = [(judged[i], c) for i, c in joint.items() if c is not None]
    main = compare("consensus", pairs, level, domain)
    ties = sum(c is None for c in joint.values())
    if ties:
        main.notes.append(f"{ties} item(s) where the raters tie are left out of the consensus")
    return CriterionAgreement(
        rubric_id,
        criterion,
        level,
        main,
        [compare(r, against(r), level, domain) for r in here],
        human_agreement(humans, here, level, domain),
        _confusion("consensus", pairs, domain),
        unmatched,
        *data,
    )


def agreement(run: RunData, labels: Sequence[HumanLabel], labels_path: Path) -> AgreementReport:
    """Match every label to the run's verdict of the same transcript, turn and criterion, and compare.

    Verdicts are the run's items (samples folded as the summary folds them), and labels are read on the
    rubrics as judged (the manifest's snapshot), so both sides use the scales the run judged with.
    `labels_path` names the file in errors and in the report.
    """
    grouped = rate_labels(labels, run.rubrics, labels_path)
    rated = {(rid, c.id): c for rid, rubric in run.rubrics.items() for c in rubric.criteria if (rid, c.id) in grouped}
    named = {
        (rid, label.transcript_id, label.turn_index, cid) for (rid, cid), pairs in grouped.items() for label, _ in pairs
    }
    verdicts: dict[VerdictKey, Item] = {}
    judged: dict[tuple[str, str], dict[ItemKey, Rating]] = {key: {} for key in rated}
    for v in stream_items(run):  # one item at a time: a large run keeps ratings, not its judgments
        key = (v.rubric_id, v.transcript_id, v.turn_index, v.criterion_id)
        if key in named:
            verdicts[key] = v
        criterion = rated.get((v.rubric_id, v.criterion_id))
        if criterion is not None and v.status == "ok":
            judged[v.rubric_id, v.criterion_id][v.transcript_id, v.turn_index] = judge_rating(v, criterion)
    raters = list(dict.fromkeys(label.rater for label in labels))
    transcripts = set(run.manifest.transcripts)
    criteria = [
        _criterion_agreement(rid, c, grouped[rid, c.id], verdicts, judged[rid, c.id], transcripts, raters)
        for (rid, _), c in rated.items()
    ]
    return AgreementReport(run.run_dir, labels_path, run.manifest, raters, len(labels), criteria)
