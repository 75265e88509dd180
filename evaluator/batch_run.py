"""A run folder opened for batch work: made as `evaluator run` makes it, or reopened as recorded (the
same rubrics, transcripts, mode and subset, refused if any changed), with the judge that builds its
requests and reads its replies, and its manifest kept up to date at batch prices."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evaluator.config import JudgeSettings, OutputMode, RunConfig
from evaluator.judges.base import JudgeCall
from evaluator.judges.openai import OpenAIJudge
from evaluator.judges.pricing import batch_price
from evaluator.judges.select import judge_price
from evaluator.judges.shape import FALLBACKS
from evaluator.manifest import RunError, check_resumable, finished_manifest, new_manifest, recorded_reading
from evaluator.models import Rubric, RunManifest, Transcript
from evaluator.plan import JudgeRequest, TurnPlan, select_work
from evaluator.prompts import PromptRenderer, check_templates
from evaluator.reading import ReadOptions
from evaluator.runner import make_call, shelve_inputs, write_aggregates
from evaluator.store import (
    JUDGMENTS,
    Tally,
    create_run_dir,
    iter_judgments,
    new_run_id,
    read_manifest,
    superseded_lines,
    write_manifest,
    write_transcripts,
)
from evaluator.transcript_shelf import TranscriptShelf

BATCH_JUDGE = "openai-batch"
"""What the manifest's judge record says under "batch", so a reader knows the cost is at batch prices."""
OUTPUT_IN_FORCE = "output_in_force"
"""The manifest's judge record of the output format the run's next requests go out in: the one chosen, or
with `--output-format auto` where the run stepped down to after the endpoint refused a format. (A live run
steps down within one process and records the format on each judgment; a batch run steps down between
commands, so the manifest carries it from one to the next.)"""
OUTPUT_SINCE = "output_since"
"""Per format stepped down to, the name of the first batch sent in it: batches are named in creation order,
so every batch's format is known when its replies are read."""
STEPS: tuple[OutputMode, ...] = ("json_schema", "json_object", "text")
SEED_LEFT_OUT = "seed_left_out_since"
"""The manifest's judge record of the first batch whose lines go without the default seed, after the endpoint
refused it (as the live judge leaves it out); absent while the seed is sent."""
SYSTEM_FOLDED = "system_folded_since"
"""The manifest's judge record of the first batch whose lines go with the instructions folded into the first
user message, after the endpoint's chat template refused a system message (as the live judge folds them);
absent while a system message is sent."""


@dataclass
class BatchRun:
    """A run folder opened for batch work: its manifest, the judge that builds requests and reads replies
    (its client reaches the queue), and its plan, made as it is walked from the transcripts on a shelf, so
    a run holds per transcript its facts, not its turns, and no request until it is needed."""

    run_dir: Path
    manifest: RunManifest
    judge: OpenAIJudge
    renderer: PromptRenderer
    transcripts: TranscriptShelf
    rubrics: list[Rubric]
    """The rubrics the run judges, in plan order."""
    plans: Iterable[TurnPlan]
    """Every turn plan, walked again (and its transcripts parsed again) each time it is iterated."""
    planned: int
    _positions: dict[str, int] = field(init=False, repr=False)
    _parsed: tuple[int, Transcript] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._positions = {facts.id: i for i, facts in enumerate(self.transcripts.facts)}

    def requests_for(self, keys: Iterable[str]) -> list[JudgeRequest]:
        """The planned requests of recorded item keys, made again from the key: the transcript is parsed
        from the shelf (once for the keys of one session in a row)."""
        return [self._request(key) for key in keys]

    def _request(self, key: str) -> JudgeRequest:
        parts = key.split("/")  # models.item_key; only a transcript id may hold a slash
        if len(parts) < 5:
            raise self._not_planned(key)
        rubric_id, transcript_id, (turn, criterion_id, sample) = parts[0], "/".join(parts[1:-3]), parts[-3:]
        rubric = next((r for r in self.rubrics if r.id == rubric_id), None)
        criterion = next((c for c in rubric.criteria if c.id == criterion_id), None) if rubric else None
        position = self._positions.get(transcript_id)
        if rubric is None or criterion is None or position is None or not turn.isdigit() or not sample.isdigit():
            raise self._not_planned(key)
        if self._parsed is None or self._parsed[0] != position:
            self._parsed = (position, self.transcripts[position])
        transcript = self._parsed[1]
        therapist = [t for t in transcript.therapist_turns() if t.index == int(turn)]
        if not therapist or int(sample) >= self.manifest.samples:
            raise self._not_planned(key)
        return TurnPlan(rubric, transcript, therapist[0], ((criterion,),)).request(criterion, int(sample))

    def _not_planned(self, key: str) -> RunError:
        return RunError(
            f"{self.run_dir}: item {key} of a recorded batch is not in the run's plan any more; "
            "were its transcripts or rubrics moved? Restore them, or start a new run"
        )

    def call_for(self, keys: Iterable[str]) -> JudgeCall:
        """The judge call for recorded item keys, rendered again: templates and rubrics are unchanged
        (check_resumable said so), so the messages are those that were sent."""
        return make_call(self.renderer, self.requests_for(keys), self.manifest.mode)

    async def aclose(self) -> None:
        try:
            await self.judge.aclose()
        finally:
            self.transcripts.close()


def batch_judge(settings: JudgeSettings, offline: bool = False) -> OpenAIJudge:
    return OpenAIJudge(replace(settings, kind="openai"), offline=offline)


def describe(judge: OpenAIJudge) -> dict[str, Any]:
    settings = judge.settings
    prices = str(settings.prices_file) if settings.prices_file else None
    return {**judge.describe(), "batch": BATCH_JUDGE, "prices": prices, OUTPUT_IN_FORCE: judge.output}


def output_in_force(manifest: RunManifest) -> OutputMode:
    """The format the run's next requests go out in (see OUTPUT_IN_FORCE)."""
    recorded = manifest.judge.get(OUTPUT_IN_FORCE)
    return recorded if recorded in STEPS else _first_output(manifest)


def sent_output(manifest: RunManifest, batch: str) -> OutputMode:
    """The format the lines of the batch named `batch` went out in: the last step down made before it."""
    since = manifest.judge.get(OUTPUT_SINCE) or {}
    reached = [STEPS.index(output) for output, first in since.items() if output in STEPS and int(first) <= int(batch)]
    return STEPS[max(reached)] if reached else _first_output(manifest)


def _first_output(manifest: RunManifest) -> OutputMode:
    """The format the run started in: the one chosen, or strict json_schema under auto."""
    chosen = manifest.judge.get("output")
    return chosen if chosen in STEPS else "json_schema"


def step_down(run: BatchRun, refused: OutputMode, next_batch: str) -> bool:
    """The endpoint refused a line for its output format. With `--output-format auto` the run steps one
    format down, as the live judge does (only from the format in force, so each step is taken once), from
    the batch named `next_batch` on, and True says the line is to be sent again; False when the format was
    chosen or none is left below it."""
    if run.judge.settings.output != "auto" or refused not in FALLBACKS:
        return False
    if output_in_force(run.manifest) == refused:
        lower = FALLBACKS[refused]
        since = {**(run.manifest.judge.get(OUTPUT_SINCE) or {}), lower: next_batch}
        judge = {**run.manifest.judge, OUTPUT_IN_FORCE: lower, OUTPUT_SINCE: since}
        run.manifest = run.manifest.model_copy(update={"judge": judge})
    return True


def seed_left_out(manifest: RunManifest, batch: str | None = None) -> bool:
    """Whether the lines of the batch named `batch` (None: the run's next requests) went without the seed."""
    return _since(manifest, SEED_LEFT_OUT, batch)


def leave_out_seed(run: BatchRun, call: JudgeCall, next_batch: str) -> bool:
    """The endpoint refused the seed of a line sent with it. A seed the user did not choose is left out from
    the batch named `next_batch` on, as the live judge leaves it out, and True says the line is to be sent
    again; False when the seed was chosen (--seed, --param seed or the rubric's parameters)."""
    if not run.judge.shape.seed_is_default(call):
        return False
    _note_since(run, SEED_LEFT_OUT, next_batch)
    return True


def system_folded(manifest: RunManifest, batch: str | None = None) -> bool:
    """Whether the lines of the batch named `batch` (None: the run's next requests) went folded."""
    return _since(manifest, SYSTEM_FOLDED, batch)


def fold_system_from(run: BatchRun, next_batch: str) -> None:
    """The endpoint refused a line's system message: lines go folded from the batch named `next_batch` on,
    as the live judge folds them (see RequestShape.adapt)."""
    _note_since(run, SYSTEM_FOLDED, next_batch)


def _since(manifest: RunManifest, record: str, batch: str | None) -> bool:
    """Whether the manifest's judge record names, under `record`, a first batch at or before `batch`."""
    since = manifest.judge.get(record)
    return since is not None and (batch is None or int(since) <= int(batch))


def _note_since(run: BatchRun, record: str, next_batch: str) -> None:
    """Record in the manifest's judge record that lines change from `next_batch` on, unless already noted."""
    if run.manifest.judge.get(record) is None:
        run.manifest = run.manifest.model_copy(update={"judge": {**run.manifest.judge, record: next_batch}})


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
    rubrics, shelf, skipped, files = shelve_inputs(config)
    try:
        if skipped:
            raise RunError("cannot read " + "; ".join(s.error for s in skipped) + "; fix or remove the file(s)")
        judge = batch_judge(config.judge, offline)
        renderer = PromptRenderer(config.prompts_dir)
        check_templates(rubrics, renderer, (config.mode,))
        work = select_work(shelf, rubrics, config.samples, config.subset)
        rubrics = [r for r in rubrics if r.id in work.rubric_ids]
        run_id = config.run_id or new_run_id()
        manifest = new_manifest(
            config, run_id, judge, rubrics, renderer, work.transcripts, files, skipped, work.planned
        ).model_copy(update={"judge": describe(judge), "subset": work.subset})
        run_dir = create_run_dir(config.output, run_id)
        write_transcripts(run_dir, work.transcripts)
        write_manifest(run_dir, manifest)
    except BaseException:
        shelf.close()
        raise
    return BatchRun(run_dir, manifest, judge, renderer, work.transcripts, rubrics, work.plans, work.planned)


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
    rubrics, shelf, _, _ = shelve_inputs(config)
    try:
        judge = batch_judge(settings, offline)
        judge.output = output_in_force(manifest)
        judge.shape.seed_refused = seed_left_out(manifest)
        judge.shape.system_folded = system_folded(manifest)
        renderer = PromptRenderer()
        work = select_work(shelf, rubrics, config.samples, config.subset)
        rubrics = [r for r in rubrics if r.id in work.rubric_ids]
        check_resumable(manifest, rubrics, judge, work.transcripts, renderer)
    except BaseException:
        shelf.close()
        raise
    return BatchRun(run_dir, manifest, judge, renderer, work.transcripts, rubrics, work.plans, manifest.items_planned)


def finish(run: BatchRun, elapsed: float) -> None:
    """The manifest brought up to date with the judgments so far, costed at batch prices."""
    superseded = superseded_lines(run.run_dir / JUDGMENTS)
    tally = Tally()
    for judgment in iter_judgments(run.run_dir, superseded):
        tally.add(judgment.status, judgment.usage)
    price = batch_price(judge_price(run.judge.settings))
    manifest = finished_manifest(run.manifest, tally, run.planned, price, elapsed, None, None)
    write_manifest(run.run_dir, manifest)
    run.manifest = manifest
    if manifest.samples > 1:
        write_aggregates(run.run_dir, manifest, run.rubrics, superseded)
