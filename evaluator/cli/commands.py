"""What each command does: parse nothing, print results; the same functions a notebook would call.

What only some commands need (the analysis and report modules with numpy, scipy, sklearn and pandas; the
dry-run estimate; the response cache) is imported inside those commands, so the others start fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Iterator

from rich.console import Console
from rich.markup import escape

from evaluator.cli.batch_command import cmd_batch
from evaluator.cli.contrast_command import cmd_contrast, print_report_groups
from evaluator.cli.options import EXIT_ATTENTION, EXIT_OK, CliError, read_options, run_config
from evaluator.cli.rubrics_command import cmd_rubrics
from evaluator.cli.subsets import cmd_render, print_subset_note
from evaluator.cli.watch_command import cmd_runs, cmd_watch
from evaluator.models import Rubric
from evaluator.prompts import PromptRenderer, check_templates
from evaluator.reading import ReadOptions, TranscriptError
from evaluator.rubrics import RUBRIC_SUFFIXES, RubricError, discover_rubrics, load_rubric, scale_summary
from evaluator.store import resolve_run
from evaluator.transcripts import discover, read_each


async def cmd_run(args: argparse.Namespace, console: Console) -> int:
    if args.retry_failed and args.resume is None:
        raise CliError("--retry-failed goes with --resume RUN")
    resume = resolve_run(args.resume, args.output) if args.resume is not None else None
    config = run_config(args, resume)
    if args.dry_run:
        from evaluator.estimate import dry_run, print_dry_run

        estimate = await dry_run(config)
        print_subset_note(estimate.subset, console)
        print_dry_run(estimate, console)
        return EXIT_OK
    from evaluator.api import run_async
    from evaluator.views.summary import print_summary

    result = await run_async(config)
    if result.manifest.stopped:
        console.print(
            f"[yellow]{escape(result.manifest.stopped)}[/yellow]; continue with --resume {escape(str(result.run_dir))}",
            highlight=False,
        )
    summary, summary_path, report_path = result.summary, result.summary_path, result.report_path
    print_summary(summary, console, per_transcript=len(summary.manifest.transcripts) <= 8)
    console.print(
        f"\nResults: {result.run_dir}/judgments.jsonl\nSummary: {summary_path}"
        + (f"\nReport:  {report_path}" if report_path is not None else ""),
        markup=False,
        highlight=False,
    )
    if result.skipped:
        console.print(f"[red]{len(result.skipped)} file(s) skipped; see above and manifest.json[/red]")
    return EXIT_OK if result.ok else EXIT_ATTENTION


def _validate_rubric(path: Path) -> str:
    rubric: Rubric = load_rubric(path)
    check_templates([rubric], PromptRenderer())
    return f"rubric {rubric.id} v{rubric.version}, {len(rubric.criteria)} criteria: " + ", ".join(
        f"{c.id} ({scale_summary(c)})" for c in rubric.criteria
    )


def _validated_transcripts(files: list[Path], options: ReadOptions) -> Iterator[tuple[Path, str | TranscriptError]]:
    """Each transcript file read as `run` reads them all (transcripts.read_each): a transcript id already
    read from an earlier file fails the later file here, as run would skip it. A path that does not exist
    fails alone instead of stopping the others."""
    present = []
    for file in files:
        try:
            present += discover([file])
        except TranscriptError as exc:
            yield file, exc
    for path, read in read_each(present, options):
        if isinstance(read, TranscriptError):
            yield path, read
        else:
            turns = sum(len(t.turns) for t in read)
            therapist = sum(len(t.therapist_turns()) for t in read)
            yield path, f"{len(read)} transcript(s), {turns} turns, {therapist} therapist turns"


def _cmd_validate(args: argparse.Namespace, console: Console) -> int:
    options = read_options(args)
    rubric_files: list[Path] = []
    transcript_files: list[Path] = []
    for path in args.files:
        if not path.is_dir():
            (rubric_files if path.suffix in RUBRIC_SUFFIXES else transcript_files).append(path)
            continue
        found = discover_rubrics([path])
        rubric_files += found
        try:
            transcript_files += discover([path])
        except TranscriptError:
            if not found:
                raise
    failed = 0

    def report(file: Path, outcome: str | Exception) -> None:
        nonlocal failed
        if isinstance(outcome, Exception):
            failed += 1
            console.print(f"[red]FAIL[/red] {escape(str(outcome))}", highlight=False)
        else:
            console.print(f"[green]ok[/green]   {escape(f'{file}: {outcome}')}", highlight=False)

    for file in rubric_files:
        try:
            report(file, _validate_rubric(file))
        except RubricError as exc:
            report(file, exc)
    checked = len(rubric_files)
    for file, outcome in _validated_transcripts(transcript_files, options):
        checked += 1
        report(file, outcome)
    console.print(f"{checked - failed} ok, {failed} invalid", highlight=False)
    return EXIT_ATTENTION if failed else EXIT_OK


def _cmd_agree(args: argparse.Namespace, console: Console) -> int:
    from evaluator.views.agreement import print_against, print_agreement, write_against, write_agreement

    if args.against is not None:
        before, after = (resolve_run(r, args.output) for r in (args.run, args.against))
        shifts, path = write_against(before, args.labels, after)
        print_against(shifts, console)
        console.print(f"\nAgreement before and after: {path}", markup=False, highlight=False)
        return EXIT_OK
    report, path = write_agreement(resolve_run(args.run, args.output), args.labels)
    print_agreement(report, console)
    console.print(f"\nAgreement: {path}", markup=False, highlight=False)
    return EXIT_OK


def _cmd_compare(args: argparse.Namespace, console: Console) -> int:
    from evaluator.views.compare import print_comparison, write_comparison

    run_a, run_b = (resolve_run(r, args.output) for r in (args.run_a, args.run_b))
    comparison, path = write_comparison(run_a, run_b)
    print_comparison(comparison, console, top=args.top)
    console.print(f"\nComparison: {path}", markup=False, highlight=False)
    return EXIT_OK


def _cmd_export(args: argparse.Namespace, console: Console) -> int:
    from evaluator.analysis.frames import export as export_judgments

    path = export_judgments(resolve_run(args.run, args.output), args.format)
    console.print(f"Wrote {path}", markup=False, highlight=False)
    return EXIT_OK


def _cmd_cache(args: argparse.Namespace, console: Console) -> int:
    from evaluator.judges.cache import ResponseCache

    if not args.cache.exists():
        console.print(f"{args.cache}: no cache yet", markup=False, highlight=False)
        return EXIT_OK
    cache = ResponseCache(args.cache)
    try:
        if args.action == "clear":
            console.print(f"{args.cache}: removed {cache.clear()} cached replies", markup=False, highlight=False)
        else:
            size = args.cache.stat().st_size / 1e6
            console.print(f"{args.cache}: {len(cache)} cached replies, {size:.1f} MB", markup=False, highlight=False)
    finally:
        cache.close()
    return EXIT_OK


def _cmd_report(args: argparse.Namespace, console: Console) -> int:
    from evaluator.views.html import write_html_report
    from evaluator.views.summary import print_summary, write_summary

    run_dir = resolve_run(args.run, args.output)
    summary, path = write_summary(run_dir)
    print_summary(summary, console)
    if args.by:
        print_report_groups(run_dir, args.by, console)
    console.print(f"\nSummary: {path}", markup=False, highlight=False)
    if args.html or args.by:
        report = write_html_report(run_dir, summary, by=[args.by] if args.by else [])
        console.print(f"Report:  {report}", markup=False, highlight=False)
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, Console], int]] = {
    "render": cmd_render,
    "validate": _cmd_validate,
    "report": _cmd_report,
    "compare": _cmd_compare,
    "contrast": cmd_contrast,
    "agree": _cmd_agree,
    "export": _cmd_export,
    "cache": _cmd_cache,
    "rubrics": cmd_rubrics,
    "runs": cmd_runs,
    "watch": cmd_watch,
    "batch": cmd_batch,
}
