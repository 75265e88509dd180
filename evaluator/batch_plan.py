"""What a batch run can send now: per unit of work, the first stage with items not judged, minus the
items in flight; the items the rules decide without a judge are judged here, and later stages wait,
since their applies_when may read this stage's verdicts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from evaluator.batch_run import BatchRun
from evaluator.batch_state import iter_calls, open_batches
from evaluator.judges.base import judgment_for
from evaluator.models import BatchState, Judgment
from evaluator.patterns import PatternTimeout
from evaluator.plan import JudgeRequest, decided_without_judge, group_requests, prerequisites, work_units
from evaluator.store import PriorVerdict


@dataclass
class Work:
    """What a walk of the plan found, counted as it goes."""

    ready: int = 0
    """Items in the calls handed out, ready to send."""
    decided: int = 0
    """Items recorded without a judge: rules said not applicable, or a prerequisite's verdict decided."""
    waiting: int = 0
    """Items of later stages, waiting for a verdict still in flight."""


def plan_work(
    run: BatchRun,
    done: set[str],
    verdicts: dict[str, PriorVerdict],
    busy: set[str],
    work: Work,
    record: Callable[[Judgment], None],
) -> Iterator[list[JudgeRequest]]:
    """Per unit of work, the first stage with items not judged: its items that are neither judged (`done`,
    with the verdicts of prerequisite criteria in `verdicts`, as store.scan_run reads them) nor in flight
    come out as calls, grouped as the runner groups them, one unit at a time, so a run of any size holds one
    unit's requests. A later stage waits, since its applies_when may read this stage's verdicts. Items
    decided here go to `record` as they are met, and into `done` and `verdicts`; `work` counts."""
    name = run.judge.name
    wanted = prerequisites(run.rubrics)
    for unit in work_units(run.plans, run.manifest.mode):
        stages = max(len(plan.stages) for plan in unit)
        for stage in range(stages):
            open_items, ready = 0, []
            for plan in unit:
                for criterion in plan.stages[stage] if stage < len(plan.stages) else ():
                    for sample in range(plan.samples):
                        request = plan.request(criterion, sample)
                        key = request.item.key
                        if key in done:
                            continue
                        open_items += 1
                        if key in busy:
                            continue
                        try:
                            status, reason = decided_without_judge(plan, criterion, verdicts.get)
                        except PatternTimeout as exc:
                            status, reason = "error", f"applies_when could not be decided: {exc}"
                        if status is None:
                            ready.append(request)
                            continue
                        judgment = judgment_for(
                            request,
                            name,
                            status=status,
                            rationale=(reason or "") if status != "error" else "",
                            unscored_reason=reason if status == "unscored" else None,
                            error=reason if status == "error" else None,
                        )
                        record(judgment)
                        work.decided += 1
                        done.add(key)
                        if (plan.rubric.id, criterion.id) in wanted:
                            verdicts[key] = PriorVerdict(judgment.status, judgment.verdict)
                        open_items -= 1
            work.ready += len(ready)
            yield from group_requests(ready, run.manifest.mode)
            if open_items:
                work.waiting += sum(
                    len(plan.stages[later]) * plan.samples
                    for plan in unit
                    for later in range(stage + 1, len(plan.stages))
                )
                break


def busy_keys(run: BatchRun, state: BatchState) -> set[str]:
    """Items in flight: in an open batch the provider has not failed, or in a re-ask waiting to be sent."""
    keys = {key for call in state.reasks for key in call.keys}
    for record in open_batches(state):
        if record.status == "failed":
            continue
        keys.update(key for call, _ in iter_calls(run.run_dir, record) for key in call.keys)
    return keys
