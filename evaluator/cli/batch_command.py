"""`evaluator batch submit|status|collect|cancel|export`: judging through a provider's batch queue (OpenAI's
Batch API, at half the price) or vLLM's offline run_batch. The work is evaluator.batch and the batch_*
modules beside it; this module parses, prints and writes the summary and report as `evaluator run` does. Nothing heavy is imported at the top,
since `--help` loads this module."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluator.cli.options import EXIT_ATTENTION, EXIT_OK, CliError, run_config

if TYPE_CHECKING:
    from rich.console import Console

    from evaluator.batch_api import BatchQueue
    from evaluator.batch_run import BatchRun
    from evaluator.config import JudgeSettings
    from evaluator.models import BatchRecord, BatchState

DEFAULT_KEY_ENV = "OPENAI_API_KEY"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], run: argparse.ArgumentParser) -> None:
    batch = sub.add_parser(
        "batch",
        help="judge through a batch queue: OpenAI's Batch API (half price) or vLLM's run_batch",
        description="Submit the planned judge calls as batch request files, follow them, and collect the replies "
        "into the run's judgments.jsonl through the live judge's validation. Every command resumes from the ids "
        "recorded in the run folder.",
    )
    actions = batch.add_subparsers(dest="batch_command", required=True, metavar="ACTION")
    submit = actions.add_parser(
        "submit",
        parents=[run],
        conflict_handler="resolve",
        help="plan a new run (the options of `run`) or continue one (--resume RUN), and upload its requests",
        description="Takes the options of `run`. Writes the calls that can be made now as request files (split to "
        "the provider's limits), uploads them and creates the batches. With --resume RUN: sends re-asks, failed "
        "requests, requests an expired or cancelled batch never ran, and criteria whose prerequisite is collected.",
    )
    submit.add_argument(
        "--export", type=Path, metavar="FILE", help="write the requests to FILE (for vLLM's run_batch), upload nothing"
    )
    submit.add_argument("--max-requests", type=int, metavar="N", help="requests per uploaded file (default 50,000)")
    submit.add_argument("--max-file-mb", type=float, metavar="MB", help="megabytes per uploaded file (default 200)")
    export = actions.add_parser(
        "export",
        help="write a run's next requests to FILE for vLLM's run_batch, without uploading",
        description="vLLM: python -m vllm.entrypoints.openai.run_batch -i FILE -o results.jsonl --model M, then "
        "`evaluator batch collect RUN --from-file results.jsonl`. Writing again before collecting writes the "
        "same requests.",
    )
    _add_run(export)
    export.add_argument("file", type=Path, help="the request file to write (JSONL)")
    status = actions.add_parser("status", help="each batch's status and counts")
    _add_run(status)
    collect = actions.add_parser(
        "collect",
        help="read the ended batches' results into judgments.jsonl; write summary.md and report.html",
        description="Batches still running are left for a later collect. Invalid replies are re-asked in a "
        "follow-up batch (sent by the next submit) and end unscored with the reason; failed requests are "
        "recorded as errors, sent again by `submit --resume`.",
    )
    _add_run(collect)
    collect.add_argument("--from-file", type=Path, metavar="FILE", help="a results file of vLLM's run_batch")
    collect.add_argument("--no-report", action="store_true", help="write summary.md but not report.html")
    cancel = actions.add_parser("cancel", help="cancel the open batches (finished lines are still collected)")
    _add_run(cancel)


def _add_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="run folder or run id")
    parser.add_argument("-o", "--output", type=Path, default=Path("results"), help="results folder for run ids")
    parser.add_argument("--base-url", help="the endpoint, if not the one recorded (a recorded URL has no credentials)")
    parser.add_argument(
        "--api-key-env", default=DEFAULT_KEY_ENV, metavar="VAR", help="environment variable holding the API key"
    )


def cmd_batch(args: argparse.Namespace, console: Console) -> int:
    import asyncio  # here, as rich below: `--help` loads this module

    commands = {"submit": _submit, "export": _export, "status": _status, "collect": _collect, "cancel": _cancel}
    return asyncio.run(commands[args.batch_command](args, console))


def _settings(args: argparse.Namespace, run_dir: Path) -> JudgeSettings:
    from evaluator.batch_run import settings_of
    from evaluator.store import read_manifest

    key_env = args.api_key_env if args.api_key_env != DEFAULT_KEY_ENV else None
    return settings_of(read_manifest(run_dir), base_url=args.base_url, api_key_env=key_env)


def _queue(run: BatchRun) -> BatchQueue:
    from evaluator.batch_api import BatchQueue

    return BatchQueue(run.judge.client, run.judge.settings.redactor())


def _run_dir(args: argparse.Namespace) -> Path:
    from evaluator.store import resolve_run

    return resolve_run(args.run, args.output)


async def _submit(args: argparse.Namespace, console: Console) -> int:
    from evaluator.batch import submit
    from evaluator.batch_files import MAX_BYTES, MAX_REQUESTS, Limits
    from evaluator.batch_run import create_run, open_run
    from evaluator.store import resolve_run

    if args.dry_run:
        raise CliError("batch submit has no --dry-run: `evaluator run --dry-run` with the same options shows the plan")
    if args.judge == "rules":
        raise CliError("batch submit sends calls to an LLM; --judge rules needs no queue: use `evaluator run`")
    if args.retry_failed and args.resume is None:
        raise CliError("--retry-failed goes with --resume RUN")
    limits = Limits(args.max_requests or MAX_REQUESTS, int(args.max_file_mb * 1e6) if args.max_file_mb else MAX_BYTES)
    offline = args.export is not None
    if args.resume is not None:
        run_dir = resolve_run(args.resume, args.output)
        reading = run_config(args, run_dir).read_options  # --speaker, --csv-column; metadata as recorded
        run = open_run(run_dir, _settings(args, run_dir), offline=offline, reading=reading)
    else:
        run = create_run(run_config(args), offline=offline)
    try:
        submitted = await submit(
            run, None if offline else _queue(run), limits, retry_failed=args.retry_failed, export=args.export
        )
    finally:
        await run.aclose()
    _print_records(console, submitted.batches, f"Run {run.run_dir}")
    notes = [
        f"{submitted.requests} request(s) " + (f"written to {args.export}" if offline else "submitted"),
        f"{submitted.from_cache} answered from the response cache" if submitted.from_cache else "",
        f"{submitted.decided} item(s) decided without a judge" if submitted.decided else "",
        f"{submitted.in_flight} item(s) already in open batches, not sent again" if submitted.in_flight else "",
    ]
    console.print("; ".join(n for n in notes if n), markup=False, highlight=False)
    _print_waiting(console, submitted.waiting, run.run_dir)
    follow = (
        f"evaluator batch collect {run.run_dir} --from-file RESULTS.jsonl"
        if offline
        else f"evaluator batch status {run.run_dir}"
    )
    console.print(f"Next: {follow}", markup=False, highlight=False)
    return EXIT_OK


async def _export(args: argparse.Namespace, console: Console) -> int:
    from evaluator.batch import submit
    from evaluator.batch_files import Limits
    from evaluator.batch_run import open_run

    run_dir = _run_dir(args)
    run = open_run(run_dir, _settings(args, run_dir), offline=True)
    try:
        submitted = await submit(run, None, Limits(), export=args.file)
    finally:
        await run.aclose()
    console.print(f"{submitted.requests} request(s) written to {args.file}", markup=False, highlight=False)
    _print_waiting(console, submitted.waiting, run_dir)
    return EXIT_OK


async def _with_queue(args: argparse.Namespace, action: Any) -> Any:
    from evaluator.batch_api import BatchQueue
    from evaluator.batch_run import batch_judge

    run_dir = _run_dir(args)
    judge = batch_judge(_settings(args, run_dir))
    try:
        return await action(run_dir, BatchQueue(judge.client, judge.settings.redactor()))
    finally:
        await judge.aclose()


async def _status(args: argparse.Namespace, console: Console) -> int:
    from evaluator.batch import refresh

    state: BatchState = await _with_queue(args, refresh)
    run_dir = _run_dir(args)
    _print_records(console, state.batches, f"Batches of {run_dir}")
    if state.reasks:
        console.print(
            f"{len(state.reasks)} re-ask(s) wait for the next `evaluator batch submit --resume {run_dir}`",
            markup=False,
            highlight=False,
        )
    _print_waiting(console, state.waiting, run_dir)
    return EXIT_OK


async def _cancel(args: argparse.Namespace, console: Console) -> int:
    from evaluator.batch import cancel

    records = await _with_queue(args, cancel)
    _print_records(console, records, "Cancelled")
    console.print(
        "What the batches finished is still collected: run `evaluator batch collect` once they are cancelled; "
        "the rest is sent again by `evaluator batch submit --resume`",
        markup=False,
        highlight=False,
    )
    return EXIT_OK


async def _collect(args: argparse.Namespace, console: Console) -> int:
    from evaluator.batch import collect
    from evaluator.batch_run import open_run

    run_dir = _run_dir(args)
    offline = args.from_file is not None
    run = open_run(run_dir, _settings(args, run_dir), offline=offline)
    try:
        report = await collect(run, None if offline else _queue(run), args.from_file)
    finally:
        await run.aclose()
    console.print(
        f"Collected {report.batches} batch(es): {report.judged} judgment(s) written, {report.errors} failed "
        f"request(s), {report.reasks} re-ask(s) for a follow-up batch, {report.unanswered} request(s) never run, "
        f"{report.skipped} already judged",
        markup=False,
        highlight=False,
    )
    if report.unknown:
        console.print(f"{report.unknown} result line(s) matched no open request and were ignored", highlight=False)
    if report.refused_format:
        console.print(
            f"{report.refused_format} request(s) refused for their output format (--output-format auto): the next "
            f"`evaluator batch submit --resume {run_dir}` sends them as {report.output}",
            markup=False,
            highlight=False,
        )
    if report.refused_seed:
        console.print(
            f"{report.refused_seed} request(s) refused for the default seed: the next `evaluator batch submit "
            f"--resume {run_dir}` sends them without one (judgments record seed null)",
            markup=False,
            highlight=False,
        )
    if report.refused_system:
        console.print(
            f"{report.refused_system} request(s) refused for their system message (the model's chat template has no "
            f"system role): the next `evaluator batch submit --resume {run_dir}` sends them folded into the first "
            "user message (judgments record system_role false)",
            markup=False,
            highlight=False,
        )
    if report.still_open:
        _print_records(console, report.still_open, "Still running")
    if report.ready:
        console.print(
            f"{report.ready} item(s) are ready for a follow-up batch: evaluator batch submit --resume {run_dir}",
            markup=False,
            highlight=False,
        )
    _print_waiting(console, report.waiting, run_dir)
    _write_reports(run_dir, console, not args.no_report)
    return EXIT_ATTENTION if run.manifest.counts.get("error", 0) else EXIT_OK


def _write_reports(run_dir: Path, console: Console, html: bool) -> None:
    from evaluator.views.html import write_html_report
    from evaluator.views.runs import write_run_index
    from evaluator.views.summary import print_summary, write_summary

    summary, summary_path = write_summary(run_dir)
    print_summary(summary, console, per_transcript=len(summary.manifest.transcripts) <= 8)
    console.print(f"\nResults: {run_dir}/judgments.jsonl\nSummary: {summary_path}", markup=False, highlight=False)
    if html:
        console.print(f"Report:  {write_html_report(run_dir, summary)}", markup=False, highlight=False)
    try:
        write_run_index(run_dir.parent, run_dir)
    except (OSError, ValueError) as exc:
        console.print(f"run index not written: {exc}", markup=False, highlight=False)


def _print_waiting(console: Console, waiting: int, run_dir: Path) -> None:
    if waiting:
        console.print(
            f"{waiting} item(s) wait for a prerequisite's verdict (applies_when: criterion): once its batch is "
            f"collected, `evaluator batch submit --resume {run_dir}` sends them",
            markup=False,
            highlight=False,
        )


def _print_records(console: Console, records: list[BatchRecord], title: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    if not records:
        return
    table = Table(title=escape(title), title_justify="left")
    for column in ("batch", "id", "status", "requests", "completed", "failed", "collected"):
        table.add_column(column, justify="right" if column in ("requests", "completed", "failed") else "left")
    for r in records:
        table.add_row(
            r.name,
            escape(r.batch_id or "-"),
            r.status,
            str(r.requests),
            str(r.completed),
            str(r.failed),
            "yes" if r.collected else "no",
        )
    console.print(table)
    for r in records:
        for error in r.errors:
            console.print(f"[red]{r.name}[/red] {escape(error)}", highlight=False)
