"""Contrasts between arms: is therapist (or model) B better than the baseline A on each criterion, and
how sure are we?

Per criterion, the difference B − A with a 95% percentile-bootstrap interval that resamples whole
sessions (within each arm independently), since the turns of one session are not independent. With
`pair_by` (e.g. patient_id: the same simulated patient script answered in both arms) the pairs of
sessions are resampled instead, and the difference is the mean over pairs of each pair's difference of
means, so each pair weighs the same; pairing removes what the patients contribute, which narrows the
interval. Two runs of the same transcripts (two judges, two rubric versions) are contrasted the same
way, paired by transcript. Beside each interval, a permutation p-value (sessions' arm labels shuffled;
signs of pair differences flipped when paired) and the same p-values Holm-adjusted across every row of
the contrast, since testing many criteria at once finds some "difference" by chance.

Pure computation returning a Contrast; evaluator.views.contrast renders it and `contrast()` gives a
pandas DataFrame (pandas imported only then).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from evaluator.analysis.groups import (
    FEW_SESSIONS,
    FEW_SESSIONS_NOTE,
    GroupingError,
    ScoresBySession,
    Weight,
    label_of,
    metadata_values,
    method_note,
    ordered_labels,
    scores_by_session,
    split_fields,
    weighted,
)
from evaluator.analysis.stats import DEFAULT_RESAMPLES, Estimate
from evaluator.analysis.summary import score_range
from evaluator.models import Criterion
from evaluator.results import RunData, open_run

if TYPE_CHECKING:
    import pandas as pd

LEVEL = 0.95
PERMUTATIONS = 2000
P_VALUE_NOTE = (
    "p: two-sided permutation p-value ({how}, {n} permutations); p Holm: adjusted with Holm's method across "
    "the {rows} rows of this contrast (every criterion and arm), so read a single criterion's p against p Holm: "
    "testing many criteria at once finds some difference by chance."
)

Arms = dict[str, ScoresBySession]  # per arm label: per session, the scores of one criterion


@dataclass(frozen=True)
class ArmFigures:
    """One arm on one criterion: sessions and turns scored and its mean (weighted as the contrast says)."""

    label: str
    sessions: int
    turns: int
    mean: float | None


@dataclass(frozen=True)
class CriterionContrast:
    rubric_id: str
    criterion: Criterion
    baseline: ArmFigures
    arm: ArmFigures
    difference: Estimate | None
    """arm − baseline with its 95% interval; None when either side has no scored session (or no pair)."""
    pairs: int | None
    """Pairs of sessions used (paired designs); None when unpaired."""
    p_value: float | None
    span: float | None = None
    """Width of the criterion's scale (a count without a maximum: the largest count given), so differences on
    criteria of different scales can share one axis as shares of their scale; None when unknown."""
    p_holm: float | None = None

    @property
    def scored_in_both(self) -> bool:
        return bool(self.baseline.sessions and self.arm.sessions)

    @property
    def scored(self) -> bool:
        """Scored in either arm; a criterion no arm has a score on (e.g. unscored without an LLM) is left
        out of the tables and listed instead."""
        return bool(self.baseline.sessions or self.arm.sessions)

    @property
    def excludes_zero(self) -> bool:
        d = self.difference
        return d is not None and (d.low > 0 or d.high < 0)

    @property
    def verdict(self) -> str:
        """`better`, `worse`, `differs` (a criterion where neither end is better) or `unclear`."""
        d = self.difference
        if d is None or not self.excludes_zero:
            return "unclear"
        if self.criterion.better == "neither":
            return "differs"
        return "better" if (d.value > 0) == (self.criterion.better == "higher") else "worse"


@dataclass
class Contrast:
    title: str
    run_dirs: tuple[Path, ...]
    by: tuple[str, ...]
    arms: list[str]
    baseline: str
    sizes: dict[str, int]
    """Sessions per arm, scored or not."""
    pair_by: str | None
    weight: Weight
    rows: list[CriterionContrast]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """How to read the figures: averaging, intervals, p-values and multiplicity."""

    @property
    def paired(self) -> bool:
        return self.pair_by is not None

    def compared(self) -> list[str]:
        """The arms set against the baseline, in order."""
        return [a for a in self.arms if a != self.baseline]


# --- the bootstrap ------------------------------------------------------------------------------------


def _totals(sessions: ScoresBySession, weight: Weight) -> tuple[np.ndarray, np.ndarray]:
    """Per session, the sum of its values and their number: what is resampled, always whole sessions."""
    values = list(weighted(sessions, weight).values())
    return np.array([sum(v) for v in values], dtype=float), np.array([len(v) for v in values], dtype=float)


def resampled_means(sums: np.ndarray, counts: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """Means of `resamples` bootstrap samples, each drawing len(sums) sessions with replacement."""
    picks = rng.integers(0, len(sums), size=(resamples, len(sums)))
    return sums[picks].sum(axis=1) / counts[picks].sum(axis=1)


def _interval(point: float, draws: np.ndarray, n: int, sessions: int, level: float) -> Estimate:
    alpha = (1 - level) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    return Estimate(point, float(low), float(high), n, sessions)


def _p_value(observed: float, permuted: np.ndarray) -> float:
    """Two-sided, counting the observed arrangement among the permutations, so p is never 0."""
    extreme = np.abs(permuted) >= abs(observed) - 1e-12
    return float((1 + extreme.sum()) / (1 + len(permuted)))


def unpaired_difference(
    baseline: ScoresBySession,
    arm: ScoresBySession,
    weight: Weight = "turns",
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
    permutations: int = PERMUTATIONS,
) -> tuple[Estimate, float] | None:
    """arm − baseline: sessions resampled within each arm; p from shuffling the sessions' arm labels."""
    sums_a, counts_a = _totals(baseline, weight)
    sums_b, counts_b = _totals(arm, weight)
    if not len(sums_a) or not len(sums_b):
        return None
    point = sums_b.sum() / counts_b.sum() - sums_a.sum() / counts_a.sum()
    rng = np.random.default_rng(seed)
    draws = resampled_means(sums_b, counts_b, rng, resamples) - resampled_means(sums_a, counts_a, rng, resamples)
    n = int(counts_a.sum() + counts_b.sum()) if weight == "turns" else _turns(baseline) + _turns(arm)
    estimate = _interval(float(point), draws, n, len(sums_a) + len(sums_b), level)
    sums, counts = np.concatenate([sums_a, sums_b]), np.concatenate([counts_a, counts_b])
    order = np.argsort(rng.random((permutations, len(sums))), axis=1)
    in_b = order < len(sums_b)  # a random choice of len(sums_b) sessions per permutation
    permuted = (sums * in_b).sum(1) / (counts * in_b).sum(1) - (sums * ~in_b).sum(1) / (counts * ~in_b).sum(1)
    return estimate, _p_value(float(point), permuted)


def _turns(sessions: ScoresBySession) -> int:
    return sum(len(v) for v in sessions.values())


def paired_difference(
    pairs: Sequence[tuple[Sequence[float], Sequence[float]]],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
    permutations: int = PERMUTATIONS,
) -> tuple[Estimate, float] | None:
    """Mean over pairs of (arm's mean − baseline's mean): pairs resampled; p from flipping their signs."""
    usable = [(a, b) for a, b in pairs if len(a) and len(b)]
    if not usable:
        return None
    differences = np.array([sum(b) / len(b) - sum(a) / len(a) for a, b in usable])
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(differences), size=(resamples, len(differences)))
    draws = differences[picks].mean(axis=1)
    n = sum(len(a) + len(b) for a, b in usable)
    estimate = _interval(float(differences.mean()), draws, n, 2 * len(usable), level)
    signs = rng.choice([-1.0, 1.0], size=(permutations, len(differences)))
    return estimate, _p_value(float(differences.mean()), (signs * differences).mean(axis=1))


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment: the k-th smallest of m p-values times (m − k + 1), kept monotone and
    capped at 1; None (no test) stays None and does not count towards m."""
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(present)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted


# --- arms from a run ----------------------------------------------------------------------------------


def _figures(label: str, sessions: ScoresBySession, weight: Weight) -> ArmFigures:
    sums, counts = _totals(sessions, weight)
    mean = float(sums.sum() / counts.sum()) if len(sums) else None
    return ArmFigures(label, len(sums), _turns(sessions), mean)


def _row(
    rubric_id: str,
    criterion: Criterion,
    arms: Arms,
    baseline: str,
    arm: str,
    pair_of: Mapping[str, Mapping[str, str]] | None,
    weight: Weight,
    seed: int,
) -> CriterionContrast:
    base, other = arms.get(baseline, {}), arms.get(arm, {})
    figures = (_figures(baseline, base, weight), _figures(arm, other, weight))
    if pair_of is None:
        result = unpaired_difference(base, other, weight, seed=seed)
        count = None
    else:
        pairs = _pairs(base, other, pair_of[baseline], pair_of[arm])
        result = paired_difference(pairs, seed=seed)
        count = sum(1 for a, b in pairs if a and b)
    difference, p_value = result or (None, None)
    top = max((x for sessions in (base, other) for v in sessions.values() for x in v), default=None)
    extent = score_range(criterion, top)
    span = extent[1] - extent[0] if extent and extent[1] > extent[0] else None
    return CriterionContrast(
        rubric_id, criterion, *figures, difference=difference, pairs=count, p_value=p_value, span=span
    )


def _pairs(
    base: ScoresBySession, other: ScoresBySession, base_keys: Mapping[str, str], other_keys: Mapping[str, str]
) -> list[tuple[list[float], list[float]]]:
    """Per pairing value present in both arms, the scores of its sessions in each arm (pooled over turns)."""
    pooled: dict[str, tuple[list[float], list[float]]] = {}
    for sessions, keys, side in ((base, base_keys, 0), (other, other_keys, 1)):
        for session, scores in sessions.items():
            pooled.setdefault(keys[session], ([], []))[side].extend(scores)
    return [pooled[k] for k in sorted(pooled)]


def _build(
    title: str,
    run_dirs: tuple[Path, ...],
    by: tuple[str, ...],
    arms_order: list[str],
    baseline: str | None,
    sizes: dict[str, int],
    criteria: list[tuple[str, Criterion, Arms]],
    pair_by: str | None,
    pair_of: Mapping[str, Mapping[str, str]] | None,
    weight: Weight,
    seed: int,
) -> Contrast:
    if len(arms_order) < 2:
        found = ", ".join(arms_order) or "none"
        raise GroupingError(
            f"a contrast needs at least two arms; {'/'.join(by)} takes one value here ({found}): group by a field "
            "whose value differs between the transcripts"
        )
    if baseline is None:
        baseline = arms_order[0]
    elif baseline not in arms_order and label_of(baseline.split(",")) in arms_order:
        baseline = label_of(baseline.split(","))  # `--baseline model-a,control` for `--by model,condition`
    elif baseline not in arms_order:
        raise GroupingError(f"no arm {baseline!r} to use as --baseline; the arms are: {', '.join(arms_order)}")
    rows = [
        _row(rubric_id, criterion, arms, baseline, arm, pair_of, weight, seed)
        for arm in arms_order
        if arm != baseline
        for rubric_id, criterion, arms in criteria
    ]
    adjusted = holm([r.p_value for r in rows])
    rows = [replace(r, p_holm=p) for r, p in zip(rows, adjusted)]
    contrast = Contrast(title, run_dirs, by, arms_order, baseline, sizes, pair_by, weight, rows)
    contrast.warnings = _warnings(contrast)
    contrast.notes = _notes(contrast)
    return contrast


def _warnings(contrast: Contrast) -> list[str]:
    warnings = [
        f"arm {arm} has {n} session{'s' if n != 1 else ''} (under {FEW_SESSIONS}): {FEW_SESSIONS_NOTE}."
        for arm, n in contrast.sizes.items()
        if n < FEW_SESSIONS
    ]
    if contrast.paired:
        scored = [r for r in contrast.rows if r.scored_in_both and r.pairs is not None]
        few = sorted({r.pairs for r in scored if r.pairs and r.pairs < FEW_SESSIONS})
        if few:
            warnings.append(f"only {few[0]} pair(s) of sessions on some criteria: {FEW_SESSIONS_NOTE}.")
        for arm in contrast.compared():
            unpaired = [r.criterion.id for r in scored if r.arm.label == arm and r.pairs == 0]
            if unpaired:
                warnings.append(
                    f"no {contrast.pair_by} value is shared by arm {arm} and the baseline {contrast.baseline} "
                    f"among the sessions scored on {', '.join(unpaired)}: nothing to pair there."
                )
    return warnings


def _notes(contrast: Contrast) -> list[str]:
    if contrast.paired:
        design = (
            f"Paired by {contrast.pair_by}: the difference is the mean over pairs of each pair's difference of "
            "means (every pair weighs the same), and the interval resamples pairs of sessions; sessions "
            "without a partner in the other arm are left out."
        )
        how = "signs of the pair differences flipped"
    else:
        design = "Unpaired: sessions are resampled within each arm independently. " + method_note(contrast.weight)
        how = "sessions' arm labels shuffled"
    rows = sum(1 for r in contrast.rows if r.p_value is not None)
    return [
        f"Difference: arm − baseline ({contrast.baseline}); positive means the arm scores higher, which is "
        "better only where higher is better (the verdict column says which way is better).",
        design,
        P_VALUE_NOTE.format(how=how, n=PERMUTATIONS, rows=rows),
    ]


def contrast_groups(
    run: RunData | Path,
    by: str | Sequence[str],
    baseline: str | None = None,
    pair_by: str | None = None,
    weight: Weight = "turns",
    seed: int = 0,
) -> Contrast:
    """Arms from the run's metadata (`by`), each set against the baseline arm (default: first in sorted order)."""
    data = run if isinstance(run, RunData) else open_run(run)
    fields = split_fields(by)
    values = metadata_values(data, fields)
    arm_of = {t: label_of(v) for t, v in values.items()}
    pair_of: dict[str, dict[str, str]] | None = None
    if pair_by is not None:
        keys = {t: v[0] for t, v in metadata_values(data, [pair_by]).items()}
        pair_of = {}
        for transcript, arm in arm_of.items():
            pair_of.setdefault(arm, {})[transcript] = keys[transcript]
    arms_order = ordered_labels(values.values())
    sizes = {a: sum(1 for t in arm_of.values() if t == a) for a in arms_order}
    scores = scores_by_session(data)
    criteria = []
    for rubric in data.rubrics.values():
        for criterion in rubric.criteria:
            arms: Arms = {}
            for transcript, session_scores in scores.get((rubric.id, criterion.id), {}).items():
                if transcript in arm_of:
                    arms.setdefault(arm_of[transcript], {})[transcript] = session_scores
            criteria.append((rubric.id, criterion, arms))
    title = f"{data.manifest.run_id} by {', '.join(fields)}"
    return _build(title, (data.run_dir,), fields, arms_order, baseline, sizes, criteria, pair_by, pair_of, weight, seed)


def contrast_runs(run_a: RunData | Path, run_b: RunData | Path, seed: int = 0) -> Contrast:
    """Run B against run A (two judges, or two rubric versions) on the criteria both judged, paired by
    transcript: the same sessions judged twice."""
    a = run_a if isinstance(run_a, RunData) else open_run(run_a)
    b = run_b if isinstance(run_b, RunData) else open_run(run_b)
    label_a, label_b = a.manifest.run_id, b.manifest.run_id
    if label_a == label_b:
        label_a, label_b = f"{label_a} (A)", f"{label_b} (B)"
    scores_a, scores_b = scores_by_session(a), scores_by_session(b)
    common = [t for t in a.manifest.transcripts if t in set(b.manifest.transcripts)]
    if not common:
        raise GroupingError(
            f"runs {a.manifest.run_id} and {b.manifest.run_id} share no transcript id, so nothing can be paired: "
            "contrast two runs of the same transcripts (two judges or two rubric versions)"
        )
    pair_of = {label_a: {t: t for t in common}, label_b: {t: t for t in common}}
    criteria = []
    for rubric_id, rubric in a.rubrics.items():
        if rubric_id not in b.rubrics:
            continue
        for criterion in rubric.criteria:
            if not any(c.id == criterion.id for c in b.rubrics[rubric_id].criteria):
                continue
            arms: Arms = {
                label_a: {t: s for t, s in scores_a.get((rubric_id, criterion.id), {}).items() if t in common},
                label_b: {t: s for t, s in scores_b.get((rubric_id, criterion.id), {}).items() if t in common},
            }
            criteria.append((rubric_id, criterion, arms))
    sizes = {label_a: len(common), label_b: len(common)}
    title = f"{label_b} against {label_a}"
    contrast = _build(
        title,
        (a.run_dir, b.run_dir),
        ("run",),
        [label_a, label_b],
        label_a,
        sizes,
        criteria,
        "transcript",
        pair_of,
        "turns",
        seed,
    )
    only = len(set(a.manifest.transcripts) ^ set(b.manifest.transcripts))
    if only:
        contrast.warnings.append(f"{only} transcript(s) judged in one run only are left out.")
    unmatched = sorted(_criterion_ids(a) ^ _criterion_ids(b))
    if unmatched:
        contrast.warnings.append(
            f"criteria judged in one run only are left out (a renamed criterion counts as another): "
            f"{', '.join('/'.join(key) for key in unmatched)}."
        )
    return contrast


def _criterion_ids(run: RunData) -> set[tuple[str, str]]:
    return {(rubric.id, c.id) for rubric in run.rubrics.values() for c in rubric.criteria}


# --- as a DataFrame -----------------------------------------------------------------------------------


def contrast(
    run: RunData | Path | str,
    other: RunData | Path | str | None = None,
    *,
    by: str | Sequence[str] | None = None,
    baseline: str | None = None,
    pair_by: str | None = None,
    weight: Weight = "turns",
) -> pd.DataFrame:
    """One row per criterion and arm: both arms' sessions, turns and means, the difference with its 95%
    interval, pairs, p and Holm-adjusted p. `contrast(run, by="model")` for arms from metadata,
    `contrast(run_a, run_b)` for two runs; the DataFrame's attrs hold the notes and warnings."""
    import pandas as pd

    if other is not None:
        if by is not None or pair_by is not None:
            raise GroupingError("two runs are paired by transcript: leave out by= and pair_by=")
        result = contrast_runs(_opened(run), _opened(other))
    elif by is None:
        raise GroupingError("say which metadata field makes the arms, e.g. contrast(run, by='model')")
    else:
        result = contrast_groups(_opened(run), by, baseline, pair_by, weight)
    frame = pd.DataFrame([_record(r) for r in result.rows])
    frame.attrs.update(title=result.title, notes=result.notes, warnings=result.warnings)
    return frame


def _opened(run: RunData | Path | str) -> RunData | Path:
    return Path(run) if isinstance(run, str) else run


def _record(row: CriterionContrast) -> dict[str, object]:
    d = row.difference
    return {
        "rubric": row.rubric_id,
        "criterion": row.criterion.id,
        "baseline": row.baseline.label,
        "arm": row.arm.label,
        "baseline_sessions": row.baseline.sessions,
        "arm_sessions": row.arm.sessions,
        "baseline_turns": row.baseline.turns,
        "arm_turns": row.arm.turns,
        "baseline_mean": row.baseline.mean,
        "arm_mean": row.arm.mean,
        "difference": d.value if d else None,
        "ci_low": d.low if d else None,
        "ci_high": d.high if d else None,
        "pairs": row.pairs,
        "p": row.p_value,
        "p_holm": row.p_holm,
        "verdict": row.verdict,
    }
