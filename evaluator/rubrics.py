"""Load and validate YAML rubrics, and hash what can change a judgment.

A rubric that does not validate is refused whole, with its file, the field path and what is wrong,
before anything is sent to a judge: a typo in a rubric must never cost a batch.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml
from pydantic import ValidationError

from evaluator.checks import check_fits
from evaluator.errors import EvaluatorError
from evaluator.files import MAX_CONFIG_BYTES, BoundedLoader, InputFileError, bad_character, load_yaml, read_text
from evaluator.markers import MARKERS
from evaluator.models import CategoricalScale, CountScale, Criterion, Rubric

RUBRIC_SUFFIXES = (".yaml", ".yml")


class _Loader(BoundedLoader):
    """Bounded in depth and alias expansion (see evaluator.files), with YAML 1.2 booleans: only true/false.
    Under PyYAML's YAML 1.1 default, the keys `yes:` and `no:` of a binary scale (and a label such as
    `no`) would silently turn into True and False."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class RubricError(EvaluatorError, ValueError):
    """A rubric file that cannot be used; the message names the file, the field and what to fix."""

    def __init__(self, path: Path | str, problems: Sequence[str]) -> None:
        self.path = str(path)
        self.problems = list(problems)
        listed = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{self.path}: invalid rubric\n{listed}")


def digest(data: Any) -> str:
    """A short, stable hash of JSON-able data (key order does not matter)."""
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _field_path(loc: Iterable[Any], data: Any) -> str:
    """`criteria.2.scale.anchors` reads better as `criteria[2] (id: x).scale.anchors`."""
    parts: list[str] = []
    node = data
    for piece in loc:
        if isinstance(piece, int):
            label = f"[{piece}]"
            if isinstance(node, list) and piece < len(node):
                node = node[piece]
                if isinstance(node, dict) and "id" in node:
                    label += f" (id: {node['id']})"
            else:
                node = None
            parts.append(label)
        else:
            node = node.get(piece) if isinstance(node, dict) else None
            parts.append(("." if parts else "") + str(piece))
    return "".join(parts) or "(top level)"


def _pydantic_problems(exc: ValidationError, data: Any) -> list[str]:
    problems = []
    for error in exc.errors():
        loc = [p for p in error["loc"] if p not in ("binary", "likert", "categorical", "count")]
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{_field_path(loc, data)}: {message}")
    return problems


MAX_SCALE_LEVELS = 1001  # a likert or count scale's verdicts are listed in every request's schema


def _bad_values(data: Any) -> list[str]:
    """Values no later stage can carry, found before validation: strings holding NUL, control characters
    or lone surrogates (YAML escapes such as "\\ud800" make them), numbers that are not finite (`.inf`,
    `.nan`), and scales with more levels than MAX_SCALE_LEVELS, whose list of verdicts would fill memory."""
    problems: list[str] = []
    pending: list[tuple[Any, list[Any]]] = [(data, [])]
    while pending:
        node, loc = pending.pop()
        if isinstance(node, dict):
            pending += [(key, loc) for key in node] + [(value, [*loc, key]) for key, value in node.items()]
            problems += _oversized_scale(node, loc, data)
        elif isinstance(node, list):
            pending += [(item, [*loc, n]) for n, item in enumerate(node)]
        elif isinstance(node, str) and (found := bad_character(node)) is not None:
            problems.append(f"{_field_path(loc, data)}: holds {found[1]}")
        elif isinstance(node, float) and not math.isfinite(node):
            problems.append(f"{_field_path(loc, data)}: {node} is not a finite number; write a number")
    return sorted(set(problems))


def _oversized_scale(node: dict[Any, Any], loc: list[Any], data: Any) -> list[str]:
    """A likert or count scale with more than MAX_SCALE_LEVELS verdicts (`max: 1000000000`)."""
    low, high = node.get("min", 0), node.get("max")
    if node.get("type") not in ("likert", "count") or not all(type(v) is int for v in (low, high)):
        return []
    if high - low + 1 <= MAX_SCALE_LEVELS:
        return []
    fix = "use fewer levels" if node["type"] == "likert" else "leave max out if a count has no upper bound"
    return [
        f"{_field_path(loc, data)}: {low}..{high} has {high - low + 1:,} levels, more than {MAX_SCALE_LEVELS:,}; {fix}"
    ]


def _cross_checks(rubric: Rubric, base: Path) -> list[str]:
    """What pydantic cannot see field by field: references between criteria, checks, markers, files."""
    problems: list[str] = []
    ids = [c.id for c in rubric.criteria]
    for duplicate in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(f"criteria: id {duplicate!r} is used more than once")
    by_id = {c.id: c for c in rubric.criteria}
    for index, criterion in enumerate(rubric.criteria):
        where = f"criteria[{index}] (id: {criterion.id})"
        problems += _applies_when_problems(criterion, by_id, where)
        if criterion.check is not None:
            misfit = check_fits(criterion.check, criterion)
            if misfit:
                problems.append(f"{where}.check: {misfit}")
        allowed = _allowed_verdicts(criterion)
        for n, example in enumerate(criterion.examples):
            if allowed is not None and example.verdict not in allowed:
                problems.append(f"{where}.examples[{n}].verdict: {example.verdict!r} is not on the scale {allowed}")
    problems += _cycle_problems(rubric)
    if rubric.template is not None:
        template = base / rubric.template
        if Path(rubric.template).is_absolute() or ".." in Path(rubric.template).parts:
            problems.append(f"template: {rubric.template!r} must name a file in the rubric's folder (or below it)")
        elif not os.path.lexists(template) or template.is_dir():  # a FIFO is refused on reading
            problems.append(f"template: file {rubric.template!r} not found next to the rubric ({template})")
    return problems


def _allowed_verdicts(criterion: Criterion) -> list[int | str] | None:
    scale = criterion.scale
    if isinstance(scale, CountScale) and scale.max is None:
        return None
    return list(scale.allowed() or [])


def _applies_when_problems(criterion: Criterion, by_id: dict[str, Criterion], where: str) -> list[str]:
    rule = criterion.applies_when
    if rule is None:
        return []
    problems = []
    if rule.previous_patient_turn_marker is not None and rule.previous_patient_turn_marker not in MARKERS:
        problems.append(
            f"{where}.applies_when.previous_patient_turn_marker: unknown marker "
            f"{rule.previous_patient_turn_marker!r}; known: {', '.join(sorted(MARKERS))}"
        )
    if rule.criterion is not None:
        other = by_id.get(rule.criterion.criterion)
        if other is None:
            problems.append(f"{where}.applies_when.criterion: no criterion {rule.criterion.criterion!r} in this rubric")
        elif other.id == criterion.id:
            problems.append(f"{where}.applies_when.criterion: a criterion cannot depend on itself")
        else:
            allowed = _allowed_verdicts(other)
            wrong = [v for v in rule.criterion.is_ if allowed is not None and v not in allowed]
            if wrong:
                problems.append(
                    f"{where}.applies_when.criterion.is: {wrong} not on the scale of {other.id!r} {allowed}"
                )
    return problems


def _cycle_problems(rubric: Rubric) -> list[str]:
    try:
        criterion_stages(rubric)
    except RubricError as exc:
        return exc.problems
    return []


def criterion_stages(rubric: Rubric) -> list[list[Criterion]]:
    """Criteria grouped so that each one's verdict condition is judged in an earlier stage."""
    remaining = {c.id: c for c in rubric.criteria}
    done: set[str] = set()
    stages: list[list[Criterion]] = []
    while remaining:
        ready = [
            c
            for c in remaining.values()
            if c.applies_when is None or c.applies_when.criterion is None or c.applies_when.criterion.criterion in done
        ]
        if not ready:
            raise RubricError(
                rubric.source, [f"applies_when: criteria {sorted(remaining)} depend on each other in a cycle"]
            )
        stages.append(ready)
        for c in ready:
            done.add(c.id)
            del remaining[c.id]
    return stages


def criterion_hash(rubric: Rubric, criterion: Criterion) -> str:
    """Changes exactly when this criterion's judgments can change: its own fields or the rubric's framing."""
    framing = rubric.model_dump(mode="json", include={"id", "title", "description", "context", "template"})
    return digest({"rubric": framing, "criterion": criterion.model_dump(mode="json")})


def load_rubric(path: Path) -> Rubric:
    """Read one YAML rubric; raise RubricError naming the file and every problem found."""
    try:
        data = load_yaml(path, read_text(path, MAX_CONFIG_BYTES), _Loader)
    except InputFileError as exc:
        raise RubricError(path, [exc.detail]) from None
    problems = _bad_values(data)
    if problems:
        raise RubricError(path, problems)
    if not isinstance(data, dict):
        raise RubricError(path, ["expected a mapping with id, title and criteria at the top level"])
    try:
        rubric = Rubric.model_validate(data)
    except ValidationError as exc:
        raise RubricError(path, _pydantic_problems(exc, data)) from None
    rubric.source = str(path)
    problems = _cross_checks(rubric, path.parent)
    if problems:
        raise RubricError(path, problems)
    rubric.hash = digest(rubric.model_dump(mode="json"))
    rubric.criterion_hashes = {c.id: criterion_hash(rubric, c) for c in rubric.criteria}
    return rubric


def bundled_rubrics_dir() -> Path:
    """rubrics/ of a source checkout, or the copy packed into the wheel (evaluator/_bundled/rubrics)."""
    packed = Path(str(resources.files("evaluator"))) / "_bundled" / "rubrics"
    return packed if packed.is_dir() else Path(__file__).resolve().parent.parent / "rubrics"


LOCAL_RUBRICS = Path("rubrics")


def find_rubric(name: str) -> Path | None:
    """A rubric named by id (`pacing`): ./rubrics/ first, so a local edit wins, then the installed ones."""
    for folder in (LOCAL_RUBRICS, bundled_rubrics_dir()):
        for suffix in RUBRIC_SUFFIXES:
            candidate = folder / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def discover_rubrics(paths: Sequence[Path]) -> list[Path]:
    """Expand folders into their YAML files, sorted, so a run's rubric order is reproducible."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix in RUBRIC_SUFFIXES and not p.name.startswith("."))
        else:
            found.append(path)
    return found


def load_rubrics(paths: Sequence[Path]) -> list[Rubric]:
    """All rubrics or none: one invalid file stops the run before any money is spent."""
    files = discover_rubrics(paths)
    if not files:
        raise RubricError(", ".join(map(str, paths)) or "(none)", ["no rubric files (*.yaml, *.yml) found"])
    rubrics: list[Rubric] = []
    seen: dict[str, str] = {}
    for file in files:
        rubric = load_rubric(file)
        if rubric.id in seen:
            raise RubricError(file, [f"id: {rubric.id!r} is already used by {seen[rubric.id]}"])
        seen[rubric.id] = str(file)
        rubrics.append(rubric)
    return rubrics


def scale_summary(criterion: Criterion) -> str:
    """One line describing a scale, for prompts, tables and `validate` output."""
    scale = criterion.scale
    if isinstance(scale, CategoricalScale):
        return "one of " + ", ".join(scale.allowed())
    if isinstance(scale, CountScale):
        return f"count of {scale.unit}" + (f" (0..{scale.max})" if scale.max is not None else "")
    if scale.type == "binary":
        return "yes (1) / no (0)"
    return f"{scale.min}..{scale.max}"
