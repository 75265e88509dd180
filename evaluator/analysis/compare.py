"""Compare two runs item by item: which judgments moved, by how much, and whether an edit explains it.

A prompt engineer who edits one criterion needs to see that criterion's items move and every other
criterion stay put. Each criterion's definition is compared through its hash in the two manifests'
rubric snapshots, so a criterion that moved although its definition did not is flagged: that is
judge nondeterminism, a template or judge change, or an edit upstream, never the edit's effect.
Means and differences are over paired items (ok in both runs), and their interval resamples whole
sessions, since the turns of one session are not independent.

Pure computation on two opened runs (results.RunData, samples already folded there); the terminal and
compare.md are drawn from the Comparison by evaluator.views.compare.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Any, Literal

from evaluator.analysis.stats import DEFAULT_RESAMPLES, Estimate, cluster_bootstrap_difference
from evaluator.models import Criterion, Judgment, Rubric, RunManifest, Status
from evaluator.results import RunData, open_run, stream_items
from evaluator.rubrics import criterion_hash

ORDINAL_SCALES = ("likert", "count")
FRAMING_FIELDS = {"id", "title", "description", "context", "template"}
# Judge settings that change how calls are sent, not what the judge answers.
OPERATIONAL_JUDGE_FIELDS = {"base_url", "api_key_env", "rpm", "tpm", "cache", "transport_attempts"}

ItemKey = tuple[str, int]  # (transcript id, turn index) within one criterion
CriterionKey = tuple[str, str]  # (rubric id, criterion id)
FindingKind = Literal["transcripts", "rubric", "edited", "template", "judge", "moved_without_edit"]


@dataclass(frozen=True)
class Verdict:
    """One item of one run, its samples already folded: what the two runs are matched on."""

    status: Status
    score: float | None
    verdict: float | str | None
    rationale: str


@dataclass(frozen=True)
class RunInfo:
    """Which run a side of the comparison is; the manifest is kept so views can name its judge."""

    run_dir: Path
    run_id: str
    manifest: RunManifest
    transcripts: tuple[str, ...]


@dataclass(frozen=True)
class CriterionEdit:
    """How a criterion's definition differs between the runs; a hash of None: absent from that run."""

    hash_a: str | None
    hash_b: str | None
    fields: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.hash_a is None:
            return "added in run B"
        if self.hash_b is None:
            return "removed in run B"
        return (", ".join(self.fields) or "definition") + " edited"


@dataclass(frozen=True)
class CriterionComparison:
    rubric_id: str
    criterion_id: str
    paired: int
    only_a: int
    only_b: int
    status_changes: dict[str, int]
    mean_a: float | None
    mean_b: float | None
    difference: Estimate | None
    exact: float | None
    kappa: float | None
    kappa_weights: Literal["quadratic"] | None
    kappa_note: str
    changed: int
    edit: CriterionEdit | None

    @property
    def edited(self) -> bool:
        return self.edit is not None

    @property
    def moved(self) -> bool:
        """Verdicts or statuses differ on items both runs judged (items in one run only do not count)."""
        return self.changed > 0 or bool(self.status_changes)


@dataclass(frozen=True)
class ChangedItem:
    rubric_id: str
    criterion_id: str
    transcript_id: str
    turn_index: int
    verdict_a: float | str | None
    verdict_b: float | str | None
    magnitude: float
    rationale_a: str
    rationale_b: str


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    message: str
    rubric_id: str | None = None
    criterion_id: str | None = None


@dataclass
class Comparison:
    run_a: RunInfo
    run_b: RunInfo
    criteria: list[CriterionComparison]
    changed: list[ChangedItem]
    warnings: list[Finding]
    transcripts_only_a: list[str]
    transcripts_only_b: list[str]

    def criterion(self, rubric_id: str, criterion_id: str) -> CriterionComparison:
        return next(c for c in self.criteria if (c.rubric_id, c.criterion_id) == (rubric_id, criterion_id))

    def rubric_ids(self) -> list[str]:
        return list(dict.fromkeys(c.rubric_id for c in self.criteria))


# --- reading a run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Run:
    info: RunInfo
    manifest: RunManifest
    rubrics: dict[str, Rubric]
    items: dict[CriterionKey, dict[ItemKey, Verdict]]


def _index(data: RunData) -> _Run:
    """Index the run's items by criterion and item, read one item at a time (results.stream_items): a
    folded item's reason is its ok samples' distinct rationales in sample order, gathered as they pass."""
    rationales: dict[tuple[str, str], list[str]] = defaultdict(list)

    def gather(j: Judgment) -> None:
        seen = rationales[j.rubric_id, j.key.rsplit("/", 1)[0]]
        if j.status == "ok" and j.rationale not in seen:
            seen.append(j.rationale)

    items: dict[CriterionKey, dict[ItemKey, Verdict]] = defaultdict(dict)
    for record in stream_items(data, seen=gather if data.folded else None):
        if isinstance(record, Judgment):
            rationale = record.rationale
        else:
            rationale = " / ".join(rationales.pop((record.rubric_id, record.key), []))
        items[record.rubric_id, record.criterion_id][record.transcript_id, record.turn_index] = Verdict(
            record.status, record.score, record.verdict, rationale
        )
    manifest = data.manifest
    info = RunInfo(data.run_dir, manifest.run_id, manifest, tuple(manifest.transcripts))
    return _Run(info, manifest, data.rubrics, dict(items))


# --- definitions: what was edited ---------------------------------------------------------------------


def _differing_fields(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two definitions differ, down into mappings (scale.anchors.3) but not into
    lists: a changed list of examples reads better as `examples` than as a list of indices."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = list(a) + [k for k in b if k not in a]
        return [p for k in keys for p in _differing_fields(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else str(k))]
    return [] if a == b else [prefix]


def _edit(rubric_a: Rubric | None, rubric_b: Rubric | None, criterion_id: str) -> CriterionEdit | None:
    crit_a = _criterion_or_none(rubric_a, criterion_id)
    crit_b = _criterion_or_none(rubric_b, criterion_id)
    hash_a = criterion_hash(rubric_a, crit_a) if rubric_a and crit_a else None
    hash_b = criterion_hash(rubric_b, crit_b) if rubric_b and crit_b else None
    if hash_a == hash_b:
        return None
    if rubric_a is None or rubric_b is None or crit_a is None or crit_b is None:
        return CriterionEdit(hash_a, hash_b)
    framing_a, framing_b = (r.model_dump(mode="json", include=FRAMING_FIELDS) for r in (rubric_a, rubric_b))
    framing = _differing_fields(framing_a, framing_b)
    own = _differing_fields(crit_a.model_dump(mode="json"), crit_b.model_dump(mode="json"))
    return CriterionEdit(hash_a, hash_b, tuple(own + [f"rubric {f}" for f in framing]))


def _criterion_or_none(rubric: Rubric | None, criterion_id: str) -> Criterion | None:
    return next((c for c in rubric.criteria if c.id == criterion_id), None) if rubric else None


def _criterion_keys(run_a: _Run, run_b: _Run) -> list[CriterionKey]:
    """Every criterion of either run, in run A's rubric order, then what only run B has."""
    keys = [(rid, c.id) for run in (run_a, run_b) for rid, r in run.rubrics.items() for c in r.criteria]
    return list(dict.fromkeys(keys))


# --- statistics per criterion ---------------------------------------------------------------------------


def _scale_type(run_a: _Run, run_b: _Run, key: CriterionKey) -> set[str]:
    rid, cid = key
    found = (_criterion_or_none(run.rubrics.get(rid), cid) for run in (run_a, run_b))
    return {c.scale.type for c in found if c is not None}


def kappa_between(
    a: Sequence[float | str], b: Sequence[float | str], scale_type: str
) -> tuple[float | None, Literal["quadratic"] | None, str]:
    """Cohen's kappa, quadratic-weighted on ordinal scales so 4 vs 5 counts less than 1 vs 5.

    Undefined (None, with the reason) where chance agreement is certain: both runs gave one and the
    same verdict to every item. sklearn weights by position in `labels`, so ordinal labels are the
    whole range of integers between the extremes, not only the values seen.
    """
    if not a:
        return None, None, "no paired items"
    if len(set(a) | set(b)) == 1:
        return None, None, f"undefined: both runs gave every paired item the verdict {a[0]!r}"
    if scale_type not in ORDINAL_SCALES:
        return cohen_kappa(a, b), None, ""
    if not all(float(v).is_integer() for v in (*a, *b)):
        return None, None, "undefined: folded sample means are not whole verdicts"
    ints_a, ints_b = [int(float(v)) for v in a], [int(float(v)) for v in b]
    labels = list(range(min(ints_a + ints_b), max(ints_a + ints_b) + 1))
    return cohen_kappa(ints_a, ints_b, labels=labels, quadratic=True), "quadratic", ""


def cohen_kappa(
    a: Sequence[float | str], b: Sequence[float | str], labels: Sequence[int] | None = None, quadratic: bool = False
) -> float:
    """Cohen's kappa as sklearn's cohen_kappa_score computes it, 1 - sum(w * observed) / sum(w * chance),
    in plain Python: importing sklearn costs over a second, and `run` compares consecutive runs for the
    run index. Quadratic weights are by position in `labels`; nan where chance agreement is certain."""
    levels = list(labels) if labels is not None else list(dict.fromkeys([*a, *b]))
    position = {level: i for i, level in enumerate(levels)}
    size, n = len(levels), len(a)
    observed = [[0.0] * size for _ in range(size)]
    for x, y in zip(a, b, strict=True):
        observed[position[x]][position[y]] += 1
    rows = [sum(row) for row in observed]
    columns = [sum(row[j] for row in observed) for j in range(size)]
    disagreement = chance = 0.0
    for i in range(size):
        for j in range(size):
            weight = float((i - j) ** 2) if quadratic else float(i != j)
            disagreement += weight * observed[i][j]
            chance += weight * rows[i] * columns[j] / n
    return 1 - disagreement / chance if chance else float("nan")


def _magnitude(a: Verdict, b: Verdict) -> float:
    """How far a verdict moved: the score difference, or 1 for a changed label."""
    if isinstance(a.verdict, str) or isinstance(b.verdict, str) or a.score is None or b.score is None:
        return 1.0
    return abs(b.score - a.score)


def _compare_criterion(
    key: CriterionKey,
    items_a: Mapping[ItemKey, Verdict],
    items_b: Mapping[ItemKey, Verdict],
    scale_types: set[str],
    edit: CriterionEdit | None,
    seed: int,
    resamples: int,
) -> tuple[CriterionComparison, list[ChangedItem]]:
    shared = [k for k in items_a if k in items_b]
    paired = [k for k in shared if items_a[k].status == "ok" and items_b[k].status == "ok"]
    status_changes = Counter(
        f"{items_a[k].status}→{items_b[k].status}" for k in shared if items_a[k].status != items_b[k].status
    )
    pairs = _score_pairs(paired, items_a, items_b)
    scores = [pair for session in pairs.values() for pair in session]
    verdicts_a = [v for k in paired if (v := items_a[k].verdict) is not None]  # ok items always have one
    verdicts_b = [v for k in paired if (v := items_b[k].verdict) is not None]
    if len(scale_types) == 1:
        kappa, weights, note = kappa_between(verdicts_a, verdicts_b, next(iter(scale_types)))
    else:
        kappa, weights, note = None, None, "undefined: the scale type differs between the runs"
    changed = [
        _changed_item(key, k, items_a[k], items_b[k]) for k in paired if items_a[k].verdict != items_b[k].verdict
    ]
    comparison = CriterionComparison(
        rubric_id=key[0],
        criterion_id=key[1],
        paired=len(paired),
        only_a=sum(k not in items_b for k in items_a),
        only_b=sum(k not in items_a for k in items_b),
        status_changes=dict(sorted(status_changes.items())),
        mean_a=mean(a for a, _ in scores) if scores else None,
        mean_b=mean(b for _, b in scores) if scores else None,
        difference=cluster_bootstrap_difference(pairs, resamples=resamples, seed=seed),
        exact=sum(a == b for a, b in zip(verdicts_a, verdicts_b, strict=True)) / len(paired) if paired else None,
        kappa=kappa,
        kappa_weights=weights,
        kappa_note=note,
        changed=len(changed),
        edit=edit,
    )
    return comparison, changed


def _score_pairs(
    paired: list[ItemKey], items_a: Mapping[ItemKey, Verdict], items_b: Mapping[ItemKey, Verdict]
) -> dict[str, list[tuple[float, float]]]:
    """(A, B) scores per session, for the cluster bootstrap; labels without a value have no score."""
    pairs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for k in paired:
        a, b = items_a[k].score, items_b[k].score
        if a is not None and b is not None:
            pairs[k[0]].append((a, b))
    return dict(pairs)


def _changed_item(key: CriterionKey, item: ItemKey, a: Verdict, b: Verdict) -> ChangedItem:
    rubric_id, criterion_id = key
    transcript_id, turn_index = item
    return ChangedItem(
        rubric_id,
        criterion_id,
        transcript_id,
        turn_index,
        a.verdict,
        b.verdict,
        _magnitude(a, b),
        a.rationale,
        b.rationale,
    )


# --- warnings ---------------------------------------------------------------------------------------------


def _judge_setup(manifest: RunManifest) -> dict[str, Any]:
    """Everything about the judge that can change a verdict: its configuration, mode, samples, version."""
    setup = {k: v for k, v in manifest.judge.items() if k not in OPERATIONAL_JUDGE_FIELDS}
    return setup | {
        "mode": manifest.mode,
        "samples": manifest.samples,
        "aggregate": manifest.aggregate,
        "package_version": manifest.package_version,
    }


def _setup_findings(run_a: _Run, run_b: _Run) -> list[Finding]:
    findings = []
    setup_a, setup_b = _judge_setup(run_a.manifest), _judge_setup(run_b.manifest)
    differing = [k for k in dict.fromkeys([*setup_a, *setup_b]) if setup_a.get(k) != setup_b.get(k)]
    if differing:
        changes = "; ".join(f"{k} {setup_a.get(k)!r} → {setup_b.get(k)!r}" for k in differing)
        findings.append(Finding("judge", f"the judge differs between the runs: {changes}"))
    for rid in dict.fromkeys([*run_a.rubrics, *run_b.rubrics]):
        if rid not in run_a.rubrics or rid not in run_b.rubrics:
            where = "A" if rid in run_a.rubrics else "B"
            findings.append(Finding("rubric", f"rubric {rid} is only in run {where}; its items are not compared", rid))
            continue
        template_a, template_b = run_a.manifest.template_hashes.get(rid), run_b.manifest.template_hashes.get(rid)
        if template_a != template_b:
            findings.append(
                Finding(
                    "template",
                    f"the prompt template of rubric {rid} changed ({template_a} → {template_b}): "
                    "every criterion of it was asked differently",
                    rid,
                )
            )
    return findings


def _transcript_findings(only_a: list[str], only_b: list[str]) -> list[Finding]:
    return [
        Finding("transcripts", f"{len(ids)} transcript(s) only in run {run}, not compared: {', '.join(ids)}")
        for run, ids in (("A", only_a), ("B", only_b))
        if ids
    ]


def _upstream_edits(rubric: Rubric | None, criterion_id: str, edited: set[CriterionKey]) -> list[str]:
    """Edited criteria up this one's applies_when chain: editing one changes where the next applies.
    Rubrics with a cycle are refused on load, so the walk ends."""
    found: list[str] = []
    current = _criterion_or_none(rubric, criterion_id)
    while rubric is not None and current is not None and current.applies_when and current.applies_when.criterion:
        upstream = current.applies_when.criterion.criterion
        if (rubric.id, upstream) in edited:
            found.append(upstream)
        current = _criterion_or_none(rubric, upstream)
    return found


def _criterion_findings(criteria: list[CriterionComparison], setup: list[Finding], run_b: _Run) -> list[Finding]:
    whole_rubric = {f.rubric_id for f in setup if f.kind == "rubric"}
    edited = {(c.rubric_id, c.criterion_id) for c in criteria if c.edited}
    findings = [
        Finding(
            "edited",
            f"criterion {c.criterion_id} of rubric {c.rubric_id} changed: {c.edit.describe()}",
            c.rubric_id,
            c.criterion_id,
        )
        for c in criteria
        if c.edit is not None and c.rubric_id not in whole_rubric
    ]
    for c in criteria:
        if c.edited or not c.moved:
            continue
        cause = _moved_cause(c, setup, _upstream_edits(run_b.rubrics.get(c.rubric_id), c.criterion_id, edited))
        statuses = ", ".join(f"{n} {change}" for change, n in c.status_changes.items())
        findings.append(
            Finding(
                "moved_without_edit",
                f"criterion {c.criterion_id} of rubric {c.rubric_id} moved without an edit: {c.changed} verdict(s) changed"
                + (f", status changes {statuses}" if statuses else "")
                + f", though its definition is the same in both runs; cause: {cause}",
                c.rubric_id,
                c.criterion_id,
            )
        )
    return findings


def _moved_cause(c: CriterionComparison, setup: list[Finding], upstream: list[str]) -> str:
    if upstream:
        return f"it applies only after criterion {', '.join(upstream)}, which was edited"
    if any(f.kind == "template" and f.rubric_id == c.rubric_id for f in setup):
        return "the prompt template changed"
    if any(f.kind == "judge" for f in setup):
        return "the judge changed"
    return "judge nondeterminism (nothing recorded in the manifests differs), not a rubric edit"


# --- the comparison -------------------------------------------------------------------------------------


def compare_runs(run_a: Path, run_b: Path, seed: int = 0, resamples: int = DEFAULT_RESAMPLES) -> Comparison:
    """Open both run folders and compare them (see `compare`)."""
    return compare(open_run(run_a), open_run(run_b), seed=seed, resamples=resamples)


def compare(data_a: RunData, data_b: RunData, seed: int = 0, resamples: int = DEFAULT_RESAMPLES) -> Comparison:
    """Match the items of two runs by rubric, transcript, turn and criterion, and say what moved and why."""
    a, b = _index(data_a), _index(data_b)
    criteria: list[CriterionComparison] = []
    changed: list[ChangedItem] = []
    for key in _criterion_keys(a, b):
        edit = _edit(a.rubrics.get(key[0]), b.rubrics.get(key[0]), key[1])
        comparison, moved = _compare_criterion(
            key, a.items.get(key, {}), b.items.get(key, {}), _scale_type(a, b, key), edit, seed, resamples
        )
        criteria.append(comparison)
        changed += moved
    changed.sort(key=lambda c: (-c.magnitude, c.rubric_id, c.criterion_id, c.transcript_id, c.turn_index))
    only_a = [t for t in a.info.transcripts if t not in b.info.transcripts]
    only_b = [t for t in b.info.transcripts if t not in a.info.transcripts]
    setup = _setup_findings(a, b)
    warnings = _transcript_findings(only_a, only_b) + setup + _criterion_findings(criteria, setup, b)
    return Comparison(a.info, b.info, criteria, changed, warnings, only_a, only_b)
