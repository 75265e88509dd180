"""A run's record: written when it starts, checked when it is resumed, completed when it ends.

A resumed run must judge exactly what it started with (the same rubrics, transcripts and judge), or
one judgments.jsonl would mix two experiments; the checks here refuse that with what changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from evaluator.config import RunConfig
from evaluator.errors import EvaluatorError
from evaluator.judges.base import Judge
from evaluator.judges.pricing import Price
from evaluator.metadata import MetadataSources, value_text
from evaluator.models import (
    MANIFEST_FORMAT,
    STATUSES,
    Rubric,
    RubricRecord,
    RunManifest,
    SkippedFile,
    Transcript,
)
from evaluator.prompts import PromptRenderer
from evaluator.reading import ReadOptions
from evaluator.store import Tally
from evaluator.transcript_shelf import TranscriptFacts, facts_of


class RunError(EvaluatorError, RuntimeError):
    """A run that cannot start, or cannot go on; the message says what to fix."""


def package_version() -> str:
    try:
        return version("therapist-evaluator")
    except PackageNotFoundError:
        return "0+unknown"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_manifest(
    config: RunConfig,
    run_id: str,
    judge: Judge,
    rubrics: list[Rubric],
    renderer: PromptRenderer,
    transcripts: Sequence[Transcript],
    files: list[Path],
    skipped: list[SkippedFile],
    planned: int,
) -> RunManifest:
    """The record a run starts with; of the transcripts it takes their facts (a shelf's are kept apart
    from the transcripts), so none is parsed for it."""
    facts = facts_of(transcripts)
    return RunManifest(
        run_id=run_id,
        created_at=_now(),
        command=config.judge.redactor().argv(config.command),
        package_version=package_version(),
        transcripts=[f.id for f in facts],
        transcript_metadata={f.id: f.metadata for f in facts},
        transcript_files=[str(f) for f in files],
        transcript_hashes={f.id: f.content_hash for f in facts},
        skipped_files=skipped,
        format_version=MANIFEST_FORMAT,
        rubrics={
            r.id: RubricRecord(
                version=r.version, hash=r.hash, file=r.source, definition=r.model_dump(mode="json", by_alias=True)
            )
            for r in rubrics
        },
        template_hashes={r.id: renderer.template_hash_for(r, config.mode) for r in rubrics},
        judge=judge.describe(),
        mode=config.mode,
        samples=config.samples,
        aggregate=config.aggregate,
        items_planned=planned,
        metadata_file=str(config.read_options.metadata.sidecar) if config.read_options.metadata.sidecar else None,
        meta_from_path=config.read_options.metadata.path_pattern,
        transcript_inputs=[str(p) for p in config.transcripts],
        unblind=config.unblind,
    )


def recorded_reading(manifest: RunManifest, options: ReadOptions | None = None) -> ReadOptions:
    """`options` with the metadata sources and blinding `manifest`'s run started with, for resuming it:
    a source given in `options` is kept (check_resumable then refuses it if the metadata it gives differs),
    and paths are read below the inputs the run named, as they were."""
    options = options or ReadOptions()
    sources = options.metadata
    recorded = MetadataSources(
        sidecar=sources.sidecar or (Path(manifest.metadata_file) if manifest.metadata_file else None),
        path_pattern=sources.path_pattern or manifest.meta_from_path,
        roots=tuple(map(Path, manifest.transcript_inputs)) or sources.roots,
    )
    return replace(options, metadata=recorded, unblind=options.unblind or manifest.unblind)


def check_resumable(
    manifest: RunManifest,
    rubrics: list[Rubric],
    judge: Judge,
    transcripts: Sequence[Transcript],
    renderer: PromptRenderer,
) -> None:
    """Refuses, saying what changed, a resume whose rubrics, prompt templates, judge, transcripts or
    blinding differ from the run's; the transcripts are compared by their facts, and only a changed one
    is parsed again."""
    _check_same_rubrics(manifest, rubrics)
    if judge.reads_prompt:
        _check_same_templates(manifest, rubrics, renderer)
    _check_same_judge(manifest, judge)
    facts = facts_of(transcripts)
    _check_same_transcripts(manifest, transcripts, facts)
    _check_same_blinding(manifest, facts)


def _check_same_rubrics(manifest: RunManifest, rubrics: list[Rubric]) -> None:
    for rubric in rubrics:
        recorded = manifest.rubrics.get(rubric.id)
        if recorded is None or recorded.hash != rubric.hash:
            raise RunError(
                f"cannot resume {manifest.run_id}: rubric {rubric.id!r} ({rubric.source}) changed since the run "
                "started; start a new run instead"
            )


def _check_same_templates(manifest: RunManifest, rubrics: list[Rubric], renderer: PromptRenderer) -> None:
    """A template edited mid-run would leave the run's judgments asked with two different prompts, and
    the edit's effect unreadable. Manifests before format 4 recorded the per-criterion template whatever
    the mode, so theirs is compared with that one."""
    mode = manifest.mode if manifest.format_version >= 4 else "per-criterion"
    for rubric in rubrics:
        recorded = manifest.template_hashes.get(rubric.id)
        if recorded is not None and recorded != renderer.template_hash_for(rubric, mode):
            raise RunError(
                f"cannot resume {manifest.run_id}: the prompt template of rubric {rubric.id!r} "
                f"({renderer.template_name(rubric, manifest.mode)}, or a template it includes) changed since the run "
                "started, so its judgments so far were asked with another prompt; undo the edit to finish this "
                "run, or start a new run (with the response cache, unchanged prompts cost nothing)"
            )


def _check_same_judge(manifest: RunManifest, judge: Judge) -> None:
    """The endpoint may change (a restarted local server serving the same model is the same judge);
    the judge and the model may not."""
    now = judge.describe()
    for field_name in ("judge", "model"):
        if manifest.judge.get(field_name) != now.get(field_name):
            was = ", ".join(f"{k}={manifest.judge.get(k)}" for k in ("judge", "model") if manifest.judge.get(k))
            raise RunError(f"cannot resume {manifest.run_id} with a different judge: it was run with {was}")


def _check_same_transcripts(
    manifest: RunManifest, transcripts: Sequence[Transcript], facts: Sequence[TranscriptFacts]
) -> None:
    """An edited file would mix judgments of two versions of a session under one id, and a turn index
    would point at another turn."""
    if not manifest.transcript_hashes:
        return
    now = {f.id: (index, f) for index, f in enumerate(facts)}
    problems, relabelled = [], []
    for transcript_id, recorded in manifest.transcript_hashes.items():
        found = now.get(transcript_id)
        was = manifest.transcript_metadata.get(transcript_id)
        if found is None:
            problems.append(f"{transcript_id} can no longer be read")
            continue
        index, current = found
        if current.content_hash == recorded:
            continue
        if was is not None and transcripts[index].model_copy(update={"metadata": was}).content_hash() == recorded:
            relabelled.append(f"{transcript_id}: {_metadata_change(was, current.metadata)}")
        else:
            problems.append(f"{transcript_id} ({current.source}) changed")
    problems += [f"{f.id} ({f.source}) is new" for f in facts if f.id not in manifest.transcript_hashes]
    if problems:
        raise RunError(
            f"cannot resume {manifest.run_id}: its transcripts changed since the run started: {'; '.join(problems)}. "
            "Restore them, or start a new run"
        )
    if relabelled:
        shown = "; ".join(relabelled[:5]) + (f"; and {len(relabelled) - 5} more" if len(relabelled) > 5 else "")
        raise RunError(
            f"cannot resume {manifest.run_id}: the metadata of {len(relabelled)} transcript(s) differs from what the "
            f"run recorded ({shown}), and one run holds one version of it. The run read metadata with "
            f"{_sources(manifest)}: resume with the same (the command line reuses the run's own when you give none), "
            "or start a new run (the response cache makes unchanged items free)"
        )


def _metadata_change(was: dict[str, Any], now: dict[str, Any]) -> str:
    """The fields that differ, e.g. 'condition "a" -> "b", site added'; at most three named."""
    changes = [
        f"{name} added"
        if name not in was
        else f"{name} removed"
        if name not in now
        else f'{name} "{value_text(was[name])}" -> "{value_text(now[name])}"'
        for name in sorted(set(was) | set(now))
        if name not in was or name not in now or value_text(was[name]) != value_text(now[name])
    ]
    return ", ".join(changes[:3]) + (f" and {len(changes) - 3} more" if len(changes) > 3 else "")


def _sources(manifest: RunManifest) -> str:
    given = [f"--metadata {manifest.metadata_file}"] if manifest.metadata_file else []
    given += [f"--meta-from-path '{manifest.meta_from_path}'"] if manifest.meta_from_path else []
    return " ".join(given) or "no sidecar or path pattern (the records alone)"


def _check_same_blinding(manifest: RunManifest, facts: Sequence[TranscriptFacts]) -> None:
    """Blinding changes every prompt, so one run is judged blind or unblinded throughout."""
    unblind = any(f.unblind for f in facts)
    if unblind != manifest.unblind:
        started = "with --unblind (the judge saw ids and metadata)" if manifest.unblind else "blind (without --unblind)"
        raise RunError(
            f"cannot resume {manifest.run_id}: it was started {started}, and one run is judged one way; resume it "
            f"{'with' if manifest.unblind else 'without'} --unblind, or start a new run"
        )


def finished_manifest(
    manifest: RunManifest,
    tally: Tally,
    planned: int,
    price: Price | None,
    elapsed_s: float,
    judging_s: float | None,
    stopped: str | None,
) -> RunManifest:
    """The manifest with what this session of the run did: counts by status, tokens, cost and time, from
    the Tally of the run's judgments (one per key)."""
    counts, usage = tally.counts, tally.usage
    return manifest.model_copy(
        update={
            "finished_at": _now(),
            "counts": {status: counts.get(status, 0) for status in STATUSES},
            "usage": usage,
            "cost_usd": round(price.cost(usage), 6) if price else None,
            "elapsed_s": round(manifest.elapsed_s + elapsed_s, 3),
            "judging_s": round(judging_s, 3) if judging_s is not None else None,
            "complete": sum(counts.values()) >= planned,
            "stopped": stopped,
        }
    )
