"""Turn transcripts x rubrics into work: which therapist turns, which criteria, in which order.

Applicability is decided here without a judge wherever a rule can decide it (patterns or a named
marker on the patient's previous turn). Where a criterion depends on another criterion's verdict for
the same turn, the planner orders the two so the prerequisite is judged first and the runner asks
`applicability_after` once its judgment is in. A cheap rule prefilters for recall, a judge confirms
for precision.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from itertools import groupby
from typing import Protocol

from evaluator import patterns
from evaluator.errors import EvaluatorError
from evaluator.markers import MARKERS
from evaluator.models import Criterion, Item, JudgeMode, Rubric, Status, Subset, Transcript, Turn, item_key
from evaluator.rubrics import RubricError, criterion_stages
from evaluator.transcript_shelf import TranscriptShelf

MATCH_CACHE_SIZE = 1 << 18


@dataclass(frozen=True)
class JudgeRequest:
    """One item and everything needed to judge it without the prompt (the rules judge reads turns)."""

    item: Item
    rubric: Rubric
    criterion: Criterion
    transcript: Transcript
    turn: Turn


@dataclass(frozen=True)
class TurnPlan:
    """All criteria of one rubric on one therapist turn, in stages: stage n depends only on stages < n."""

    rubric: Rubric
    transcript: Transcript
    turn: Turn
    stages: tuple[tuple[Criterion, ...], ...]
    samples: int = 1

    @property
    def n_items(self) -> int:
        return sum(len(stage) for stage in self.stages) * self.samples

    def item(self, criterion: Criterion, sample: int = 0) -> Item:
        return Item(
            rubric_id=self.rubric.id,
            transcript_id=self.transcript.id,
            turn_index=self.turn.index,
            criterion_id=criterion.id,
            sample=sample,
        )

    def request(self, criterion: Criterion, sample: int = 0) -> JudgeRequest:
        return JudgeRequest(self.item(criterion, sample), self.rubric, criterion, self.transcript, self.turn)

    def items(self) -> list[Item]:
        return [
            self.item(criterion, sample)
            for stage in self.stages
            for criterion in stage
            for sample in range(self.samples)
        ]


_matches: dict[tuple[tuple[str, ...], str], bool] = {}


def _matches_any(rule_patterns: tuple[str, ...], text: str) -> bool:
    """Searched once per patient turn: planning checks every pattern on every turn (so a pattern that
    times out stops the run before it starts) and the judging that follows reads the answer from here."""
    key = (rule_patterns, text)
    if key not in _matches:
        if len(_matches) >= MATCH_CACHE_SIZE:
            _matches.clear()
        _matches[key] = any(patterns.search(p, text) for p in rule_patterns)
    return _matches[key]


def static_applicability(criterion: Criterion, transcript: Transcript, turn: Turn) -> str | None:
    """None if the rules say the criterion applies to this turn, else the reason it does not."""
    rule = criterion.applies_when
    if rule is None or (rule.previous_patient_turn_matches is None and rule.previous_patient_turn_marker is None):
        return None
    previous = transcript.previous_patient_turn(turn.index)
    if previous is None:
        return "no patient turn before this therapist turn"
    rule_patterns = rule.previous_patient_turn_matches
    if rule_patterns is not None and not _matches_any(tuple(rule_patterns), previous.text):
        return "the patient's previous turn matches none of the applies_when patterns"
    marker = rule.previous_patient_turn_marker
    if marker is not None and MARKERS[marker](previous.text) is None:
        return f"no {marker} in the patient's previous turn"
    return None


class Verdicted(Protocol):
    """What a dependent criterion reads of its prerequisite's judgment: a Judgment, or the compact
    store.PriorVerdict a run keeps instead of it."""

    @property
    def status(self) -> Status: ...

    @property
    def verdict(self) -> int | float | str | None: ...


def prerequisites(rubrics: Iterable[Rubric]) -> set[tuple[str, str]]:
    """(rubric id, criterion id) of every criterion whose verdict another criterion's applies_when reads."""
    return {
        (rubric.id, c.applies_when.criterion.criterion)
        for rubric in rubrics
        for c in rubric.criteria
        if c.applies_when is not None and c.applies_when.criterion is not None
    }


def applicability_after(criterion: Criterion, prerequisite: Verdicted | None) -> tuple[Status | None, str | None]:
    """Decide a verdict condition once the prerequisite is judged: (None, None) when it applies,
    else the status to record and why. A prerequisite that was not scored cannot decide anything,
    so the dependent item is recorded unscored with that reason: neither judged nor graded."""
    rule = criterion.applies_when
    if rule is None or rule.criterion is None:
        return None, None
    wanted = rule.criterion.criterion
    if prerequisite is None or prerequisite.status == "not_applicable":
        return "not_applicable", f"{wanted} does not apply to this turn"
    if prerequisite.status != "ok":
        return "unscored", f"depends on {wanted}, which is {prerequisite.status}"
    if prerequisite.verdict in rule.criterion.is_:
        return None, None
    return "not_applicable", f"{wanted} was judged {prerequisite.verdict!r}, not one of {rule.criterion.is_}"


def decided_without_judge(
    plan: TurnPlan, criterion: Criterion, prior: Callable[[str], Verdicted | None]
) -> tuple[Status | None, str | None]:
    """What an item records without asking the judge, (None, None) when the judge must be asked: the rules'
    applicability first, then the prerequisite's verdict, looked up by its item key with `prior`."""
    reason = static_applicability(criterion, plan.transcript, plan.turn)
    if reason is not None:
        return "not_applicable", reason
    rule = criterion.applies_when
    if rule is None or rule.criterion is None:
        return None, None
    prerequisite = item_key(plan.rubric.id, plan.transcript.id, plan.turn.index, rule.criterion.criterion)
    return applicability_after(criterion, prior(prerequisite))


class TurnPlans:
    """Every therapist turn of every transcript, for every rubric, in a reproducible order: made one at
    a time as a run reaches them, so what a run holds does not grow with its size. Made, the rubrics'
    patterns are checked on every turn and the items counted, before anything is judged.

    The transcripts may be a transcript_shelf, which parses a transcript each time it is reached: the
    check reads each once for all rubrics, and judging once per rubric."""

    def __init__(self, transcripts: Sequence[Transcript], rubrics: Sequence[Rubric], samples: int = 1) -> None:
        self.transcripts, self.samples = transcripts, samples
        self._stages = [(rubric, tuple(tuple(stage) for stage in criterion_stages(rubric))) for rubric in rubrics]
        self.n_items = 0
        self.rubric_ids: set[str] = set()
        failure: tuple[int, RubricError] | None = None
        for transcript in transcripts:
            turns = transcript.therapist_turns()
            for number, (rubric, stages) in enumerate(self._stages):
                if failure is not None and number >= failure[0]:
                    break
                try:
                    for turn in turns:
                        _check_patterns(rubric, transcript, turn)
                except RubricError as error:
                    # Reported as if checked in plan order (rubric by rubric): the earlier rubrics are
                    # still checked on the transcripts that follow, the later ones no longer.
                    failure = (number, error)
                    break
                if turns:
                    self.n_items += sum(len(stage) for stage in stages) * samples * len(turns)
                    self.rubric_ids.add(rubric.id)
        if failure is not None:
            raise failure[1]

    def __iter__(self) -> Iterator[TurnPlan]:
        for rubric, stages in self._stages:
            for transcript in self.transcripts:
                for turn in transcript.therapist_turns():
                    yield TurnPlan(rubric, transcript, turn, stages, self.samples)


def plan_turns(transcripts: Sequence[Transcript], rubrics: list[Rubric], samples: int = 1) -> list[TurnPlan]:
    """Every therapist turn of every transcript, for every rubric, in a reproducible order."""
    return list(TurnPlans(transcripts, rubrics, samples))


def _check_patterns(rubric: Rubric, transcript: Transcript, turn: Turn) -> None:
    """Run the rubric's patterns on this turn now, so a pattern that backtracks without end on some
    patient turn is a RubricError before anything is judged, not a hang or a wrong "not applicable"."""
    for index, criterion in enumerate(rubric.criteria):
        if criterion.applies_when is None or criterion.applies_when.previous_patient_turn_matches is None:
            continue
        try:
            static_applicability(criterion, transcript, turn)
        except patterns.PatternTimeout as exc:
            previous = transcript.previous_patient_turn(turn.index)
            line = f", line {previous.line}" if previous is not None and previous.line is not None else ""
            raise RubricError(
                rubric.source,
                [
                    f"criteria[{index}] (id: {criterion.id}).applies_when.previous_patient_turn_matches: {exc} on "
                    f"the patient turn before turn {turn.index} of transcript {transcript.id!r} "
                    f"({transcript.source}{line}); rewrite the pattern so that no repeated group can match the "
                    "same text in several ways"
                ],
            ) from None


def work_units(plans: Iterable[TurnPlan], mode: JudgeMode) -> Iterator[tuple[TurnPlan, ...]]:
    """What one worker takes at a time, made as it is taken: a turn, or in per-transcript mode a
    session's therapist turns (which come one after another in plan order)."""
    if mode != "per-transcript":
        yield from ((plan,) for plan in plans)
        return
    for _, group in groupby(plans, key=lambda plan: (plan.rubric.id, plan.transcript.id)):
        yield tuple(group)


def group_requests(requests: list[JudgeRequest], mode: JudgeMode) -> list[list[JudgeRequest]]:
    """Requests that share one judge call: each alone, those of one turn, or all of the unit; never
    two samples of one item, which must be independent draws."""
    if mode == "per-criterion":
        return [[r] for r in requests]
    groups: dict[tuple[int, int], list[JudgeRequest]] = {}
    for r in requests:
        key = (r.turn.index if mode == "per-turn" else -1, r.item.sample)
        groups.setdefault(key, []).append(r)
    return list(groups.values())


class SubsetError(EvaluatorError, ValueError):
    """A selection that names what does not exist or matches nothing; says what there is instead."""


@dataclass(frozen=True)
class Selection:
    """The plans a run judges, the transcripts they read, and the subset as recorded in the manifest
    (None for a full run; with the prerequisites that were added for verdict conditions)."""

    plans: list[TurnPlan]
    transcripts: TranscriptShelf
    subset: Subset | None = None


def select_plans(
    transcripts: TranscriptShelf, rubrics: list[Rubric], samples: int = 1, subset: Subset | None = None
) -> Selection:
    """plan_turns narrowed to a subset, in one place so the runner, the dry run and `render` agree.
    A criterion whose applies_when reads another criterion's verdict brings that criterion along:
    without its prerequisite it could only ever be recorded "not applicable"."""
    if subset is None or subset.is_empty():
        return Selection(plan_turns(transcripts, rubrics, samples), transcripts)
    chosen = _select_transcripts(transcripts, subset.transcripts)
    wanted, added = _select_criteria(rubrics, subset.criteria)
    if wanted is not None:
        rubrics = [r for r in rubrics if r.id in wanted]
    plans = plan_turns(chosen, rubrics, samples)
    if subset.turns is not None:
        low, high = subset.turns
        plans = [p for p in plans if low <= p.turn.index <= high]
        if not plans:
            therapist = sorted({t.index for tr in chosen for t in tr.therapist_turns()})
            raise SubsetError(
                f"--turns {low}-{high}: no therapist turn in that range; therapist turns are "
                f"{_short(map(str, therapist))}"
            )
    if wanted is not None:
        plans = [replace(p, stages=_only(p.stages, wanted[p.rubric.id])) for p in plans]
    if subset.limit is not None:
        plans = _first_items(plans, subset.limit)
    used = {p.transcript.id for p in plans}
    recorded = subset.model_copy(update={"prerequisites": added})
    return Selection(plans, chosen.take(i for i, f in enumerate(chosen.facts) if f.id in used), recorded)


@dataclass(frozen=True)
class Work:
    """What a run judges, planned as it is reached when the whole plan is judged (TurnPlans), as a
    list for a subset; with the item count and rubric ids, known before anything is judged."""

    plans: Iterable[TurnPlan]
    transcripts: TranscriptShelf
    subset: Subset | None
    planned: int
    rubric_ids: set[str]


def select_work(
    transcripts: TranscriptShelf, rubrics: list[Rubric], samples: int = 1, subset: Subset | None = None
) -> Work:
    """select_plans for a run and its dry run: without a subset, no plan is held."""
    if subset is None or subset.is_empty():
        plans = TurnPlans(transcripts, rubrics, samples)
        return Work(plans, transcripts, None, plans.n_items, plans.rubric_ids)
    selection = select_plans(transcripts, rubrics, samples, subset)
    chosen = selection.plans
    planned, used = sum(p.n_items for p in chosen), {p.rubric.id for p in chosen}
    return Work(chosen, selection.transcripts, selection.subset, planned, used)


def _short(values: object, most: int = 20) -> str:
    items = list(values)  # type: ignore[call-overload]
    more = f" and {len(items) - most} more" if len(items) > most else ""
    return ", ".join(items[:most]) + more


def _select_transcripts(transcripts: TranscriptShelf, globs: list[str]) -> TranscriptShelf:
    """Chosen by id alone, so the shelf's transcripts are not parsed to choose them."""
    if not globs:
        return transcripts
    ids = [f.id for f in transcripts.facts]
    for glob in globs:
        if not any(fnmatchcase(tid, glob) for tid in ids):
            raise SubsetError(f"--transcript {glob!r} matches no transcript; the ids are: {_short(ids)}")
    return transcripts.take(i for i, tid in enumerate(ids) if any(fnmatchcase(tid, glob) for glob in globs))


def _select_criteria(rubrics: list[Rubric], names: list[str]) -> tuple[dict[str, set[str]] | None, list[str]]:
    """Per rubric id the criterion ids to judge (prerequisites included), and the added prerequisites."""
    if not names:
        return None, []
    known = [f"{r.id}/{c.id}" for r in rubrics for c in r.criteria]
    selected: dict[str, set[str]] = {}
    for name in names:
        rubric_id, sep, criterion_id = name.rpartition("/")
        matches = [
            (r.id, c.id) for r in rubrics for c in r.criteria if c.id == criterion_id and (not sep or r.id == rubric_id)
        ]
        if not matches:
            raise SubsetError(f"--criterion {name!r}: no such criterion; the criteria are: {_short(known)}")
        for rid, cid in matches:
            selected.setdefault(rid, set()).add(cid)
    added: list[str] = []
    for rubric in rubrics:
        ids = selected.get(rubric.id)
        if ids is None:
            continue
        by_id = {c.id: c for c in rubric.criteria}
        pending = sorted(ids)
        while pending:
            rule = by_id[pending.pop()].applies_when
            needed = rule.criterion.criterion if rule is not None and rule.criterion is not None else None
            if needed is not None and needed not in ids:
                ids.add(needed)
                added.append(f"{rubric.id}/{needed}")
                pending.append(needed)
    return selected, added


def _only(stages: tuple[tuple[Criterion, ...], ...], ids: set[str]) -> tuple[tuple[Criterion, ...], ...]:
    kept = (tuple(c for c in stage if c.id in ids) for stage in stages)
    return tuple(stage for stage in kept if stage)


def _first_items(plans: list[TurnPlan], limit: int) -> list[TurnPlan]:
    """The first `limit` (turn, criterion) items in plan order. Stages come before the stages that
    depend on them, so a prefix never holds a dependent criterion without its prerequisite."""
    kept: list[TurnPlan] = []
    left = limit
    for plan in plans:
        if left <= 0:
            break
        stages = []
        for stage in plan.stages:
            if left <= 0:
                break
            stages.append(stage[:left])
            left -= len(stages[-1])
        kept.append(replace(plan, stages=tuple(stages)))
    return kept
