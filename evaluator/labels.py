"""Human ratings read from a labels CSV and checked against the rubrics a run judged with.

The file is written by hand, so it is input like a transcript: every problem is a LabelsError naming
the file, the line, what is wrong and the fix, raised before any figure is computed. A score is read
on its criterion's scale here (a Rating), so the analysis only pairs and compares.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from evaluator.errors import EvaluatorError
from evaluator.files import InputFileError, check_text, csv_rows, read_text
from evaluator.models import CategoricalScale, Criterion, Rubric

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

Code = int | str  # a value of the scale's domain: what kappa, alpha and the confusion matrix compare
RatingKey = tuple[str, str, int, str, str]  # (rubric id, transcript id, turn index, criterion id, rater)


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


# --- reading the file ------------------------------------------------------------------------------


def read_labels(path: Path) -> list[HumanLabel]:
    """Read a labels CSV. These files are written by hand, so every problem names the file and line."""
    try:
        text = read_text(path)
        check_text(path, text)
    except InputFileError as exc:
        raise LabelsError(f"{path}: cannot read the labels file ({exc.detail}); pass a UTF-8 CSV file") from None
    wanted = {name for names in COLUMN_NAMES.values() for name in names}
    records = csv_rows(path, text, wanted)
    labels: list[HumanLabel] = []
    try:
        _, header = next(records, (1, []))
        columns = _columns(path, header)
        for start, values in records:
            if len(values) != len(header):
                raise LabelsError(
                    f"{path}, line {start}: the row has {len(values)} fields but the header has {len(header)}; "
                    "check its quoting and commas"
                )
            labels.append(_label(path, start, dict(zip(header, values)), columns))
    except InputFileError as exc:
        raise LabelsError(f"{path}, {exc.detail}") from None
    if not labels:
        raise LabelsError(f"{path}: no ratings under the header; add one row per rated item")
    return labels


def _columns(path: Path, header: Sequence[str] | None) -> dict[str, str]:
    """Canonical column name -> the header's spelling, accepting the results' names (transcript_id...)."""
    expected = "transcript, turn, criterion, score and optionally rater"
    if not header:
        raise LabelsError(f"{path}, line 1: empty file; the first line must be a header naming {expected}")
    written = [name.strip().lower() for name in header]
    repeated = sorted({name for name in written if name and written.count(name) > 1})
    if repeated:
        raise LabelsError(f"{path}, line 1: the header names {', '.join(repeated)} more than once; keep one column")
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


def _label(path: Path, line: int, row: Mapping[str, str], columns: dict[str, str]) -> HumanLabel:
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
            f"{path}, line {line}: turn {_shown(turn)!r} is not a turn index; write the 0-based index of the turn "
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


def _shown(value: str) -> str:
    """A cell as quoted in a message: a long one (a whole paragraph in the wrong column) is cut."""
    return value if len(value) <= 40 else value[:40] + "..."


# --- reading a label against the run's rubrics -------------------------------------------------------


def rate_labels(
    labels: Sequence[HumanLabel], rubrics: Mapping[str, Rubric], path: Path
) -> dict[tuple[str, str], list[tuple[HumanLabel, Rating]]]:
    """Each label read on the scale of the criterion it rates, grouped by (rubric id, criterion id).

    Checked row by row in file order, so the first bad row is the one reported.
    """
    grouped: dict[tuple[str, str], list[tuple[HumanLabel, Rating]]] = defaultdict(list)
    seen: dict[RatingKey, int] = {}
    for label in labels:
        rubric_id, criterion = criterion_for(label, rubrics, path)
        _refuse_repeat(label, (rubric_id, label.transcript_id, label.turn_index, criterion.id, label.rater), seen, path)
        grouped[(rubric_id, criterion.id)].append((label, human_rating(label, criterion, path)))
    return grouped


def criterion_for(label: HumanLabel, rubrics: Mapping[str, Rubric], path: Path) -> tuple[str, Criterion]:
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


def category_rating(label: str, scale: CategoricalScale) -> Rating:
    """A category as a rating: its label is the code; its value, if every category has one, the number."""
    value = scale.value_of(label) if all(c.value is not None for c in scale.categories) else None
    return Rating(label, value)


def human_rating(label: HumanLabel, criterion: Criterion, path: Path) -> Rating:
    """A label's score read on the criterion's scale; a category may be given by its label or its value."""
    scale = criterion.scale
    where = f"{path}, line {label.line}: score {_shown(label.score)!r} for {criterion.id}"
    fix = f"write {_scale_hint(criterion)}"
    if isinstance(scale, CategoricalScale):
        for category in scale.categories:
            if label.score.lower() == category.label.lower() or _same_number(label.score, category.value):
                return category_rating(category.label, scale)
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
