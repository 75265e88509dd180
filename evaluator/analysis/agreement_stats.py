"""The statistics of agreement between two columns of ratings: exact agreement, Cohen's kappa (quadratic-
weighted on ordinal scales), Krippendorff's alpha, Spearman's rho and the mean difference, and kappa on
resamples of whole sessions for intervals. The figures are scikit-learn's, scipy's and krippendorff's,
and each comes back None with the reason where it is undefined, never NaN."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from statistics import mean
from typing import Literal

import krippendorff
import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score

from evaluator.labels import Code, Rating

MIN_SESSIONS = 5  # a cluster bootstrap over fewer sessions gives intervals too rough to rule on
MIN_DEFINED = 0.9  # share of resamples where the kappas are defined, for an interval to be given

Level = Literal["ordinal", "nominal"]
ItemKey = tuple[str, int]  # (transcript id, turn index) within one criterion


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


@dataclass(frozen=True)
class KappaInterval:
    """A kappa (or a difference of kappas) with its 95% interval from resampling whole sessions;
    None where undefined, bounds None with fewer than MIN_SESSIONS sessions or too few defined resamples."""

    value: float | None
    low: float | None = None
    high: float | None = None


# --- on the items as rated ----------------------------------------------------------------------


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


# --- on resamples of whole sessions ---------------------------------------------------------------


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
