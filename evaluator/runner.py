"""Orchestrate a run: read, plan, render, judge, store, summarise.

Work is spread over a fixed pool of async workers, one therapist turn (all of one rubric's criteria,
in dependency order) at a time, so judge calls stay bounded by `concurrency` however large the batch.
Every judgment is appended to disk as it arrives; a resumed run skips the keys already there.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from evaluator.judges.base import Judge, JudgeRequest, judgment_for
from evaluator.judges.select import JudgeSettings, make_judge
from evaluator.models import (
    STATUSES,
    Criterion,
    Item,
    Judgment,
    Rubric,
    RunManifest,
    SkippedFile,
    Status,
    Transcript,
    Usage,
    item_key,
)
from evaluator.plan import TurnPlan, applicability_after, plan_turns, static_applicability
from evaluator.prompts import PromptRenderer
from evaluator.rubrics import load_rubrics
from evaluator.store import JudgmentWriter, load_judgments, new_run_id, read_manifest, write_manifest
from evaluator.transcripts import ReadOptions, discover, read_all


class RunError(RuntimeError):
    """A run that cannot start; nothing has been written."""


def package_version() -> str:
    try:
        return version("therapist-evaluator")
    except PackageNotFoundError:
        return "0+unknown"


@dataclass
class RunConfig:
    transcripts: Sequence[Path] = (Path("transcripts"),)
    rubrics: Sequence[Path] = (Path("rubrics"),)
    output: Path = Path("results")
    judge: JudgeSettings = field(default_factory=JudgeSettings)
    read_options: ReadOptions = field(default_factory=ReadOptions)
    prompts_dir: Path | None = None
    concurrency: int = 8
    samples: int = 1
    run_id: str | None = None
    resume: Path | None = None
    retry_failed: bool = False
    command: Sequence[str] = ()
    show_progress: bool = True


@dataclass
class RunResult:
    run_dir: Path
    manifest: RunManifest
    skipped: list[SkippedFile]

    @property
    def ok(self) -> bool:
        return not self.skipped and self.manifest.counts.get("error", 0) == 0


@dataclass
class _Ledger:
    """Running totals for the manifest and the progress bar."""

    counts: Counter[str] = field(default_factory=Counter)
    usage: Usage = field(default_factory=Usage)

    def add(self, judgment: Judgment) -> None:
        self.counts[judgment.status] += 1
        self.usage = Usage(
            prompt_tokens=self.usage.prompt_tokens + judgment.usage.prompt_tokens,
            cached_tokens=self.usage.cached_tokens + judgment.usage.cached_tokens,
            completion_tokens=self.usage.completion_tokens + judgment.usage.completion_tokens,
        )


class _TurnWorker:
    """Judges the criteria of one turn in dependency order; hands each judgment to `sink`."""

    def __init__(
        self, judge: Judge, renderer: PromptRenderer, done: dict[str, Judgment], sink: Callable[[Judgment], None]
    ) -> None:
        self.judge, self.renderer, self.done, self.sink = judge, renderer, done, sink

    async def run(self, plan: TurnPlan) -> None:
        for stage in plan.stages:
            for criterion in stage:
                for sample in range(plan.samples):
                    item = Item(
                        rubric_id=plan.rubric.id,
                        transcript_id=plan.transcript.id,
                        turn_index=plan.turn.index,
                        criterion_id=criterion.id,
                        sample=sample,
                    )
                    if item.key not in self.done:
                        self.sink(await self._judge(plan, criterion, item))

    async def _judge(self, plan: TurnPlan, criterion: Criterion, item: Item) -> Judgment:
        bare = JudgeRequest(item, plan.rubric, criterion, plan.transcript, plan.turn)
        status, reason = self._decided_without_judge(plan, criterion)
        if status is not None:
            return judgment_for(
                bare,
                self.judge.name,
                status=status,
                rationale=reason or "",
                unscored_reason=reason if status == "unscored" else None,
            )
        rendered = self.renderer.render(plan.rubric, criterion, plan.transcript, plan.turn)
        request = replace(
            bare,
            messages=rendered.messages,
            template_hash=rendered.template_hash,
            prompt_hash=rendered.prompt_hash,
        )
        (judgment,) = await self.judge.judge([request])
        return judgment

    def _decided_without_judge(self, plan: TurnPlan, criterion: Criterion) -> tuple[Status | None, str | None]:
        reason = static_applicability(criterion, plan.transcript, plan.turn)
        if reason is not None:
            return "not_applicable", reason
        rule = criterion.applies_when
        if rule is None or rule.criterion is None:
            return None, None
        prerequisite = item_key(plan.transcript.id, plan.turn.index, rule.criterion.criterion)
        return applicability_after(criterion, self.done.get(prerequisite))


def _progress(console: Console, enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]judging"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f}/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
        refresh_per_second=4,
        transient=False,
    )


def _read_inputs(config: RunConfig) -> tuple[list[Rubric], list[Transcript], list[SkippedFile], list[Path]]:
    rubrics = load_rubrics(list(config.rubrics))
    files = discover(list(config.transcripts))
    transcripts, bad = read_all(files, config.read_options)
    skipped = [SkippedFile(path=str(path), error=str(error)) for path, error in bad]
    if not transcripts:
        detail = "; ".join(s.error for s in skipped) or "no transcript files found"
        raise RunError(f"nothing to evaluate: {detail}")
    return rubrics, transcripts, skipped, files


def _new_manifest(config: RunConfig, run_id: str, judge: Judge, rubrics: list[Rubric], renderer: PromptRenderer,
                  transcripts: list[Transcript], files: list[Path], skipped: list[SkippedFile], planned: int) -> RunManifest:
    return RunManifest(
        run_id=run_id,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=list(config.command),
        package_version=package_version(),
        transcripts=[t.id for t in transcripts],
        transcript_files=[str(f) for f in files],
        skipped_files=skipped,
        rubrics={
            r.id: {"version": r.version, "hash": r.hash, "file": r.source, "definition": r.model_dump(mode="json", by_alias=True)}
            for r in rubrics
        },
        template_hashes={r.id: renderer.template_hash_for(r) for r in rubrics},
        judge=judge.describe(),
        samples=config.samples,
        items_planned=planned,
    )


def _check_unchanged(manifest: RunManifest, rubrics: list[Rubric]) -> None:
    """A resumed run must judge with the rubrics it started with, or its results would mix two rubrics."""
    for rubric in rubrics:
        recorded = manifest.rubrics.get(rubric.id, {}).get("hash")
        if recorded != rubric.hash:
            raise RunError(
                f"cannot resume {manifest.run_id}: rubric {rubric.id!r} ({rubric.source}) changed since the run "
                "started; start a new run instead"
            )


async def run_async(config: RunConfig, console: Console | None = None) -> RunResult:
    """Evaluate transcripts with rubrics and write results/<run-id>/; see RunConfig for the knobs."""
    console = console or Console(stderr=True, soft_wrap=True)
    started = time.monotonic()
    previous = read_manifest(config.resume) if config.resume is not None else None
    if previous is not None:
        config = replace(
            config,
            transcripts=[Path(f) for f in previous.transcript_files],
            rubrics=[Path(r["file"]) for r in previous.rubrics.values()],
            samples=previous.samples,
        )
    rubrics, transcripts, skipped, files = _read_inputs(config)
    for entry in skipped:
        console.print(f"[red]skipped[/red] {entry.error}", highlight=False)
    judge = make_judge(config.judge, console)
    renderer = PromptRenderer(config.prompts_dir)
    plans = plan_turns(transcripts, rubrics, config.samples)
    planned = sum(p.n_items for p in plans)

    if previous is not None and config.resume is not None:
        _check_unchanged(previous, rubrics)
        run_dir, manifest = config.resume, previous
        kept = ("ok", "not_applicable") if config.retry_failed else STATUSES
        done = {j.key: j for j in load_judgments(run_dir) if j.status in kept}
    else:
        run_id = config.run_id or new_run_id()
        run_dir = config.output / run_id
        manifest = _new_manifest(config, run_id, judge, rubrics, renderer, transcripts, files, skipped, planned)
        done = {}
    run_dir.mkdir(parents=True, exist_ok=True)
    write_manifest(run_dir, manifest)

    ledger = _Ledger()
    progress = _progress(console, config.show_progress)
    task = progress.add_task("judging", total=planned, completed=len(done), rate=0.0)
    with JudgmentWriter(run_dir) as writer, progress:

        def sink(judgment: Judgment) -> None:
            writer.append(judgment)
            done[judgment.key] = judgment
            ledger.add(judgment)
            progress.update(task, advance=1, rate=sum(ledger.counts.values()) / max(time.monotonic() - started, 1e-9))

        queue: asyncio.Queue[TurnPlan] = asyncio.Queue()
        for plan in plans:
            queue.put_nowait(plan)
        worker = _TurnWorker(judge, renderer, done, sink)

        async def drain() -> None:
            while not queue.empty():
                await worker.run(queue.get_nowait())

        try:
            await asyncio.gather(*(drain() for _ in range(max(1, config.concurrency))))
        finally:
            await judge.aclose()

    counts = Counter(j.status for j in load_judgments(run_dir))
    manifest = manifest.model_copy(
        update={
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "counts": {status: counts.get(status, 0) for status in STATUSES},
            "usage": ledger.usage,
            "elapsed_s": round(manifest.elapsed_s + time.monotonic() - started, 3),
            "complete": sum(counts.values()) >= planned,
        }
    )
    write_manifest(run_dir, manifest)
    return RunResult(run_dir, manifest, skipped)


def run(config: RunConfig | None = None, **overrides: object) -> RunResult:
    """Synchronous entry point for scripts and notebooks: `evaluator.run(transcripts=[...], rubrics=[...])`."""
    config = config or RunConfig()
    for name, value in overrides.items():
        if not hasattr(config, name):
            raise TypeError(f"unknown run option {name!r}")
        setattr(config, name, value)
    return asyncio.run(run_async(config))
