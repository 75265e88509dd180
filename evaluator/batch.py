"""Judge through a batch queue: OpenAI's Batch API (half the price, replies within 24 hours), or vLLM's
offline run_batch over the same request file. This module holds the commands' work: submit, refresh,
collect and cancel; the run folder is opened by evaluator.batch_run, what can be sent now is
evaluator.batch_plan, and replies become judgments in evaluator.batch_replies.

A batch run is a run folder like any other. `submit` plans the items as `evaluator run` would, records
what rules decide without a judge, and writes each judge call as a request line whose body is the one
the live judge would send (same prompt, schema, seed, reply cap); `collect` reads the replies through
the live judge's own validation into the same judgments.jsonl. What is in flight is recorded in the run
folder (see evaluator.batch_state), so every command resumes from there, and an item already judged is
never sent or written again. What cannot be done in one round is done by the next `submit`: re-asks
after an invalid reply, requests that failed or that an expired or cancelled batch never ran, criteria
whose `applies_when` reads another criterion's verdict, once that verdict is collected, and under
`--output-format auto` requests the endpoint refused for their output format, one format down, and
requests whose system message the endpoint's chat template refused, folded into the first user message.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, NamedTuple

from evaluator.batch_api import BatchQueue
from evaluator.batch_files import Limits, Result, Splitter, read_results, read_results_file, request_line
from evaluator.batch_plan import Work, busy_keys, plan_work
from evaluator.batch_replies import (
    failed,
    refused_format,
    refused_seed,
    refused_system_role,
    reply_cache_key,
    request_body,
    settle,
)
from evaluator.batch_run import (
    BatchRun,
    finish,
    fold_system_from,
    leave_out_seed,
    output_in_force,
    seed_left_out,
    sent_output,
    step_down,
    system_folded,
)
from evaluator.batch_state import (
    BatchFilesWriter,
    ended,
    iter_calls,
    next_name,
    now,
    open_batches,
    read_state,
    request_lines,
    requests_path,
    write_state,
)
from evaluator.config import OutputMode
from evaluator.judges.base import JudgeCall, judgment_for
from evaluator.judges.shape import REFUSED_PARAMETER_HINTS, SYSTEM_ROLE_HINT
from evaluator.manifest import RunError
from evaluator.models import BatchCall, BatchRecord, BatchState, BatchStatus
from evaluator.plan import JudgeRequest, prerequisites
from evaluator.prompts import PromptError
from evaluator.runner import RESUME_KEEPS_FAILED, RETRY_FAILED_KEEPS, make_call
from evaluator.store import (
    JudgmentWriter,
    RunLock,
    judgments_size,
    keys_judged_after,
    scan_run,
    write_lines_atomic,
    write_manifest,
)

FORMAT_FIX = "a batch run keeps the output format it started with: submit a new run, and {hint}".format(
    hint=REFUSED_PARAMETER_HINTS["response_format"]
)
"""Said after a refusal of a format chosen with --output-format, which the run never steps down from."""
SEED_FIX = (
    "the seed was chosen (--seed, --param seed or the rubric's parameters), so it is not left out: submit a new "
    "run without it (--param seed=null leaves it out), or with a model that takes one"
)
"""Said after a refusal of a seed the user chose; a default seed is left out instead (see leave_out_seed)."""
FOLDED_FIX = (
    "the endpoint refused the conversation even with the instructions folded into the first user message "
    f"(it had refused a system message before): {SYSTEM_ROLE_HINT}"
)
"""Said after a refusal of a line sent folded: folding was the one way round a chat template without a system role."""


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


class _Files:
    """Request lines gathered into batch files as they are made, each file written as its lines come and
    recorded when the limits close it (with no limits, for an export, one file)."""

    def __init__(self, run: BatchRun, state: BatchState, limits: Limits | None, status: BatchStatus) -> None:
        self.run, self.state, self.status = run, state, status
        self.splitter = Splitter(limits) if limits is not None else None
        self.records: list[BatchRecord] = []
        self.writer: BatchFilesWriter | None = None

    def add(self, batch_call: BatchCall, line: bytes) -> None:
        if self.splitter is not None and self.splitter.starts_file(line):
            self.close()
        if self.writer is None:
            self.writer = BatchFilesWriter(self.run.run_dir, next_name(self.state))
        self.writer.add(line, batch_call)

    def close(self) -> None:
        if self.writer is None:
            return
        self.writer.close()
        record = BatchRecord(
            name=self.writer.name,
            status=self.status,
            requests=self.writer.count,
            judged_offset=judgments_size(self.run.run_dir),
            created_at=now(),
        )
        self.state.batches.append(record)
        self.records.append(record)
        self.writer = None


def _prepare(run: BatchRun, state: BatchState, retry_failed: bool, writer: JudgmentWriter, files: _Files) -> Submitted:
    """Write the requests to send now into batch files as the plan is walked: re-asks first, then new
    calls. Items the rules decide, prompts that cannot be rendered and replies in the response cache are
    judged at once; re-asks after a cached reply go last."""
    scan = scan_run(
        run.run_dir, RETRY_FAILED_KEEPS if retry_failed else RESUME_KEEPS_FAILED, prerequisites(run.rubrics)
    )
    busy = busy_keys(run, state)
    in_flight = len(busy) - sum(len(c.keys) for c in state.reasks)
    work = Work()
    groups = plan_work(run, scan.done, scan.verdicts, busy, work, writer.append)
    reasks = ((c, run.requests_for(c.keys)) for c in state.reasks)
    new = ((BatchCall(custom_id=g[0].item.key, keys=[r.item.key for r in g]), g) for g in groups)
    later: deque[tuple[BatchCall, JudgeCall]] = deque()
    pending: Iterator[tuple[BatchCall, list[JudgeRequest] | JudgeCall]] = chain(reasks, new, _drain(later))
    cache = run.judge.cache
    sent = hits = errors = 0
    for batch_call, group in pending:
        try:
            call = group if isinstance(group, JudgeCall) else make_call(run.renderer, group, run.manifest.mode)
        except PromptError as exc:
            for request in group if isinstance(group, list) else ():
                error = f"the prompt could not be rendered: {exc}"
                writer.append(judgment_for(request, run.judge.name, status="error", error=error))
                errors += 1
            continue
        if cache is not None and (raw := cache.get(reply_cache_key(run, call, batch_call))) is not None:
            hits += 1
            judgments, again = settle(run, batch_call, call, raw, from_cache=True)
            for judgment in judgments:
                writer.append(judgment)
            if again is not None:
                later.append((again, call))
            continue
        files.add(batch_call, request_line(batch_call.custom_id, request_body(run, call, batch_call)))
        sent += 1
    files.close()
    return Submitted(files.records, sent, hits, work.decided + errors, work.waiting, in_flight)


def _drain(queue: deque[tuple[BatchCall, JudgeCall]]) -> Iterator[tuple[BatchCall, JudgeCall]]:
    """The queue's items until it is empty, taking those added on the way."""
    while queue:
        yield queue.popleft()


async def _launch(run: BatchRun, state: BatchState, record: BatchRecord, queue: BatchQueue) -> None:
    """Upload a prepared batch's file and create the batch, recording each id the moment it exists; a
    batch a stopped submit already created is found by its file rather than created twice."""
    existing = None
    if record.input_file_id is None:
        name = f"{run.manifest.run_id}-{record.name}.jsonl"
        record.input_file_id = await queue.upload(name, requests_path(run.run_dir, record))
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
            write_lines_atomic(export, request_lines(run.run_dir, exported))
            return Submitted(exported, sum(r.requests for r in exported), 0, 0, state.waiting, 0)
        files = _Files(run, state, None if export else limits, "exported" if export else "preparing")
        with JudgmentWriter(run.run_dir) as writer:
            summary = _prepare(run, state, retry_failed, writer, files)
        state.reasks = []
        state.waiting = summary.waiting
        write_state(run.run_dir, state)
        if export is not None:
            write_lines_atomic(export, request_lines(run.run_dir, summary.batches))
        elif queue is not None:
            for record in summary.batches:
                await _launch(run, state, record, queue)
        finish(run, 0.0)
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
    refused_format: int = 0
    """Requests the endpoint refused for their output format under `--output-format auto`: sent again by
    the next submit, in the format now in force."""
    refused_seed: int = 0
    """Requests the endpoint refused for the default seed: sent again by the next submit, without it."""
    refused_system: int = 0
    """Requests whose system message the endpoint refused: sent again by the next submit, folded."""
    output: OutputMode = "json_schema"
    """The output format the next submit sends in."""
    still_open: list[BatchRecord] = field(default_factory=list)
    ready: int = 0
    waiting: int = 0


class Sent(NamedTuple):
    """A call of a batch as its calls file holds it, with the output format its batch went out in and whether
    it went without the seed, and folded."""

    line: bytes
    output: OutputMode
    seed_left_out: bool
    system_folded: bool


SentCalls = dict[str, Sent]


def _sent_calls(run: BatchRun, records: list[BatchRecord]) -> SentCalls:
    """The calls of batches by custom_id, each as its batch went out."""
    return {
        call.custom_id: Sent(
            line,
            sent_output(run.manifest, record.name),
            seed_left_out(run.manifest, record.name),
            system_folded(run.manifest, record.name),
        )
        for record in records
        for call, line in iter_calls(run.run_dir, record)
    }


def _collect_lines(
    run: BatchRun,
    calls: SentCalls,
    judged: set[str],
    results: Iterable[Result],
    writer: JudgmentWriter,
    next_batch: str,
) -> tuple[Collected, list[BatchCall]]:
    """Each result line into judgments, read as its request was sent (output format, seed); a line the
    endpoint refused for that format is left to the next submit when the run can step down (see step_down),
    and so is a line refused for the default seed (see leave_out_seed) or for its system message (see
    fold_system_from)."""
    report = Collected()
    reasks: list[BatchCall] = []
    answered: set[str] = set()
    cache = run.judge.cache
    for result in results:
        sent = calls.get(result.custom_id)
        if sent is None or result.custom_id in answered:
            report.unknown += 1
            continue
        answered.add(result.custom_id)
        batch_call = BatchCall.model_validate_json(sent.line)
        run.judge.output = sent.output  # replies are read as they were asked for, and recorded so
        run.judge.shape.seed_refused = sent.seed_left_out
        run.judge.shape.system_folded = sent.system_folded
        if all(key in judged for key in batch_call.keys):
            report.skipped += 1
            continue
        if result.unanswered:
            report.unanswered += 1
            continue
        call = run.call_for(batch_call.keys)
        if result.reply is None:
            error = result.error or "no reply"
            if refused_system_role(result):
                if not sent.system_folded:
                    fold_system_from(run, next_batch)
                    report.refused_system += 1
                    continue
                error = f"{error.rstrip('.')}; {FOLDED_FIX}"
            elif not sent.seed_left_out and refused_seed(result):
                if leave_out_seed(run, call, next_batch):
                    report.refused_seed += 1
                    continue
                error = f"{error.rstrip('.')}; {SEED_FIX}"
            elif run.judge.output != "text" and refused_format(result):
                if step_down(run, run.judge.output, next_batch):
                    report.refused_format += 1
                    continue
                error = f"{error.rstrip('.')}; {FORMAT_FIX}"
            judgments = failed(run, batch_call, call, error)
            report.errors += len(judgments)
        else:
            if cache is not None:
                cache.put(reply_cache_key(run, call, batch_call), result.reply)
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
    counts = ("judged", "errors", "reasks", "unanswered", "skipped", "unknown")
    for name in (*counts, "refused_format", "refused_seed", "refused_system"):
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
            offset = min(r.judged_offset for r in records)
            sources = [(records, _sent_calls(run, records), offset, read_results_file(from_file))]
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
                sources.append(([record], _sent_calls(run, [record]), record.judged_offset, read_results(data, source)))
        for records, calls, offset, results in sources:
            judged = keys_judged_after(run.run_dir, offset)
            with JudgmentWriter(run.run_dir) as writer:
                part, reasks = _collect_lines(run, calls, judged, results, writer, next_name(state))
            if part.refused_format or part.refused_seed or part.refused_system:
                write_manifest(run.run_dir, run.manifest)  # the step down, before its lines count as collected
            _add(total, part)
            total.batches += len(records)
            for record in records:
                record.collected = True
            state.reasks += reasks
            write_state(run.run_dir, state)
        run.judge.output = total.output = output_in_force(run.manifest)
        run.judge.shape.seed_refused = seed_left_out(run.manifest)
        run.judge.shape.system_folded = system_folded(run.manifest)
        scan = scan_run(run.run_dir, RESUME_KEEPS_FAILED, prerequisites(run.rubrics))
        work = Work()
        with JudgmentWriter(run.run_dir) as writer:
            for _ in plan_work(run, scan.done, scan.verdicts, busy_keys(run, state), work, writer.append):
                pass  # counted: what the next submit sends
        state.waiting = work.waiting
        write_state(run.run_dir, state)
        total.ready = work.ready + sum(len(c.keys) for c in state.reasks)
        total.waiting = work.waiting
        if run.judge.cache is not None:
            run.judge.cache.flush()
        finish(run, time.monotonic() - started)
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
