"""Agreement between a run's verdicts and human ratings of the same items (`evaluator agree RUN LABELS`).

A judge is trustworthy only as far as it agrees with clinicians, and clinicians do not agree
perfectly either: with several raters, the judge's figures sit beside the raters' agreement with
each other on the same items, so a reader sees whether the judge is within human disagreement.
Chance-corrected statistics come with the mean difference (leniency), never correlation alone.
Every label that matches no judged item, and every judged item without a label, is counted with
its reason: no figure rests on silently dropped rows. The statistics are scikit-learn's, scipy's
and krippendorff's; this module only pairs the ratings (the run's items, samples folded once by
evaluator.results) and returns the figures; evaluator.views.agreement shows them.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from statistics import mean
from typing import Literal

import krippendorff
import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from evaluator.labels import Code, HumanLabel, Rating, category_rating, rate_labels
from evaluator.models import CategoricalScale, Criterion, RunManifest
from evaluator.results import Item, RunData

ORDINAL_SCALES = ("likert", "count")
REASONS = ("transcript not in run", "no such item", "judge said not applicable", "unscored", "judge error")
STATUS_REASONS = {"not_applicable": "judge said not applicable", "unscored": "unscored", "error": "judge error"}

Level = Literal["ordinal", "nominal"]
ItemKey = tuple[str, int]  # (transcript id, turn index) within one criterion
VerdictKey = tuple[str, str, int, str]  # (rubric id, transcript id, turn index, criterion id)


@dataclass
class Comparison:
    """The judge against one column of human ratings (one rater, or the raters' consensus)."""

    against: str
    n: int
    exact: float | None = None
    within_one: float | None = None
    kappa: float | None = None
    alpha: float | None = None
    rho: float | None = None
    bias: float | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class HumanAgreement:
    """The raters against each other on the items the judge scored: the ceiling to read the judge by."""

    n: int
    pairs: dict[tuple[str, str], float | None]
    kappa: float | None  # mean of the defined pairwise kappas
    alpha: float | None
    notes: list[str] = field(default_factory=list)


@dataclass
class Confusion:
    """Rows: human ratings; columns: the judge's; over the scale's values."""

    against: str
    values: list[Code]
    counts: list[list[int]]


@dataclass
class Unmatched:
    labels: int = 0
    matched: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    judged_unlabelled: int = 0


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


# --- ratings -----------------------------------------------------------------------------------------


def level_of(criterion: Criterion) -> Level:
    return "ordinal" if criterion.scale.type in ORDINAL_SCALES else "nominal"


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def judge_rating(verdict: Item, criterion: Criterion) -> Rating:
    """The judge's verdict as a scale value; a mean over samples is rounded for kappa, kept for bias and rho."""
    scale = criterion.scale
    if isinstance(scale, CategoricalScale):
        return category_rating(str(verdict.label), scale)
    assert verdict.score is not None  # an ok verdict on a numeric scale has a score
    return Rating(_round_half_up(verdict.score), verdict.score)


# --- statistics ------------------------------------------------------------------------------------


def _domain(criterion: Criterion, observed: list[Code]) -> list[Code]:
    """The scale's values; a count without a maximum runs from 0 to the largest count seen."""
    allowed = criterion.scale.allowed()
    if allowed is not None:
        return list(allowed)
    return list(range(max((int(c) for c in observed), default=0) + 1))


def _defined(value: float, notes: list[str], why: str) -> float | None:
    """Libraries answer NaN where a statistic is undefined; the report says None and why instead."""
    if math.isfinite(value):
        return float(value)
    notes.append(why)
    return None


def _kappa(a: list[Code], b: list[Code], level: Level, domain: list[Code], notes: list[str]) -> float | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = cohen_kappa_score(a, b, labels=domain, weights="quadratic" if level == "ordinal" else None)
    return _defined(float(value), notes, "kappa undefined: both columns give every item one and the same value")


def _alpha(rows: Sequence[Sequence[Code | None]], level: Level, domain: list[Code], notes: list[str]) -> float | None:
    """Krippendorff's alpha over coders x items, missing ratings as NaN; values coded by scale position."""
    position = {value: index for index, value in enumerate(domain)}
    data = np.array([[np.nan if c is None else position[c] for c in row] for row in rows], dtype=float)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = krippendorff.alpha(
                reliability_data=data, value_domain=list(range(len(domain))), level_of_measurement=level
            )
    except ValueError as exc:
        notes.append(f"alpha undefined: {exc}")
        return None
    return _defined(float(value), notes, "alpha undefined: a single value occurs, so no disagreement is expected")


def _rho(a: list[float | None], b: list[float | None], notes: list[str]) -> float | None:
    if any(v is None for v in (*a, *b)):
        notes.append("rho and bias undefined: the categories have no numeric values")
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = spearmanr(a, b).statistic
    return _defined(float(value), notes, "rho undefined: one column is constant")


def compare(against: str, pairs: list[tuple[Rating, Rating]], level: Level, domain: list[Code]) -> Comparison:
    """Judge (first) against human (second) on paired items."""
    result = Comparison(against=against, n=len(pairs))
    if not pairs:
        result.notes.append("no item has both a judge verdict and this rating")
        return result
    judge, human = [j for j, _ in pairs], [h for _, h in pairs]
    result.exact = mean(float(j.code == h.code) for j, h in pairs)
    if level == "ordinal":
        result.within_one = mean(float(abs(int(j.code) - int(h.code)) <= 1) for j, h in pairs)
    if all(r.number is not None for r in (*judge, *human)):
        result.bias = mean(float(j.number) - float(h.number) for j, h in pairs)  # type: ignore[arg-type]
    if len(pairs) < 2:
        result.notes.append("n < 2: kappa, alpha and rho need at least two items")
        return result
    codes_j, codes_h = [r.code for r in judge], [r.code for r in human]
    result.kappa = _kappa(codes_h, codes_j, level, domain, result.notes)
    result.alpha = _alpha([codes_j, codes_h], level, domain, result.notes)
    result.rho = _rho([r.number for r in judge], [r.number for r in human], result.notes)
    return result


def human_agreement(
    ratings: Mapping[ItemKey, Mapping[str, Rating]], raters: list[str], level: Level, domain: list[Code]
) -> HumanAgreement:
    """Pairwise kappa (averaged) and Krippendorff's alpha across raters, on items at least two rated."""
    shared = [item for item in sorted(ratings) if len(ratings[item]) > 1]
    notes: list[str] = []
    pairs: dict[tuple[str, str], float | None] = {}
    for a, b in combinations(raters, 2):
        both = [ratings[item] for item in shared if a in ratings[item] and b in ratings[item]]
        if len(both) < 2:
            notes.append(f"{a}–{b}: {len(both)} item(s) rated by both; kappa needs at least two")
            pairs[(a, b)] = None
            continue
        pair_notes: list[str] = []
        pairs[(a, b)] = _kappa([r[a].code for r in both], [r[b].code for r in both], level, domain, pair_notes)
        notes += [f"{a}–{b}: {note}" for note in pair_notes]
    defined = [k for k in pairs.values() if k is not None]
    alpha = None
    if len(shared) >= 2:
        rows = [[ratings[item][r].code if r in ratings[item] else None for item in shared] for r in raters]
        alpha = _alpha(rows, level, domain, notes)
    return HumanAgreement(
        n=len(shared), pairs=pairs, kappa=mean(defined) if defined else None, alpha=alpha, notes=notes
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
    transcripts: set[str],
    raters: list[str],
) -> CriterionAgreement:
    unmatched = Unmatched(labels=len(labelled))
    humans: dict[ItemKey, dict[str, Rating]] = defaultdict(dict)
    for label, rating in labelled:
        key = (rubric_id, label.transcript_id, label.turn_index, criterion.id)
        reason = _unmatched_reason(key, verdicts.get(key), transcripts)
        if reason:
            unmatched.reasons[reason] += 1
            continue
        unmatched.matched += 1
        humans[(label.transcript_id, label.turn_index)][label.rater] = rating
    judged = {
        (tid, turn): judge_rating(v, criterion)
        for (rid, tid, turn, cid), v in verdicts.items()
        if rid == rubric_id and cid == criterion.id and v.status == "ok"
    }
    unmatched.judged_unlabelled = len(judged.keys() - humans.keys())
    items = sorted(humans)
    level = level_of(criterion)
    domain = _domain(criterion, [judged[i].code for i in items] + [r.code for i in items for r in humans[i].values()])
    here = [r for r in raters if any(label.rater == r for label, _ in labelled)]

    def against(rater: str) -> list[tuple[Rating, Rating]]:
        return [(judged[i], humans[i][rater]) for i in items if rater in humans[i]]

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
    )


def agreement(run: RunData, labels: Sequence[HumanLabel], labels_path: Path) -> AgreementReport:
    """Match every label to the run's verdict of the same transcript, turn and criterion, and compare.

    Verdicts are the run's items (samples folded as the summary folds them), and labels are read on the
    rubrics as judged (the manifest's snapshot), so both sides use the scales the run judged with.
    `labels_path` names the file in errors and in the report.
    """
    grouped = rate_labels(labels, run.rubrics, labels_path)
    verdicts = {(v.rubric_id, v.transcript_id, v.turn_index, v.criterion_id): v for v in run.items}
    raters = list(dict.fromkeys(label.rater for label in labels))
    transcripts = set(run.manifest.transcripts)
    criteria = [
        _criterion_agreement(rid, criterion, grouped[(rid, criterion.id)], verdicts, transcripts, raters)
        for rid, rubric in run.rubrics.items()
        for criterion in rubric.criteria
        if (rid, criterion.id) in grouped
    ]
    return AgreementReport(run.run_dir, labels_path, run.manifest, raters, len(labels), criteria)
