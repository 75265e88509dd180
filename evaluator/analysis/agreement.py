"""Agreement between a run's judgments and human ratings of the same items (`evaluator agree RUN LABELS`).

A judge is trustworthy only as far as it agrees with clinicians, and clinicians do not agree
perfectly either: with several raters, the judge's figures sit beside the raters' agreement with
each other on the same items, so a reader sees whether the judge is within human disagreement.
Chance-corrected statistics come with the mean difference (leniency), never correlation alone.
Every label that matches no judged item, and every judged item without a label, is counted with
its reason: no figure rests on silently dropped rows. The statistics are scikit-learn's, scipy's
and krippendorff's; this module only pairs the ratings and reports.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from statistics import mean
from typing import Literal

import krippendorff
import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from evaluator.aggregate import aggregate_samples
from evaluator.errors import EvaluatorError
from evaluator.files import InputFileError, check_text, read_text
from evaluator.models import Aggregate, CategoricalScale, Criterion, Judgment, Rubric, RunManifest
from evaluator.report import md_escape
from evaluator.store import load_judgments, read_manifest, write_atomic

AGREEMENT_FILE = "agreement.md"
DEFAULT_RATER = "human"
COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "transcript": ("transcript", "transcript_id"),
    "turn": ("turn", "turn_index"),
    "criterion": ("criterion", "criterion_id"),
    "score": ("score",),
    "rater": ("rater",),
    "rubric": ("rubric", "rubric_id"),
}
REQUIRED_COLUMNS = ("transcript", "turn", "criterion", "score")
ORDINAL_SCALES = ("likert", "count")
REASONS = ("transcript not in run", "no such item", "judge said not applicable", "unscored", "judge error")
STATUS_REASONS = {"not_applicable": "judge said not applicable", "unscored": "unscored", "error": "judge error"}
CONSENSUS_RULE = (
    "consensus of the raters: their mean rounded half up on ordinal scales (bias and rho use the unrounded "
    "mean), their majority on nominal scales (items where they tie are left out)"
)
LEGEND = (
    "kappa: Cohen's, quadratic-weighted on ordinal scales (likert, count), unweighted on nominal ones "
    "(binary, categorical); alpha: Krippendorff's at the scale's level; within-1: ordinal scales only; "
    "bias: mean of judge − human (> 0: the judge scores higher)"
)

Level = Literal["ordinal", "nominal"]
Code = int | str  # a value of the scale's domain: what kappa, alpha and the confusion matrix compare
ItemKey = tuple[str, int]  # (transcript id, turn index) within one criterion
VerdictKey = tuple[str, str, int, str]  # (rubric id, transcript id, turn index, criterion id)
RatingKey = tuple[str, str, int, str, str]  # a VerdictKey and the rater


class LabelsError(EvaluatorError, ValueError):
    """A labels file that cannot be used: the message names the file, the line, what is wrong and the fix."""


@dataclass(frozen=True)
class HumanLabel:
    """One row of a labels file, kept as written: its score is read against the run's scale later."""

    transcript_id: str
    turn_index: int
    criterion_id: str
    score: str
    rater: str
    line: int
    rubric_id: str | None = None


@dataclass(frozen=True)
class Rating:
    code: Code
    number: float | None = None  # for bias and rho: unrounded means, category values; None for labels without values


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


# --- reading labels --------------------------------------------------------------------------------


def read_labels(path: Path) -> list[HumanLabel]:
    """Read a labels CSV. These files are written by hand, so every problem names the file and line."""
    try:
        text = read_text(path)
        check_text(path, text)
    except InputFileError as exc:
        raise LabelsError(f"{path}: cannot read the labels file ({exc.detail}); pass a UTF-8 CSV file") from None
    reader = csv.DictReader(io.StringIO(text))
    labels: list[HumanLabel] = []
    try:
        columns = _columns(path, reader.fieldnames)
        labels += (_label(path, reader.line_num, row, columns) for row in reader)
    except csv.Error as exc:
        raise LabelsError(
            f"{path}, line {reader.line_num}: not valid CSV ({exc}); fix the quoting on that line"
        ) from None
    if not labels:
        raise LabelsError(f"{path}: no ratings under the header; add one row per rated item")
    return labels


def _columns(path: Path, header: list[str] | None) -> dict[str, str]:
    """Canonical column name -> the header's spelling, accepting the results' names (transcript_id...)."""
    expected = "transcript, turn, criterion, score and optionally rater"
    if not header:
        raise LabelsError(f"{path}, line 1: empty file; the first line must be a header naming {expected}")
    normalized = {name.strip().lower(): name for name in header if name}
    columns: dict[str, str] = {}
    for canonical, names in COLUMN_NAMES.items():
        present = [normalized[name] for name in names if name in normalized]
        if len(present) > 1:
            raise LabelsError(f"{path}, line 1: columns {present} mean the same thing; keep one of them")
        if present:
            columns[canonical] = present[0]
        elif canonical in REQUIRED_COLUMNS:
            alternatives = " or ".join(repr(n) for n in names)
            raise LabelsError(
                f"{path}, line 1: missing column {alternatives} (the header has: {', '.join(header)}); "
                f"the header must name {expected}"
            )
    return columns


def _label(path: Path, line: int, row: dict[str | None, str | None], columns: dict[str, str]) -> HumanLabel:
    def cell(canonical: str) -> str:
        value = (row.get(columns[canonical]) or "").strip()
        if not value:
            raise LabelsError(
                f"{path}, line {line}: no value in column {columns[canonical]!r}; fill it in or delete the row"
            )
        return value

    turn = cell("turn")
    try:
        turn_index = int(turn)
    except ValueError:
        turn_index = -1
    if turn_index < 0:
        raise LabelsError(
            f"{path}, line {line}: turn {turn!r} is not a turn index; write the 0-based index of the turn "
            "in its transcript, as in the run's judgments.jsonl"
        )
    return HumanLabel(
        transcript_id=cell("transcript"),
        turn_index=turn_index,
        criterion_id=cell("criterion"),
        score=cell("score"),
        rater=cell("rater") if "rater" in columns else DEFAULT_RATER,
        line=line,
        rubric_id=((row.get(columns["rubric"]) or "").strip() or None) if "rubric" in columns else None,
    )


# --- reading a label against the run's rubric -------------------------------------------------------


def level_of(criterion: Criterion) -> Level:
    return "ordinal" if criterion.scale.type in ORDINAL_SCALES else "nominal"


def _criterion_for(label: HumanLabel, rubrics: Mapping[str, Rubric], path: Path) -> tuple[str, Criterion]:
    """The rubric criterion a label rates; labels name criteria by id, a rubric column settles clashes."""
    found = [
        (rid, criterion)
        for rid, rubric in rubrics.items()
        for criterion in rubric.criteria
        if criterion.id == label.criterion_id and label.rubric_id in (None, rid)
    ]
    if len(found) == 1:
        return found[0]
    where = f"{path}, line {label.line}"
    if found:
        rubric_ids = ", ".join(rid for rid, _ in found)
        raise LabelsError(
            f"{where}: criterion {label.criterion_id!r} is in rubrics {rubric_ids}; add a rubric column to say which"
        )
    known = ", ".join(f"{rid}: {', '.join(c.id for c in r.criteria)}" for rid, r in rubrics.items())
    rubric = f" of rubric {label.rubric_id!r}" if label.rubric_id else ""
    raise LabelsError(
        f"{where}: unknown criterion {label.criterion_id!r}{rubric}; use a criterion id the run judged ({known})"
    )


def _refuse_repeat(label: HumanLabel, key: RatingKey, seen: dict[RatingKey, int], path: Path) -> None:
    """One rating per rater and item: of two, neither can be chosen without dropping the other silently."""
    if key in seen:
        raise LabelsError(
            f"{path}, line {label.line}: rater {label.rater!r} already rated {label.criterion_id} of "
            f"{label.transcript_id} turn {label.turn_index} on line {seen[key]}; keep one of the two rows"
        )
    seen[key] = label.line


def _scale_hint(criterion: Criterion) -> str:
    scale = criterion.scale
    if isinstance(scale, CategoricalScale):
        return "one of the labels " + ", ".join(scale.allowed())
    if scale.type == "binary":
        return "0 or 1 (or no / yes)"
    if scale.type == "likert":
        return f"a whole number from {scale.min} to {scale.max}"
    upper = f" to {scale.max}" if scale.max is not None else " or more"
    return f"a whole number of {scale.unit} from 0{upper}"


def _has_values(scale: CategoricalScale) -> bool:
    return all(c.value is not None for c in scale.categories)


def _category(label: str, scale: CategoricalScale) -> Rating:
    value = scale.value_of(label) if _has_values(scale) else None
    return Rating(label, value)


def human_rating(label: HumanLabel, criterion: Criterion, path: Path) -> Rating:
    """A label's score read on the criterion's scale; a category may be given by its label or its value."""
    scale = criterion.scale
    where = f"{path}, line {label.line}: score {label.score!r} for {criterion.id}"
    fix = f"write {_scale_hint(criterion)}"
    if isinstance(scale, CategoricalScale):
        for category in scale.categories:
            if label.score.lower() == category.label.lower() or _same_number(label.score, category.value):
                return _category(category.label, scale)
        raise LabelsError(f"{where} is not a category of its scale; {fix}")
    if scale.type == "binary" and label.score.lower() in ("yes", "no"):
        return Rating(int(label.score.lower() == "yes"), float(label.score.lower() == "yes"))
    try:
        number = float(label.score)
    except ValueError:
        raise LabelsError(f"{where} is not a number; {fix}") from None
    allowed = scale.allowed()
    if not number.is_integer() or number < 0 or (allowed is not None and int(number) not in allowed):
        raise LabelsError(f"{where} is outside the scale; {fix}")
    return Rating(int(number), number)


def _same_number(text: str, value: float | None) -> bool:
    try:
        return value is not None and float(text) == value
    except ValueError:
        return False


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def judge_rating(verdict: Judgment | Aggregate, criterion: Criterion) -> Rating:
    """The judge's verdict as a scale value; a mean over samples is rounded for kappa, kept for bias and rho."""
    scale = criterion.scale
    if isinstance(scale, CategoricalScale):
        return _category(str(verdict.label), scale)
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


def _alpha(rows: list[list[Code | None]], level: Level, domain: list[Code], notes: list[str]) -> float | None:
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


def _verdicts(
    run_dir: Path, manifest: RunManifest, rubrics: dict[str, Rubric]
) -> dict[VerdictKey, Judgment | Aggregate]:
    """One verdict per item: sample 0, or the samples folded as the run's summary folds them."""
    judgments = load_judgments(run_dir)
    items: list[Judgment] | list[Aggregate]
    if manifest.samples > 1:
        items = aggregate_samples(judgments, rubrics, manifest.aggregate)
    else:
        items = [j for j in judgments if j.sample == 0]
    return {(v.rubric_id, v.transcript_id, v.turn_index, v.criterion_id): v for v in items}


def _unmatched_reason(key: VerdictKey, verdict: Judgment | Aggregate | None, transcripts: set[str]) -> str | None:
    if verdict is None:
        return "transcript not in run" if key[1] not in transcripts else "no such item"
    return STATUS_REASONS.get(verdict.status)


def _criterion_agreement(
    rubric_id: str,
    criterion: Criterion,
    labelled: list[tuple[HumanLabel, Rating]],
    verdicts: Mapping[VerdictKey, Judgment | Aggregate],
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


def agreement(run_dir: Path, labels_path: Path) -> AgreementReport:
    """Match every label to the run's verdict of the same transcript, turn and criterion, and compare.

    Rubrics come from the manifest's snapshot, so labels are read on the scales the run judged with.
    """
    manifest = read_manifest(run_dir)
    rubrics = {rid: Rubric.model_validate(info["definition"]) for rid, info in manifest.rubrics.items()}
    labels = read_labels(labels_path)
    grouped: dict[tuple[str, str], list[tuple[HumanLabel, Rating]]] = defaultdict(list)
    seen: dict[RatingKey, int] = {}
    for label in labels:
        rubric_id, criterion = _criterion_for(label, rubrics, labels_path)
        _refuse_repeat(
            label, (rubric_id, label.transcript_id, label.turn_index, criterion.id, label.rater), seen, labels_path
        )
        grouped[(rubric_id, criterion.id)].append((label, human_rating(label, criterion, labels_path)))
    verdicts = _verdicts(run_dir, manifest, rubrics)
    raters = list(dict.fromkeys(label.rater for label in labels))
    criteria = [
        _criterion_agreement(rid, criterion, grouped[(rid, criterion.id)], verdicts, set(manifest.transcripts), raters)
        for rid, rubric in rubrics.items()
        for criterion in rubric.criteria
        if (rid, criterion.id) in grouped
    ]
    return AgreementReport(run_dir, labels_path, manifest, raters, len(labels), criteria)


# --- output ------------------------------------------------------------------------------------------


def _fmt(value: float | None, style: str = "{:.2f}") -> str:
    return "–" if value is None else style.format(value)


def _comparison_cells(c: Comparison) -> list[str]:
    return [
        str(c.n),
        _fmt(c.exact, "{:.0%}"),
        _fmt(c.within_one, "{:.0%}"),
        _fmt(c.kappa),
        _fmt(c.alpha),
        _fmt(c.rho),
        _fmt(c.bias, "{:+.2f}"),
    ]


STAT_COLUMNS = ("n", "exact", "within-1", "kappa", "alpha", "rho", "bias")
HUMAN_COLUMNS = ("h-h n", "h-h kappa", "h-h alpha")


def _columns_of(report: AgreementReport) -> tuple[str, ...]:
    return ("criterion", "scale", "vs", *STAT_COLUMNS, *(HUMAN_COLUMNS if report.several_raters else ()))


def _rows(report: AgreementReport) -> list[list[str]]:
    """One row per criterion (against the consensus or the only rater), then one per rater."""
    rows = []
    for ca in report.criteria:
        humans = ca.humans
        human_cells = [str(humans.n), _fmt(humans.kappa), _fmt(humans.alpha)] if humans else ["", "", ""]
        extra = human_cells if report.several_raters else []
        rows.append(
            [
                ca.criterion.id,
                f"{ca.criterion.scale.type} ({ca.level})",
                ca.comparison.against,
                *_comparison_cells(ca.comparison),
                *extra,
            ]
        )
        for c in ca.per_rater:
            rows.append(["", "", c.against, *_comparison_cells(c), *([""] * len(extra))])
    return rows


def _notes(report: AgreementReport) -> list[str]:
    notes = []
    for ca in report.criteria:
        for c in (ca.comparison, *ca.per_rater):
            notes += [f"{ca.criterion.id} vs {c.against}: {note}" for note in c.notes]
        if ca.humans:
            notes += [f"{ca.criterion.id} human-human: {note}" for note in ca.humans.notes]
    return notes


def _pair_lines(report: AgreementReport) -> list[str]:
    return [
        f"{ca.criterion.id} human-human kappa ({ca.kappa_kind}) by pair: "
        + ", ".join(f"{a}–{b} {_fmt(k)}" for (a, b), k in ca.humans.pairs.items())
        for ca in report.criteria
        if ca.humans
    ]


def _header_lines(report: AgreementReport) -> list[str]:
    m = report.manifest
    judge = m.judge.get("judge", "?") + (f" ({m.judge['model']})" if m.judge.get("model") else "")
    lines = [
        (
            f"Run {m.run_id} (judge {judge}) against {report.labels_path}: {report.labels} ratings "
            f"from {len(report.raters)} rater(s) ({', '.join(report.raters)})"
        ),
        LEGEND,
    ]
    if m.samples > 1:
        lines.append(f"judge verdicts folded over {m.samples} samples ({m.aggregate}); means rounded half up for kappa")
    if report.several_raters:
        lines.append(
            CONSENSUS_RULE + "; h-h: the raters against each other on the items the judge scored "
            "(kappa averaged over pairs, alpha across all raters)"
        )
    return lines


UNMATCHED_COLUMNS = ("criterion", "labels", "matched", *REASONS, "judged, no label")
UNMATCHED_NOTE = (
    "labels, matched and the reasons count rating rows (one per rater and item); "
    "judged, no label counts items the judge scored that no rater rated"
)


def _unmatched_row(criterion_id: str, u: Unmatched) -> list[str]:
    return [
        criterion_id,
        str(u.labels),
        str(u.matched),
        *(str(u.reasons[r]) for r in REASONS),
        str(u.judged_unlabelled),
    ]


def _unmatched_rows(report: AgreementReport) -> list[list[str]]:
    return [_unmatched_row(ca.criterion.id, ca.unmatched) for ca in report.criteria]


def _confusion_rows(confusion: Confusion) -> list[list[str]]:
    return [[str(value), *(str(n) for n in row)] for value, row in zip(confusion.values, confusion.counts)]


def _confusion_title(ca: CriterionAgreement) -> str:
    return f"{ca.criterion.id}: rows human ({ca.confusion.against}), columns judge"


MAIN_TITLE = "Judge against human ratings"
UNMATCHED_TITLE = "Labels not compared, and judged items without a label"
CONFUSION_CORNER = "human \\ judge"


def _table(header: tuple[str, ...], rows: list[list[str]], text_columns: int = 1, title: str | None = None) -> Table:
    """Text columns on the left, figures right-aligned; cells escaped, since ids and rater names are data."""
    table = Table(title=escape(title) if title else None, title_justify="left")
    for index, column in enumerate(header):
        table.add_column(escape(column), justify="left" if index < text_columns else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    return table


def _confusion_header(confusion: Confusion) -> tuple[str, ...]:
    return (CONFUSION_CORNER, *(str(v) for v in confusion.values))


def print_agreement(report: AgreementReport, console: Console) -> None:
    """The terminal view: the agreement table, its notes, the confusion matrices, then what did not match."""
    for line in _header_lines(report):
        console.print(escape(line), highlight=False)
    console.print(_table(_columns_of(report), _rows(report), text_columns=3, title=MAIN_TITLE))
    for line in _pair_lines(report) + _notes(report):
        console.print(escape(line), highlight=False)
    for ca in report.criteria:
        console.print(escape(_confusion_title(ca)), highlight=False)
        console.print(_table(_confusion_header(ca.confusion), _confusion_rows(ca.confusion)))
    console.print(_table(UNMATCHED_COLUMNS, _unmatched_rows(report), title=UNMATCHED_TITLE))
    console.print(escape(UNMATCHED_NOTE), highlight=False)


def _md_table(header: tuple[str, ...], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_escape(cell) for cell in row) + " |" for row in rows]
    return lines


def render_agreement_markdown(report: AgreementReport) -> str:
    """agreement.md: the terminal's figures, for a lab notebook or a pull request."""
    out = [f"# Agreement of run {report.manifest.run_id} with human ratings", ""]
    out += [f"- {line}" for line in _header_lines(report)]
    out += ["", f"## {MAIN_TITLE}", ""]
    out += _md_table(_columns_of(report), _rows(report))
    extra = _pair_lines(report) + _notes(report)
    if extra:
        out += [""] + [f"- {line}" for line in extra]
    out += ["", "## Confusion matrices", ""]
    for ca in report.criteria:
        out += [f"### {_confusion_title(ca)}", ""]
        out += _md_table(_confusion_header(ca.confusion), _confusion_rows(ca.confusion))
        out.append("")
    out += [f"## {UNMATCHED_TITLE}", "", UNMATCHED_NOTE + ".", ""]
    out += _md_table(UNMATCHED_COLUMNS, _unmatched_rows(report))
    return "\n".join(out) + "\n"


def write_agreement(run_dir: Path, labels_path: Path) -> tuple[AgreementReport, Path]:
    report = agreement(run_dir, labels_path)
    path = run_dir / AGREEMENT_FILE
    write_atomic(path, render_agreement_markdown(report))
    return report, path
