"""Agreement between a run's verdicts and human ratings of the same items (`evaluator agree RUN LABELS`).

A judge is trustworthy only as far as it agrees with clinicians, and clinicians do not agree
perfectly either: with several raters, the judge's figures sit beside the raters' agreement with
each other on the same items, so a reader sees whether the judge is within human disagreement.
Chance-corrected statistics come with the mean difference (leniency), never correlation alone.
Per criterion a verdict says whether the judge is within human disagreement: the judge's kappa with
each rater beside the raters' kappa with each other on the same items, both with intervals that
resample whole sessions (see VERDICT_RULE). Every label that matches no judged item is listed with
its line and reason, and every judged item without a label is counted: no figure rests on silently
dropped rows. `against` sets two runs' agreement with the same labels side by side (a rubric edit). The statistics are scikit-learn's, scipy's
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
from typing import Final, Literal

import krippendorff
import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from evaluator.analysis.stats import DEFAULT_RESAMPLES
from evaluator.labels import Code, HumanLabel, Rating, category_rating, rate_labels
from evaluator.models import CategoricalScale, Criterion, RunManifest
from evaluator.results import Item, RunData

ORDINAL_SCALES = ("likert", "count")
REASONS = ("transcript not in run", "no such item", "judge said not applicable", "unscored", "judge error")
STATUS_REASONS = {"not_applicable": "judge said not applicable", "unscored": "unscored", "error": "judge error"}

WITHIN: Final = "within human disagreement"
BELOW: Final = "below human agreement"
UNKNOWN: Final = "not enough items/raters to say"
MIN_ITEMS = 20  # items rated by two or more raters and scored by the judge
MIN_SESSIONS = 5  # a cluster bootstrap over fewer sessions gives intervals too rough to rule on
MIN_DEFINED = 0.9  # share of resamples where the kappas are defined, for an interval to be given

Level = Literal["ordinal", "nominal"]
Verdict = Literal["within human disagreement", "below human agreement", "not enough items/raters to say"]
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


@dataclass(frozen=True)
class KappaInterval:
    """A kappa (or a difference of kappas) with its 95% interval from resampling whole sessions;
    None where undefined, bounds None with fewer than MIN_SESSIONS sessions or too few defined resamples."""

    value: float | None
    low: float | None = None
    high: float | None = None


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


@dataclass
class Shift:
    """One criterion's agreement with the same labels in two runs (before and after a rubric edit), on the
    labelled items both runs scored; the difference (after - before) resamples the same sessions."""

    rubric_id: str
    criterion: Criterion
    items: int
    sessions: int
    before: KappaInterval
    after: KappaInterval
    difference: KappaInterval


@dataclass
class AgainstReport:
    before: AgreementReport
    after: AgreementReport
    shifts: list[Shift]
    notes: list[str]


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


# --- the verdict: the judge within human disagreement? ------------------------------------------------


def kappa_from_counts(counts: np.ndarray, level: Level) -> np.ndarray:
    """Cohen's kappa of confusion matrices (..., k, k) over the scale's positions, as sklearn computes it
    (quadratic weights on ordinal scales): 1 - sum(w * observed) / sum(w * chance). NaN where undefined."""
    positions = np.arange(counts.shape[-1])
    gap = positions[:, None] - positions[None, :]
    weights = gap**2 if level == "ordinal" else (gap != 0).astype(float)
    n = counts.sum(axis=(-2, -1))
    chance = counts.sum(axis=-1)[..., :, None] * counts.sum(axis=-2)[..., None, :]
    observed = (weights * counts).sum(axis=(-2, -1)) * n
    expected = (weights * chance).sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected > 0, 1 - observed / np.where(expected > 0, expected, 1), np.nan)


Column = Mapping[ItemKey, Code]


class SessionBootstrap:
    """Kappas on the items as rated and on resamples of whole sessions (turns of one session are not
    independent, so resampling items would give intervals too narrow). Each statistic is computed from
    per-session confusion counts, so every resample costs one weighted sum, not a pass over the items."""

    def __init__(self, items: Sequence[ItemKey], domain: list[Code], level: Level, resamples: int, seed: int) -> None:
        self.items = sorted(items)
        self.sessions = sorted({transcript for transcript, _ in self.items})
        self.level = level
        self._session = {s: i for i, s in enumerate(self.sessions)}
        self._position = {value: i for i, value in enumerate(domain)}
        picks = np.random.default_rng(seed).integers(0, len(self.sessions), size=(resamples, len(self.sessions)))
        weights = np.zeros((resamples + 1, len(self.sessions)))
        weights[0] = 1  # row 0: the sessions as observed
        np.add.at(weights[1:], (np.arange(resamples)[:, None], picks), 1)
        self._weights = weights

    def _counts(self, a: Column, b: Column) -> np.ndarray:
        counts = np.zeros((len(self.sessions), len(self._position), len(self._position)))
        for item in self.items:
            if item in a and item in b:
                counts[self._session[item[0]], self._position[a[item]], self._position[b[item]]] += 1
        return counts

    def mean_kappa(self, pairs: Sequence[tuple[Column, Column]]) -> np.ndarray:
        """The mean over column pairs of their kappa: [observed, resample 1, ...]; NaN where none is defined."""
        if not pairs or not self.sessions:
            return np.full(len(self._weights), np.nan)
        kappas = [
            kappa_from_counts(np.einsum("rs,sij->rij", self._weights, self._counts(a, b)), self.level) for a, b in pairs
        ]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.nanmean(np.stack(kappas), axis=0)

    def interval(self, draws: np.ndarray) -> KappaInterval:
        """The observed value with a 95% percentile interval, given MIN_SESSIONS sessions and defined draws
        (over two or three sessions the resamples are so few distinct mixes that the interval misleads)."""
        value = float(draws[0]) if math.isfinite(draws[0]) else None
        resampled = draws[1:]
        defined = resampled[np.isfinite(resampled)]
        if value is None or len(self.sessions) < MIN_SESSIONS or len(defined) < MIN_DEFINED * len(resampled):
            return KappaInterval(value)
        low, high = np.quantile(defined, [0.025, 0.975])
        return KappaInterval(value, float(low), float(high))


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
            unmatched.rows.append(
                UnmatchedLabel(label.line, label.transcript_id, label.turn_index, criterion.id, label.rater, reason)
            )
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


# --- two runs against the same labels ---------------------------------------------------------------


def _union(a: list[Code], b: list[Code], level: Level) -> list[Code]:
    merged = list(dict.fromkeys([*a, *b]))
    return sorted(merged, key=int) if level == "ordinal" else merged


def shift(before: CriterionAgreement, after: CriterionAgreement, resamples: int, seed: int) -> Shift:
    """Judge-vs-human kappa (averaged over raters) of two runs on the labelled items both scored."""
    items = sorted(before.judged.keys() & after.judged.keys() & before.ratings.keys() & after.ratings.keys())
    level = after.level
    boot = SessionBootstrap(items, _union(before.domain, after.domain, level), level, resamples, seed)

    def draws(ca: CriterionAgreement) -> np.ndarray:
        raters = sorted({r for item in items for r in ca.ratings[item]})
        judge = {item: ca.judged[item].code for item in items}
        return boot.mean_kappa(
            [(judge, {i: ca.ratings[i][r].code for i in items if r in ca.ratings[i]}) for r in raters]
        )

    old, new = draws(before), draws(after)
    return Shift(
        after.rubric_id,
        after.criterion,
        len(items),
        len(boot.sessions),
        boot.interval(old),
        boot.interval(new),
        boot.interval(new - old),
    )


def against(
    before: AgreementReport, after: AgreementReport, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> AgainstReport:
    """Agreement with the same labels before and after a rubric edit (run A, run B), criterion by criterion."""
    later = {(ca.rubric_id, ca.criterion.id): ca for ca in after.criteria}
    shifts, notes = [], []
    for ca in before.criteria:
        other = later.pop((ca.rubric_id, ca.criterion.id), None)
        if other is None:
            notes.append(f"{ca.criterion.id}: labelled, but not judged in run {after.manifest.run_id}")
        elif other.level != ca.level or other.criterion.scale.type != ca.criterion.scale.type:
            notes.append(
                f"{ca.criterion.id}: the scale changed ({ca.criterion.scale.type} to {other.criterion.scale.type}), "
                "so the two kappas are not comparable"
            )
        else:
            shifts.append(shift(ca, other, resamples, seed))
    notes += [f"{cid}: labelled, but not judged in run {before.manifest.run_id}" for _, cid in later]
    return AgainstReport(before, after, shifts, notes)
