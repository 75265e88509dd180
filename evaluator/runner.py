"""Orchestrate a run: read, plan, render, judge, store, summarise.

A pool of async workers takes one unit at a time (a therapist turn with all of one rubric's
criteria, or a whole session in per-transcript mode) and judges it stage by stage, in dependency
order; the calls of a stage run side by side, each holding one of `concurrency` slots while its
request is on the wire, so requests in flight stay bounded however large the batch. Units are planned
as workers take them, and every judgment is appended to disk as it arrives and dropped, so what a run
holds does not grow with the judgments it makes: counts and tokens are tallied on the way, a resumed
run holds the keys it skips, and --samples aggregates are folded in one pass over judgments.jsonl at
the end. Nor does it grow with the sessions: they wait on a transcript_shelf (on disk), and a run holds
per session only the facts its manifest records, parsing a session again when the plan reaches it.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from rich.console import Console
from rich.markup import escape

from evaluator.aggregate import AGGREGATES, iter_aggregates
from evaluator.batch_state import STATE as BATCH_STATE
from evaluator.config import RunConfig
from evaluator.judges.base import Judge, JudgeCall, JudgeFatalError, judgment_for
from evaluator.judges.pricing import Budget
from evaluator.judges.select import judge_price, make_judge
from evaluator.manifest import RunError, check_resumable, finished_manifest, new_manifest
from evaluator.models import (
    JudgeMode,
    Judgment,
    Rubric,
    RunManifest,
    SkippedFile,
    Status,
)
from evaluator.patterns import PatternTimeout
from evaluator.plan import (
    JudgeRequest,
    TurnPlan,
    decided_without_judge,
    group_requests,
    prerequisites,
    select_work,
    work_units,
)
from evaluator.progress import Ledger, RunProgress
from evaluator.prompts import PromptError, PromptRenderer, check_templates
from evaluator.rubrics import load_rubrics
from evaluator.store import (
    JudgmentWriter,
    PriorVerdict,
    RunLock,
    RunScan,
    create_run_dir,
    iter_judgments,
    new_run_id,
    read_manifest,
    scan_run,
    write_lines_atomic,
    write_manifest,
    write_transcripts,
)
from evaluator.transcript_shelf import TranscriptShelf, shelve_all
from evaluator.transcripts import discover

# An `error` is no judgment (the endpoint failed, or never answered), so a resume sends it again; an
# `unscored` item was answered, invalidly, and is asked again only with --retry-failed.
RESUME_KEEPS_FAILED: tuple[Status, ...] = ("ok", "not_applicable", "unscored")
RETRY_FAILED_KEEPS: tuple[Status, ...] = ("ok", "not_applicable")


@dataclass
class RunResult:
    run_dir: Path
    manifest: RunManifest
    skipped: list[SkippedFile]

    @property
    def ok(self) -> bool:
        """Everything planned was judged: no file set aside, no item missing or errored, no early stop."""
        m = self.manifest
        return not self.skipped and m.counts.get("error", 0) == 0 and m.complete and m.stopped is None


@contextmanager
def _collector_eased(young_threshold: int = 50_000) -> Iterator[None]:
    """Ease Python's cyclic garbage collector while judging. Its passes over the objects a run keeps
    alive stop every call in flight (passes of up to ~100 ms, about 0.4 s of stalls over 2,600 judgments),
    while judging itself makes almost no cyclic garbage (about one small object per judgment). So
    what exists when judging starts is frozen out of the collector's sight, and the young generation
    is collected every `young_threshold` allocations instead of every 700; both are undone after."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(young_threshold, thresholds[0]), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def make_call(renderer: PromptRenderer, group: Sequence[JudgeRequest], mode: JudgeMode) -> JudgeCall:
    """Render one prompt for a group of requests (all of one rubric and transcript)."""
    first = group[0]
    criteria = list({r.criterion.id: r.criterion for r in group}.values())
    turns = list({r.turn.index: r.turn for r in group}.values())
    rendered = renderer.render(first.rubric, criteria, first.transcript, turns, mode)
    return JudgeCall(tuple(group), mode, rendered.messages, rendered.template_hash, rendered.prompt_hash)


class _UnitWorker:
    """Judges a unit (one turn, or a session's turns) stage by stage, grouping calls by mode, and
    hands every judgment to `sink` as soon as it exists. It keeps no judgment: of a resumed run the
    keys to skip (each dropped once met) and its prerequisites' verdicts, of a unit the verdicts its
    later stages read, dropped with the unit."""

    def __init__(
        self,
        judge: Judge,
        renderer: PromptRenderer,
        mode: JudgeMode,
        resumed: RunScan,
        prerequisites: set[tuple[str, str]],
        sink: Callable[[Judgment], None],
    ) -> None:
        self.judge, self.renderer, self.mode, self.sink = judge, renderer, mode, sink
        self.resumed, self.prerequisites = resumed, prerequisites
        self.first_call: float | None = None

    async def run(self, unit: tuple[TurnPlan, ...], budget: Budget, slots: asyncio.Semaphore) -> None:
        """Stages run in order; the calls of one stage run side by side, each prepared (rendered, its cost
        reserved) at once and then holding one of the run's `concurrency` slots while its request is on
        the wire, so a turn's independent criteria do not queue behind each other."""
        first = unit[0]
        verdicts: dict[str, PriorVerdict] = {}
        for stage in range(len(first.stages)):
            pending = [
                r
                for plan in unit
                for sample in range(first.samples)
                for r in self._requests(plan, stage, sample, verdicts)
            ]
            groups = group_requests(pending, self.mode)
            await asyncio.gather(*(self._judge_group(group, budget, slots, verdicts) for group in groups))

    async def _judge_group(
        self, group: list[JudgeRequest], budget: Budget, slots: asyncio.Semaphore, verdicts: dict[str, PriorVerdict]
    ) -> None:
        try:
            call = (
                make_call(self.renderer, group, self.mode)
                if self.judge.reads_prompt
                else JudgeCall(tuple(group), self.mode)
            )
        except PromptError as exc:
            self._record_errors(group, f"the prompt could not be rendered: {exc}", verdicts)
            return
        if not budget.reserve(call):
            return
        if self.first_call is None:
            self.first_call = time.monotonic()
        judgments = await self.judge.judge(call, slots, budget.hook(call))
        budget.settle(call, judgments)
        for judgment in judgments:
            self._record(judgment, verdicts)

    def _record(self, judgment: Judgment, verdicts: dict[str, PriorVerdict]) -> None:
        if (judgment.rubric_id, judgment.criterion_id) in self.prerequisites:
            verdicts[judgment.key] = PriorVerdict(judgment.status, judgment.verdict)
        self.sink(judgment)

    def _requests(
        self, plan: TurnPlan, stage: int, sample: int, verdicts: dict[str, PriorVerdict]
    ) -> list[JudgeRequest]:
        """The stage's requests that need the judge; the rest are recorded here without a call."""
        pending = []

        def prior(key: str) -> PriorVerdict | None:
            """This unit's verdicts first, then those a resumed run read back."""
            known = verdicts.get(key)
            return known if known is not None else self.resumed.verdicts.get(key)

        for criterion in plan.stages[stage]:
            request = plan.request(criterion, sample)
            if self.resumed.done and request.item.key in self.resumed.done:
                self.resumed.done.discard(request.item.key)
                continue
            try:
                status, reason = decided_without_judge(plan, criterion, prior)
            except PatternTimeout as exc:
                self._record_errors([request], f"applies_when could not be decided: {exc}", verdicts)
                continue
            if status is None:
                pending.append(request)
            else:
                self._record(
                    judgment_for(
                        request,
                        self.judge.name,
                        status=status,
                        rationale=reason or "",
                        unscored_reason=reason if status == "unscored" else None,
                    ),
                    verdicts,
                )
        return pending

    def _record_errors(self, requests: Sequence[JudgeRequest], error: str, verdicts: dict[str, PriorVerdict]) -> None:
        """An item that this turn's data cannot be prepared for is an error for it alone, named and kept
        for --resume once fixed, while the rest of the batch goes on."""
        for request in requests:
            self._record(judgment_for(request, self.judge.name, status="error", error=error), verdicts)


def shelve_inputs(config: RunConfig) -> tuple[list[Rubric], TranscriptShelf, list[SkippedFile], list[Path]]:
    """The rubrics, the transcripts on a shelf (a run, its dry run and a batch run hold their facts, not
    the transcripts), the files set aside, the files."""
    rubrics = load_rubrics(list(config.rubrics))
    files = discover(list(config.transcripts))
    transcripts, bad = shelve_all(files, config.read_options)
    skipped = [SkippedFile(path=str(path), error=str(error)) for path, error in bad]
    if not transcripts:
        detail = "; ".join(s.error for s in skipped) or "no transcript files found"
        raise RunError(f"nothing to evaluate: {detail}")
    return rubrics, transcripts, skipped, files


async def run_async(config: RunConfig, console: Console | None = None) -> RunResult:
    """Evaluate transcripts with rubrics and write results/<run-id>/; see RunConfig for the knobs."""
    console = console or Console(stderr=True, soft_wrap=True)
    started = time.monotonic()
    previous = read_manifest(config.resume) if config.resume is not None else None
    if config.resume is not None and (config.resume / BATCH_STATE).exists():
        raise RunError(
            f"{config.resume} is judged through a batch queue, at batch prices; continue it with "
            f"`evaluator batch status {config.resume}`, then `batch collect` and `batch submit --resume`"
        )
    if previous is not None:
        config = replace(
            config,
            transcripts=[Path(f) for f in previous.transcript_files],
            rubrics=[Path(record.file) for record in previous.rubrics.values()],
            samples=previous.samples,
            aggregate=previous.aggregate,
            mode=previous.mode,
            subset=previous.subset,
        )
    rubrics, transcripts, skipped, files = shelve_inputs(config)
    try:
        for entry in skipped:
            console.print(f"[red]skipped[/red] {escape(entry.error)}", highlight=False)
        judge = make_judge(config.judge, console)
        try:
            return await _run_with(judge, config, previous, rubrics, transcripts, skipped, files, console, started)
        finally:
            await judge.aclose()
    finally:
        transcripts.close()


async def _run_with(
    judge: Judge,
    config: RunConfig,
    previous: RunManifest | None,
    rubrics: list[Rubric],
    transcripts: TranscriptShelf,
    skipped: list[SkippedFile],
    files: list[Path],
    console: Console,
    started: float,
) -> RunResult:
    renderer = PromptRenderer(config.prompts_dir)
    check_templates(rubrics, renderer, (config.mode,))
    work = select_work(transcripts, rubrics, config.samples, config.subset)
    plans, transcripts, subset, planned = work.plans, work.transcripts, work.subset, work.planned
    rubrics = [r for r in rubrics if r.id in work.rubric_ids]
    if subset is not None:
        console.print(f"[yellow]subset:[/yellow] {escape(subset.describe())}", highlight=False)
    if previous is not None and config.resume is not None:
        check_resumable(previous, rubrics, judge, transcripts, renderer)
        run_dir, manifest = config.resume, previous
    else:
        run_id = config.run_id or new_run_id()
        manifest = new_manifest(config, run_id, judge, rubrics, renderer, transcripts, files, skipped, planned)
        manifest.subset = subset
        run_dir = create_run_dir(config.output, run_id)
    with RunLock(run_dir):
        if previous is None:
            write_transcripts(run_dir, transcripts)
            resumed = RunScan()
        else:
            kept = RETRY_FAILED_KEEPS if config.retry_failed else RESUME_KEEPS_FAILED
            resumed = scan_run(run_dir, kept, prerequisites(rubrics))
        write_manifest(run_dir, manifest)
        return await _judge_all(
            judge, config, manifest, run_dir, renderer, plans, rubrics, planned, resumed, skipped, console, started
        )


async def _judge_all(
    judge: Judge,
    config: RunConfig,
    manifest: RunManifest,
    run_dir: Path,
    renderer: PromptRenderer,
    plans: Iterable[TurnPlan],
    rubrics: list[Rubric],
    planned: int,
    resumed: RunScan,
    skipped: list[SkippedFile],
    console: Console,
    started: float,
) -> RunResult:
    price = judge_price(config.judge)
    budget = Budget(config.max_cost, price, judge.estimate)
    ledger = Ledger(price)
    tally = resumed.tally
    fatal: BaseException | None = None
    with (
        JudgmentWriter(run_dir) as writer,
        RunProgress(console, config.show_progress, planned, len(resumed.done), ledger) as progress,
    ):

        def sink(judgment: Judgment) -> None:
            writer.append(judgment)
            resumed.replaced(judgment.key)
            tally.add(judgment.status, judgment.usage)
            progress.add(judgment)

        units = work_units(plans, config.mode)
        worker = _UnitWorker(judge, renderer, config.mode, resumed, prerequisites(rubrics), sink)
        slots = asyncio.Semaphore(max(1, config.concurrency))

        async def drain() -> None:
            for unit in units:
                if budget.exhausted:
                    return
                await worker.run(unit, budget, slots)

        try:
            with _collector_eased():
                async with asyncio.TaskGroup() as group:
                    for _ in range(max(1, config.concurrency)):
                        group.create_task(drain())
        except* JudgeFatalError as failures:
            fatal = failures.exceptions[0]

    window = ledger.last - worker.first_call if worker.first_call else None
    stopped = _stop_reason(fatal, budget, config)
    manifest = finished_manifest(manifest, tally, planned, price, time.monotonic() - started, window, stopped)
    write_manifest(run_dir, manifest)
    if manifest.samples > 1:
        write_aggregates(run_dir, manifest, rubrics, resumed.superseded)
    if fatal is not None:
        raise RunError(f"{fatal} (judgments so far are kept in {run_dir}; fix it and continue with --resume {run_dir})")
    return RunResult(run_dir, manifest, skipped)


def write_aggregates(
    run_dir: Path, manifest: RunManifest, rubrics: Iterable[Rubric], superseded: AbstractSet[int]
) -> None:
    """aggregates.jsonl: each --samples item folded, in one pass over judgments.jsonl that skips the
    `superseded` lines (those a later line of their key replaced) and holds only the items still open."""
    aggregates = iter_aggregates(
        iter_judgments(run_dir, superseded), {r.id: r for r in rubrics}, manifest.aggregate, manifest.samples
    )
    write_lines_atomic(run_dir / AGGREGATES, (a.model_dump_json() + "\n" for a in aggregates))


def _stop_reason(fatal: BaseException | None, budget: Budget, config: RunConfig) -> str | None:
    if fatal is not None:
        return str(fatal)
    if budget.exhausted:
        return f"stopped before exceeding --max-cost {config.max_cost} USD"
    return None


def run(config: RunConfig) -> RunResult:
    """Judge only, synchronously: the judgments and the manifest, without summary or report
    (`evaluator.run` writes those too)."""
    return asyncio.run(run_async(config))
