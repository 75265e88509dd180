"""Judge through a batch queue: OpenAI's Batch API (half the price, replies within 24 hours), or vLLM's
offline run_batch over the same request file.

A batch run is a run folder like any other. `submit` plans the items as `evaluator run` would, records
what rules decide without a judge, and writes each judge call as a request line whose body is the one
the live judge would send (same prompt, schema, seed, reply cap); `collect` reads the replies through
the live judge's own validation into the same judgments.jsonl. What is in flight is recorded in the run
folder (see evaluator.batch_state), so every command resumes from there, and an item already judged is
never sent or written again. What cannot be done in one round is done by the next `submit`: re-asks
after an invalid reply, requests that failed or that an expired or cancelled batch never ran, and
criteria whose `applies_when` reads another criterion's verdict, once that verdict is collected.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evaluator.aggregate import AGGREGATES, aggregate_samples
from evaluator.batch_api import BatchQueue
from evaluator.batch_files import Limits, Result, Splitter, read_results, read_results_file, request_line
from evaluator.batch_state import (
    ended,
    next_name,
    now,
    open_batches,
    read_calls,
    read_state,
    requests_path,
    write_batch_files,
    write_state,
)
from evaluator.config import JudgeSettings, RunConfig
from evaluator.judges.base import JudgeCall, judgment_for
from evaluator.judges.cache import ResponseCache, cache_key
from evaluator.judges.openai import OpenAIJudge, reask_messages
from evaluator.judges.pricing import batch_price
from evaluator.judges.replies import Reply
from evaluator.judges.select import judge_price
from evaluator.judges.verdicts import ReplyProblem, Verdict
from evaluator.manifest import RunError, check_resumable, finished_manifest, new_manifest, recorded_reading
from evaluator.models import (
    BatchCall,
    BatchRecord,
    BatchState,
    BatchStatus,
    Judgment,
    Message,
    RunManifest,
    Usage,
)
from evaluator.patterns import PatternTimeout
from evaluator.plan import (
    JudgeRequest,
    TurnPlan,
    decided_without_judge,
    group_requests,
    select_plans,
    work_units,
)
from evaluator.prompts import PromptError, PromptRenderer, check_templates
from evaluator.reading import ReadOptions
from evaluator.runner import RESUME_KEEPS_FAILED, RETRY_FAILED_KEEPS, make_call, read_inputs
from evaluator.store import (
    JudgmentWriter,
    RunLock,
    create_run_dir,
    judgments_size,
    keys_judged_after,
    load_judgments,
    new_run_id,
    read_manifest,
    write_atomic,
    write_manifest,
    write_transcripts,
)

BATCH_JUDGE = "openai-batch"
"""What the manifest's judge record says under "batch", so a reader knows the cost is at batch prices."""


@dataclass
class BatchRun:
    """A run folder opened for batch work: its manifest, the judge that builds requests and reads replies
    (its client reaches the queue), and every planned request by item key."""

    run_dir: Path
    manifest: RunManifest
    judge: OpenAIJudge
    renderer: PromptRenderer
    plans: list[TurnPlan]
    planned: int
    requests: dict[str, JudgeRequest] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for plan in self.plans:
            for stage in plan.stages:
                for criterion in stage:
                    for sample in range(plan.samples):
                        request = plan.request(criterion, sample)
                        self.requests[request.item.key] = request

    def requests_for(self, keys: Iterable[str]) -> list[JudgeRequest]:
        try:
            return [self.requests[key] for key in keys]
        except KeyError as exc:
            raise RunError(
                f"{self.run_dir}: item {exc.args[0]} of a recorded batch is not in the run's plan any more; "
                "were its transcripts or rubrics moved? Restore them, or start a new run"
            ) from None

    def call_for(self, keys: Iterable[str]) -> JudgeCall:
        """The judge call for recorded item keys, rendered again: templates and rubrics are unchanged
        (check_resumable said so), so the messages are those that were sent."""
        return make_call(self.renderer, self.requests_for(keys), self.manifest.mode)

    async def aclose(self) -> None:
        await self.judge.aclose()


def batch_judge(settings: JudgeSettings, offline: bool = False) -> OpenAIJudge:
    return OpenAIJudge(replace(settings, kind="openai"), offline=offline)


def describe(judge: OpenAIJudge) -> dict[str, Any]:
    settings = judge.settings
    prices = str(settings.prices_file) if settings.prices_file else None
    return {**judge.describe(), "batch": BATCH_JUDGE, "prices": prices}


def settings_of(manifest: RunManifest, base_url: str | None = None, api_key_env: str | None = None) -> JudgeSettings:
    """The judge a batch run was made with, from its manifest; the endpoint and the key's variable may be
    given again (a base URL is recorded without credentials)."""
    j = manifest.judge
    if j.get("batch") != BATCH_JUDGE:
        raise RunError(f"{manifest.run_id} was not made by `evaluator batch submit`; continue it with `evaluator run`")
    return JudgeSettings(
        kind="openai",
        model=j.get("model"),
        base_url=base_url or j.get("base_url"),
        api_key_env=api_key_env or j.get("api_key_env") or "OPENAI_API_KEY",
        temperature=j.get("temperature", 0.0),
        seed=j.get("seed"),
        max_tokens=j.get("max_tokens"),
        parameters=dict(j.get("parameters") or {}),
        output=j.get("output", "auto"),
        content_attempts=j.get("content_attempts", 3),
        logprobs=bool(j.get("logprobs")),
        cache_path=Path(j["cache"]) if j.get("cache") else None,
        prices_file=Path(j["prices"]) if j.get("prices") else None,
    )


def create_run(config: RunConfig, offline: bool = False) -> BatchRun:
    """A new run folder, as `evaluator run` would make it, judged through the queue."""
    rubrics, transcripts, skipped, files = read_inputs(config)
    if skipped:
        raise RunError("cannot read " + "; ".join(s.error for s in skipped) + "; fix or remove the file(s)")
    judge = batch_judge(config.judge, offline)
    renderer = PromptRenderer(config.prompts_dir)
    check_templates(rubrics, renderer, (config.mode,))
    selection = select_plans(transcripts, rubrics, config.samples, config.subset)
    rubrics = [r for r in rubrics if any(p.rubric.id == r.id for p in selection.plans)]
    planned = sum(p.n_items for p in selection.plans)
    run_id = config.run_id or new_run_id()
    manifest = new_manifest(
        config, run_id, judge, rubrics, renderer, selection.transcripts, files, skipped, planned
    ).model_copy(update={"judge": describe(judge), "subset": selection.subset})
    run_dir = create_run_dir(config.output, run_id)
    write_transcripts(run_dir, selection.transcripts)
    write_manifest(run_dir, manifest)
    return BatchRun(run_dir, manifest, judge, renderer, selection.plans, planned)


def open_run(
    run_dir: Path, settings: JudgeSettings | None = None, offline: bool = False, reading: ReadOptions | None = None
) -> BatchRun:
    """A batch run folder as recorded: the same rubrics, transcripts (read with the metadata sources and
    blinding the run started with), mode and subset; refused if any changed."""
    manifest = read_manifest(run_dir)
    settings = settings or settings_of(manifest)
    config = RunConfig(
        transcripts=[Path(f) for f in manifest.transcript_files],
        rubrics=[Path(record.file) for record in manifest.rubrics.values()],
        judge=settings,
        read_options=recorded_reading(manifest, reading),
        samples=manifest.samples,
        aggregate=manifest.aggregate,
        mode=manifest.mode,
        subset=manifest.subset,
    )
    rubrics, transcripts, _, _ = read_inputs(config)
    judge = batch_judge(settings, offline)
    renderer = PromptRenderer()
    selection = select_plans(transcripts, rubrics, config.samples, config.subset)
    rubrics = [r for r in rubrics if any(p.rubric.id == r.id for p in selection.plans)]
    check_resumable(manifest, rubrics, judge, selection.transcripts)
    return BatchRun(run_dir, manifest, judge, renderer, selection.plans, manifest.items_planned)


# --- what can be sent now ------------------------------------------------------------------------


@dataclass
class Work:
    groups: list[list[JudgeRequest]] = field(default_factory=list)
    """Requests ready to send, grouped into calls (rendered only when written, one file at a time)."""
    decided: list[Judgment] = field(default_factory=list)
    """Items recorded without a judge: rules said not applicable, or a prerequisite's verdict decided."""
    waiting: int = 0
    """Items of later stages, waiting for a verdict still in flight."""


def plan_work(run: BatchRun, done: dict[str, Judgment], busy: set[str]) -> Work:
    """Per unit of work, the first stage with items not judged: its items that are neither judged nor in
    flight become calls, grouped as the runner groups them. A later stage waits, since its applies_when
    may read this stage's verdicts. `done` gains the items decided here."""
    work = Work()
    name = run.judge.name
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
                            status, reason = decided_without_judge(plan, criterion, done.get)
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
                        work.decided.append(judgment)
                        done[key] = judgment
                        open_items -= 1
            work.groups += group_requests(ready, run.manifest.mode)
            if open_items:
                work.waiting += sum(
                    len(plan.stages[later]) * plan.samples
                    for plan in unit
                    for later in range(stage + 1, len(plan.stages))
                )
                break
    return work


# --- replies into judgments ----------------------------------------------------------------------


def _earlier_verdicts(run: BatchRun, batch_call: BatchCall, call: JudgeCall) -> dict[int, Verdict]:
    """The verdicts earlier replies of a re-asked call already gave (a grouped reply keeps its good parts):
    read again from the replies the conversation holds."""
    found: dict[int, Verdict] = {}
    for message in batch_call.reasks:
        if message.role == "assistant":
            reply = Reply(message.content, None, "stop", Usage(), ())
            run.judge.read_reply(reply, call, found, {})
    return found


def settle(
    run: BatchRun, batch_call: BatchCall, call: JudgeCall, raw: str, from_cache: bool = False
) -> tuple[list[Judgment], BatchCall | None]:
    """A reply read as the live judge reads it: the judgments, or (while attempts are left and some
    verdict is missing or invalid) the re-ask to send in a follow-up batch instead."""
    judge = run.judge
    found = _earlier_verdicts(run, batch_call, call)
    weighted: dict[int, float] = {}
    usage = batch_call.usage
    followup: list[Message] = []
    try:
        reply = Reply.parse(raw)
    except ReplyProblem as exc:
        problem = str(exc)
    else:
        usage = usage if from_cache else usage + reply.usage
        problem = judge.read_reply(reply, call, found, weighted)
        followup = [Message.model_validate(m) for m in reask_messages(reply.content, problem)]
    if len(found) < len(call.requests) and batch_call.attempt < judge.settings.content_attempts:
        return [], batch_call.model_copy(
            update={"attempt": batch_call.attempt + 1, "reasks": [*batch_call.reasks, *followup], "usage": usage}
        )
    body = judge.request_body(call, _dicts(batch_call.reasks))
    judgments = judge.judgments_for(
        call,
        found,
        weighted,
        problem,
        attempts=batch_call.attempt,
        usage=usage,
        max_tokens=body.get("max_tokens"),
        from_cache=from_cache,
    )
    return judgments, None


def failed(run: BatchRun, batch_call: BatchCall, call: JudgeCall, error: str) -> list[Judgment]:
    """A request the queue ran and the endpoint refused: an `error` judgment, which the next submit sends again."""
    body = run.judge.request_body(call, _dicts(batch_call.reasks))
    return run.judge.judgments_for(
        call,
        {},
        {},
        error,
        attempts=batch_call.attempt,
        usage=batch_call.usage,
        max_tokens=body.get("max_tokens"),
        failed=True,
    )


def _dicts(messages: list[Message]) -> list[dict[str, Any]]:
    return [m.model_dump() for m in messages]


def _cache(run: BatchRun) -> ResponseCache | None:
    return run.judge.cache


def _cache_key(run: BatchRun, call: JudgeCall, batch_call: BatchCall) -> str:
    body = run.judge.request_body(call, _dicts(batch_call.reasks))
    return cache_key(body, run.judge.base_url or "", call.requests[0].item.sample)


# --- submit --------------------------------------------------------------------------------------


@dataclass
class Submitted:
    batches: list[BatchRecord]
    requests: int
    from_cache: int
    decided: int
    waiting: int
    in_flight: int
    """Items already in open batches, not sent again."""


def _busy(run: BatchRun, state: BatchState) -> set[str]:
    keys = {key for call in state.reasks for key in call.keys}
    for record in open_batches(state):
        if record.status == "failed":
            continue
        keys |= {key for call in read_calls(run.run_dir, record).values() for key in call.keys}
    return keys


class _Files:
    """Request lines gathered into batch files as they are made, each file written and recorded when the
    limits close it (with no limits, for an export, one file)."""

    def __init__(self, run: BatchRun, state: BatchState, limits: Limits | None, status: BatchStatus) -> None:
        self.run, self.state, self.status = run, state, status
        self.splitter = Splitter(limits) if limits is not None else None
        self.records: list[BatchRecord] = []
        self.lines: list[bytes] = []
        self.calls: list[BatchCall] = []

    def add(self, batch_call: BatchCall, line: bytes) -> None:
        if self.splitter is not None and self.splitter.starts_file(line):
            self.close()
        self.lines.append(line)
        self.calls.append(batch_call)

    def close(self) -> None:
        if not self.lines:
            return
        record = BatchRecord(
            name=next_name(self.state),
            status=self.status,
            requests=len(self.lines),
            judged_offset=judgments_size(self.run.run_dir),
            created_at=now(),
        )
        write_batch_files(self.run.run_dir, record, self.lines, self.calls)
        self.state.batches.append(record)
        self.records.append(record)
        self.lines, self.calls = [], []


def _prepare(run: BatchRun, state: BatchState, retry_failed: bool, writer: JudgmentWriter, files: _Files) -> Submitted:
    """Write the requests to send now into batch files: re-asks first, then new calls. Items the rules
    decide, prompts that cannot be rendered and replies in the response cache are judged at once."""
    kept = RETRY_FAILED_KEEPS if retry_failed else RESUME_KEEPS_FAILED
    done = {j.key: j for j in load_judgments(run.run_dir) if j.status in kept}
    busy = _busy(run, state)
    in_flight = len(busy) - sum(len(c.keys) for c in state.reasks)
    work = plan_work(run, done, busy)
    decided = len(work.decided)
    for judgment in work.decided:
        writer.append(judgment)
    pending: deque[tuple[BatchCall, list[JudgeRequest] | JudgeCall]] = deque(
        (c, run.requests_for(c.keys)) for c in state.reasks
    )
    pending += ((BatchCall(custom_id=g[0].item.key, keys=[r.item.key for r in g]), g) for g in work.groups)
    cache = _cache(run)
    sent = hits = 0
    while pending:
        batch_call, group = pending.popleft()
        try:
            call = group if isinstance(group, JudgeCall) else make_call(run.renderer, group, run.manifest.mode)
        except PromptError as exc:
            for request in group if isinstance(group, list) else ():
                writer.append(
                    judgment_for(
                        request, run.judge.name, status="error", error=f"the prompt could not be rendered: {exc}"
                    )
                )
                decided += 1
            continue
        if cache is not None and (raw := cache.get(_cache_key(run, call, batch_call))) is not None:
            hits += 1
            judgments, again = settle(run, batch_call, call, raw, from_cache=True)
            for judgment in judgments:
                writer.append(judgment)
            if again is not None:
                pending.append((again, call))
            continue
        files.add(
            batch_call, request_line(batch_call.custom_id, run.judge.request_body(call, _dicts(batch_call.reasks)))
        )
        sent += 1
    files.close()
    return Submitted(files.records, sent, hits, decided, work.waiting, in_flight)


async def _launch(run: BatchRun, state: BatchState, record: BatchRecord, queue: BatchQueue) -> None:
    """Upload a prepared batch's file and create the batch, recording each id the moment it exists; a
    batch a stopped submit already created is found by its file rather than created twice."""
    existing = None
    if record.input_file_id is None:
        content = requests_path(run.run_dir, record).read_bytes()
        record.input_file_id = await queue.upload(f"{run.manifest.run_id}-{record.name}.jsonl", content)
        write_state(run.run_dir, state)
    else:
        existing = await queue.find(record.input_file_id)
    batch = existing or await queue.create(
        record.input_file_id, {"evaluator_run": run.manifest.run_id, "evaluator_batch": record.name}
    )
    record.batch_id = batch.id
    _update(record, batch)
    write_state(run.run_dir, state)


def _update(record: BatchRecord, batch: Any) -> None:
    """A record brought up to date with the batch as the provider describes it."""
    record.status = batch.status
    record.output_file_id = batch.output_file_id
    record.error_file_id = batch.error_file_id
    counts = batch.request_counts
    if counts is not None:
        record.completed, record.failed = counts.completed, counts.failed
    errors = batch.errors.data if batch.errors is not None and batch.errors.data else []
    record.errors = [f"{e.code}: {e.message}" + (f" (line {e.line})" if e.line else "") for e in errors]


async def submit(
    run: BatchRun, queue: BatchQueue | None, limits: Limits, retry_failed: bool = False, export: Path | None = None
) -> Submitted:
    """Send what can be sent now (or with `export`, write it to a file for vLLM's run_batch instead)."""
    with RunLock(run.run_dir):
        state = read_state(run.run_dir)
        if queue is not None:
            for record in state.batches:
                if record.status == "preparing":
                    await _launch(run, state, record, queue)
        exported = [r for r in open_batches(state) if r.status == "exported"]
        if export is not None and exported:
            write_atomic(export, "".join(requests_path(run.run_dir, r).read_text("utf-8") for r in exported))
            return Submitted(exported, sum(r.requests for r in exported), 0, 0, state.waiting, 0)
        files = _Files(run, state, None if export else limits, "exported" if export else "preparing")
        with JudgmentWriter(run.run_dir) as writer:
            summary = _prepare(run, state, retry_failed, writer, files)
        state.reasks = []
        state.waiting = summary.waiting
        write_state(run.run_dir, state)
        if export is not None:
            write_atomic(export, "".join(requests_path(run.run_dir, r).read_text("utf-8") for r in summary.batches))
        elif queue is not None:
            for record in summary.batches:
                await _launch(run, state, record, queue)
        _finish(run, 0.0)
        return summary


# --- status, collect, cancel ---------------------------------------------------------------------


async def refresh(run_dir: Path, queue: BatchQueue) -> BatchState:
    """The run's batches with their statuses and counts as the provider has them now."""
    with RunLock(run_dir):
        state = read_state(run_dir)
        for record in open_batches(state):
            if record.batch_id is not None and not ended(record):
                _update(record, await queue.retrieve(record.batch_id))
        write_state(run_dir, state)
        return state


@dataclass
class Collected:
    batches: int = 0
    judged: int = 0
    errors: int = 0
    reasks: int = 0
    unanswered: int = 0
    """Requests the queue never ran (expired, cancelled): sent again by the next submit."""
    skipped: int = 0
    """Result lines for items already judged."""
    unknown: int = 0
    """Result lines no open batch asked for."""
    still_open: list[BatchRecord] = field(default_factory=list)
    ready: int = 0
    waiting: int = 0


def _collect_lines(
    run: BatchRun, calls: dict[str, BatchCall], judged: set[str], results: Iterable[Result], writer: JudgmentWriter
) -> tuple[Collected, list[BatchCall]]:
    report = Collected()
    reasks: list[BatchCall] = []
    answered: set[str] = set()
    cache = _cache(run)
    for result in results:
        batch_call = calls.get(result.custom_id)
        if batch_call is None or result.custom_id in answered:
            report.unknown += 1
            continue
        answered.add(result.custom_id)
        if all(key in judged for key in batch_call.keys):
            report.skipped += 1
            continue
        if result.unanswered:
            report.unanswered += 1
            continue
        call = run.call_for(batch_call.keys)
        if result.reply is None:
            judgments = failed(run, batch_call, call, result.error or "no reply")
            report.errors += len(judgments)
        else:
            if cache is not None:
                cache.put(_cache_key(run, call, batch_call), result.reply)
            judgments, again = settle(run, batch_call, call, result.reply)
            if again is not None:
                reasks.append(again)
                report.reasks += 1
        for judgment in judgments:
            if judgment.key not in judged:
                writer.append(judgment)
                judged.add(judgment.key)
                report.judged += 1
    return report, reasks


def _add(total: Collected, part: Collected) -> None:
    for name in ("judged", "errors", "reasks", "unanswered", "skipped", "unknown"):
        setattr(total, name, getattr(total, name) + getattr(part, name))


async def collect(run: BatchRun, queue: BatchQueue | None, from_file: Path | None = None) -> Collected:
    """Read every ended batch's results (or a results file from vLLM's run_batch) into judgments.jsonl."""
    started = time.monotonic()
    total = Collected()
    with RunLock(run.run_dir):
        state = read_state(run.run_dir)
        if from_file is not None:
            records = [r for r in open_batches(state) if r.status == "exported"]
            if not records:
                raise RunError(
                    f"{run.run_dir}: no exported batch is waiting for results; write one with "
                    f"`evaluator batch export {run.run_dir} FILE`"
                )
            calls = {cid: c for r in records for cid, c in read_calls(run.run_dir, r).items()}
            offset = min(r.judged_offset for r in records)
            sources = [(records, calls, offset, read_results_file(from_file))]
        else:
            assert queue is not None
            sources = []
            for record in open_batches(state):
                if record.batch_id is not None and not ended(record):
                    _update(record, await queue.retrieve(record.batch_id))
                if record.batch_id is None or not ended(record):
                    total.still_open.append(record)
                    continue
                data = b""
                for file_id in (record.output_file_id, record.error_file_id):
                    if file_id:
                        data += (await queue.download(file_id)).rstrip(b"\n") + b"\n"
                source = f"batch {record.batch_id}"
                sources.append(
                    ([record], read_calls(run.run_dir, record), record.judged_offset, read_results(data, source))
                )
        for records, calls, offset, results in sources:
            judged = keys_judged_after(run.run_dir, offset)
            with JudgmentWriter(run.run_dir) as writer:
                part, reasks = _collect_lines(run, calls, judged, results, writer)
            _add(total, part)
            total.batches += len(records)
            for record in records:
                record.collected = True
            state.reasks += reasks
            write_state(run.run_dir, state)
        kept = {j.key: j for j in load_judgments(run.run_dir) if j.status in RESUME_KEEPS_FAILED}
        with JudgmentWriter(run.run_dir) as writer:
            work = plan_work(run, kept, _busy(run, state))
            for judgment in work.decided:
                writer.append(judgment)
        state.waiting = work.waiting
        write_state(run.run_dir, state)
        total.ready = sum(len(g) for g in work.groups) + sum(len(c.keys) for c in state.reasks)
        total.waiting = work.waiting
        if run.judge.cache is not None:
            run.judge.cache.flush()
        _finish(run, time.monotonic() - started)
    return total


async def cancel(run_dir: Path, queue: BatchQueue) -> list[BatchRecord]:
    """Ask the provider to cancel every open batch; what they finished is still collected."""
    with RunLock(run_dir):
        state = read_state(run_dir)
        cancelled = []
        for record in open_batches(state):
            if record.batch_id is not None and not ended(record) and record.status != "cancelling":
                _update(record, await queue.cancel(record.batch_id))
                cancelled.append(record)
        write_state(run_dir, state)
        return cancelled


def _finish(run: BatchRun, elapsed: float) -> None:
    """The manifest brought up to date with the judgments so far, costed at batch prices."""
    judgments = load_judgments(run.run_dir)
    price = batch_price(judge_price(run.judge.settings))
    manifest = finished_manifest(run.manifest, judgments, run.planned, price, elapsed, None, None)
    write_manifest(run.run_dir, manifest)
    run.manifest = manifest
    if manifest.samples > 1:
        rubrics = {p.rubric.id: p.rubric for p in run.plans}
        aggregates = aggregate_samples(judgments, rubrics, manifest.aggregate)
        write_atomic(run.run_dir / AGGREGATES, "".join(a.model_dump_json() + "\n" for a in aggregates))
