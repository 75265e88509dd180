"""Command-line values turned into the objects a run takes: reading options, judge settings, rubric paths.

Every value that cannot be used is a CliError saying which option and how to fix it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from evaluator.config import JudgeSettings, RunConfig
from evaluator.errors import EvaluatorError

if TYPE_CHECKING:  # at run time each function imports what it uses: `--help` loads this module, not the models
    from evaluator.models import Subset
    from evaluator.reading import ReadOptions

# Exit codes: 0 everything judged; 1 finished but something needs attention (a skipped input file, an
# errored judgment, an invalid file under `validate`); 2 nothing was done (bad rubric, bad option).
EXIT_OK, EXIT_ATTENTION, EXIT_FAILED = 0, 1, 2


class CliError(EvaluatorError):
    """An option that cannot be used; the message says how to fix it."""


def _pairs(values: Sequence[str], option: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, target = value.partition("=")
        if not sep or not key.strip() or not target.strip():
            raise CliError(f"{option} {value!r}: expected NAME=VALUE, e.g. {option} Doctor=therapist")
        pairs[key.strip()] = target.strip()
    return pairs


def read_options(args: argparse.Namespace) -> ReadOptions:
    from evaluator.metadata import MetadataSources
    from evaluator.reading import CsvColumns, ReadOptions

    columns = _pairs(args.csv_column, "--csv-column")
    unknown = sorted(set(columns) - {f.name for f in fields(CsvColumns)})
    if unknown:
        raise CliError(f"--csv-column {unknown[0]}=...: the field must be one of transcript, order, speaker, text")
    try:
        options = ReadOptions().with_aliases(_pairs(args.speaker, "--speaker"))
    except ValueError as exc:
        raise CliError(f"--speaker: {exc}") from None
    inputs = getattr(args, "transcripts", None) or getattr(args, "files", None) or ()  # render names one file
    sources = MetadataSources(sidecar=args.metadata, path_pattern=args.meta_from_path, roots=tuple(inputs))
    sources.check()  # a bad sidecar or pattern stops once, before any file is read
    return replace(
        options,
        csv_columns=replace(options.csv_columns, **columns),
        metadata=sources,
        unblind=getattr(args, "unblind", False),  # validate renders no session, so it has no --unblind
    )


def rubric_paths(values: Sequence[str]) -> list[Path]:
    """A rubric may be named by path or by id (`-r pacing`): ./rubrics/ first, then the installed ones."""
    from evaluator.rubrics import RUBRIC_SUFFIXES, find_rubric

    paths = []
    for value in values:
        path = Path(value)
        if not path.exists() and path.suffix not in RUBRIC_SUFFIXES:
            path = find_rubric(value) or path
        paths.append(path)
    return paths


def subset(args: argparse.Namespace, with_transcripts: bool = True) -> Subset | None:
    """The --transcript, --criterion, --turns and --limit options as one Subset (None: the whole plan);
    `render` names its transcript positionally, so it has no --transcript to read."""
    from evaluator.models import Subset

    limit = args.limit
    if limit is not None and limit < 1:
        raise CliError("--limit must be at least 1")
    chosen = Subset(
        transcripts=list(args.transcript) if with_transcripts else [],
        criteria=list(args.criterion),
        turns=args.turns,
        limit=limit,
    )
    return None if chosen.is_empty() else chosen


def judge_settings(args: argparse.Namespace) -> JudgeSettings:
    parameters = {}
    for key, raw in _pairs(args.param, "--param").items():
        try:
            parameters[key] = json.loads(raw)
        except json.JSONDecodeError:
            parameters[key] = raw
    for name in ("samples", "concurrency", "attempts", "retries"):
        if getattr(args, name) < 1:
            raise CliError(f"--{name} must be at least 1")
    return JudgeSettings(
        kind=args.judge,
        model=args.model,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        temperature=args.temperature,
        seed=args.seed,
        max_tokens=args.max_tokens,
        parameters=parameters,
        output=args.output_format,
        content_attempts=args.attempts,
        transport_attempts=args.retries,
        timeout_s=args.timeout,
        logprobs=args.logprobs,
        rpm=args.rpm,
        tpm=args.tpm,
        cache_path=None if args.no_cache else args.cache,
        prices_file=args.prices,
    )


def run_config(args: argparse.Namespace, resume: Path | None = None) -> RunConfig:
    """The RunConfig the run options describe; `run` and `watch` read them the same way."""
    reading = read_options(args)
    if resume is not None:  # metadata is read, and the judge blinded, as when the run started
        from evaluator.manifest import recorded_reading
        from evaluator.store import read_manifest

        reading = recorded_reading(read_manifest(resume), reading)
    return RunConfig(
        transcripts=args.transcripts,
        rubrics=rubric_paths(args.rubric) or list(RunConfig().rubrics),
        output=args.output,
        judge=judge_settings(args),
        read_options=reading,
        mode=args.mode,
        samples=args.samples,
        aggregate=args.aggregate,
        max_cost=args.max_cost,
        concurrency=args.concurrency,
        run_id=args.run_id,
        resume=resume,
        retry_failed=args.retry_failed,
        command=["evaluator", *args.argv],
        show_progress=not args.no_progress,
        subset=subset(args),
        write_report=not args.no_report,
        unblind=reading.unblind,
    )
