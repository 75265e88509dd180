"""The `evaluator` command: parse arguments, call the same functions a notebook would, report errors.

Exit codes: 0 everything judged; 1 finished but something needs attention (a skipped input file, an
errored judgment, an invalid file under `validate`); 2 nothing was done (bad rubric, bad option).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Callable, Sequence

from rich.console import Console
from rich.markup import escape
from rich.rule import Rule

from evaluator.analysis.frames import export as export_judgments
from evaluator.api import run_async
from evaluator.config import (
    AGGREGATE_METHODS,
    DEFAULT_CACHE,
    DEFAULT_MODEL,
    JUDGE_KINDS,
    MODES,
    OUTPUT_MODES,
    JudgeSettings,
    RunConfig,
)
from evaluator.errors import EvaluatorError
from evaluator.estimate import dry_run, print_dry_run
from evaluator.judges.cache import ResponseCache
from evaluator.models import Rubric, Transcript
from evaluator.prompts import PromptRenderer, check_templates
from evaluator.reading import CsvColumns, ReadOptions, TranscriptError
from evaluator.redact import Redactor, api_key_env_problem, url_secrets
from evaluator.rubrics import RUBRIC_SUFFIXES, RubricError, discover_rubrics, load_rubric, scale_summary
from evaluator.store import resolve_run
from evaluator.transcripts import discover, read_transcripts
from evaluator.views.agreement import print_agreement, write_agreement
from evaluator.views.compare import print_comparison, write_comparison
from evaluator.views.html import write_html_report
from evaluator.views.summary import print_summary, write_summary

EXIT_OK, EXIT_ATTENTION, EXIT_FAILED = 0, 1, 2
RUN = RunConfig()
JUDGE = RUN.judge
DEBUG_ENV = "EVALUATOR_DEBUG"

EXAMPLES = """\
examples:
  evaluator run                                   # transcripts/ x rubrics/ -> results/<run-id>/
  evaluator run sessions/ -r rubrics/pacing.yaml  # one rubric on a folder of sessions
  evaluator render transcripts/004_d8361cbb940345fc.txt -r pacing --turn 5
  evaluator validate rubrics/ transcripts/        # lint before spending anything
  evaluator report results/<run-id>               # summary per criterion and transcript
"""


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


def _read_options(args: argparse.Namespace) -> ReadOptions:
    columns = _pairs(args.csv_column, "--csv-column")
    unknown = sorted(set(columns) - {f.name for f in fields(CsvColumns)})
    if unknown:
        raise CliError(f"--csv-column {unknown[0]}=...: the field must be one of transcript, order, speaker, text")
    try:
        options = ReadOptions().with_aliases(_pairs(args.speaker, "--speaker"))
    except ValueError as exc:
        raise CliError(f"--speaker: {exc}") from None
    return replace(options, csv_columns=replace(options.csv_columns, **columns))


def _add_runs(parser: argparse.ArgumentParser, **runs: str) -> None:
    """Positional runs, each a folder or a run id, and the results folder ids are looked up in."""
    for name, help_text in runs.items():
        parser.add_argument(name, type=Path, help=help_text)
    parser.add_argument("-o", "--output", type=Path, default=Path("results"), help="results folder for run ids")


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("reading transcripts")
    group.add_argument(
        "--speaker",
        action="append",
        default=[],
        metavar="LABEL=ROLE",
        help="map a speaker label (text, CSV) or chat role (JSON) to therapist|patient|other "
        "(repeatable), e.g. Doctor=therapist",
    )
    group.add_argument(
        "--csv-column",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help="CSV column for transcript|order|speaker|text (repeatable), e.g. text=utterance",
    )


def _rubric_paths(values: Sequence[str]) -> list[Path]:
    """A rubric may be named by path or, for the bundled folder, by id (`-r pacing`)."""
    paths = []
    for value in values:
        path = Path(value)
        if not path.exists() and path.suffix not in RUBRIC_SUFFIXES:
            for suffix in RUBRIC_SUFFIXES:
                candidate = Path("rubrics") / f"{value}{suffix}"
                if candidate.is_file():
                    path = candidate
                    break
        paths.append(path)
    return paths


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evaluator",
        description="Judge every therapist turn of therapy transcripts against YAML rubrics, "
        "with an LLM judge or the offline rules judge.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="judge transcripts with rubrics and write results/<run-id>/",
        description="Judge every therapist turn of the transcripts on every criterion of the rubrics. "
        "Judgments are appended to results/<run-id>/judgments.jsonl as they arrive.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "transcripts",
        nargs="*",
        type=Path,
        default=list(RUN.transcripts),
        help="transcript files or folders (.txt, .json, .jsonl, .csv; default: transcripts/)",
    )
    run.add_argument(
        "-r",
        "--rubric",
        action="append",
        default=[],
        metavar="R",
        help="rubric file, folder or bundled id (repeatable; default: rubrics/)",
    )
    run.add_argument("-o", "--output", type=Path, default=RUN.output, help=f"results folder (default: {RUN.output}/)")
    run.add_argument(
        "--judge",
        choices=JUDGE_KINDS,
        default=JUDGE.kind,
        help="auto: an LLM judge when one is configured, else the offline rules judge (default)",
    )
    run.add_argument(
        "--mode",
        choices=MODES,
        default=RUN.mode,
        help="one call per (turn, criterion) (default, most reliable), per turn, or per transcript",
    )
    run.add_argument(
        "--samples", type=int, default=RUN.samples, metavar="N", help="judge each item N times with distinct seeds"
    )
    run.add_argument(
        "--aggregate",
        choices=AGGREGATE_METHODS,
        default=RUN.aggregate,
        help="how samples fold into one verdict (auto: majority for yes/no and labels, else mean)",
    )
    run.add_argument(
        "--concurrency",
        type=int,
        default=RUN.concurrency,
        metavar="C",
        help=f"judge calls in flight at once (default {RUN.concurrency})",
    )
    run.add_argument("--max-cost", type=float, metavar="USD", help="stop cleanly before the run would cost more")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (items, calls, estimated tokens and cost) without calling the judge",
    )
    run.add_argument("--run-id", help="name of the run folder (default: time-stamped)")
    run.add_argument(
        "--resume",
        type=Path,
        metavar="RUN",
        help="continue a stopped run (its folder or id): finished judgments are kept, the rest done once",
    )
    run.add_argument(
        "--retry-failed",
        action="store_true",
        help="with --resume: ask again for unscored items too (errored items are always sent again on resume)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    llm = run.add_argument_group("LLM judge (any OpenAI-compatible endpoint)")
    llm.add_argument("--model", help=f"model name (default {DEFAULT_MODEL})")
    llm.add_argument(
        "--base-url", help="endpoint, e.g. http://localhost:8000/v1 (default: $OPENAI_BASE_URL, else OpenAI)"
    )
    llm.add_argument(
        "--api-key-env",
        default=JUDGE.api_key_env,
        metavar="VAR",
        help=f"environment variable holding the API key (default {JUDGE.api_key_env}); a key is never written anywhere",
    )
    llm.add_argument(
        "--temperature",
        type=float,
        default=JUDGE.temperature,
        help=f"sampling temperature (default {JUDGE.temperature:g})",
    )
    llm.add_argument("--seed", type=int, default=JUDGE.seed, help=f"seed; sample n uses seed+n (default {JUDGE.seed})")
    llm.add_argument("--max-tokens", type=int, metavar="N", help="cap on reply tokens")
    llm.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="any other request parameter, e.g. --param top_p=0.9 (repeatable; overrides the rubric's)",
    )
    llm.add_argument(
        "--output-format",
        choices=OUTPUT_MODES,
        default=JUDGE.output,
        help="how replies are constrained; auto starts with strict json_schema and steps down if refused",
    )
    llm.add_argument(
        "--attempts",
        type=int,
        default=JUDGE.content_attempts,
        metavar="N",
        help=f"replies asked for per call before an item is recorded unscored (default {JUDGE.content_attempts})",
    )
    llm.add_argument(
        "--retries",
        type=int,
        default=JUDGE.transport_attempts,
        metavar="N",
        help=f"tries per request on 429, 5xx and failed connections (default {JUDGE.transport_attempts}); 5 requests in a row that get no "
        "answer at all stop the run, to be continued with --resume",
    )
    llm.add_argument(
        "--timeout",
        type=float,
        default=JUDGE.timeout_s,
        metavar="S",
        help=f"seconds to wait for a reply (default {JUDGE.timeout_s:g}); a timed-out request is sent again at most once, since a "
        "slow server is usually still working on it",
    )
    llm.add_argument("--rpm", type=float, metavar="N", help="at most N requests a minute")
    llm.add_argument("--tpm", type=float, metavar="N", help="at most N tokens a minute")
    llm.add_argument(
        "--logprobs", action="store_true", help="ask for top logprobs and record a probability-weighted score"
    )
    llm.add_argument("--prices", type=Path, metavar="FILE", help="price table (YAML/JSON), USD per million tokens")
    llm.add_argument(
        "--cache",
        type=Path,
        default=JUDGE.cache_path,
        metavar="PATH",
        help=f"response cache (default {JUDGE.cache_path}): unchanged items are never paid twice",
    )
    llm.add_argument("--no-cache", action="store_true", help="neither read nor write the response cache")
    _add_input_options(run)

    render = sub.add_parser(
        "render",
        help="print the exact messages a judge would get for one turn",
        description="Print the exact prompt for one therapist turn, before any money is spent.",
    )
    render.add_argument("transcript", type=Path, help="a transcript file")
    render.add_argument("-r", "--rubric", required=True, help="rubric file or bundled id")
    render.add_argument("--turn", type=int, required=True, metavar="N", help="turn index (0-based, as in results)")
    render.add_argument("--criterion", metavar="C", help="criterion id (default: every criterion of the rubric)")
    render.add_argument("--transcript-id", help="which transcript, when the file holds several")
    render.add_argument("--json", action="store_true", help="print the messages as JSON")
    _add_input_options(render)

    validate = sub.add_parser(
        "validate",
        help="lint rubrics and transcripts without judging",
        description="Check rubric (.yaml) and transcript files; nothing is judged or written.",
    )
    validate.add_argument("files", nargs="+", type=Path, help="rubric or transcript files, or folders")
    _add_input_options(validate)

    agree = sub.add_parser(
        "agree",
        help="agreement of a run's judgments with human ratings",
        description="Kappa, weighted kappa, Krippendorff's alpha, Spearman rho and bias per criterion, beside the "
        "agreement among the human raters; writes agreement.md. Labels: CSV with transcript, turn, criterion, score "
        "and optionally rater.",
    )
    _add_runs(agree, run="run folder or run id")
    agree.add_argument("labels", type=Path, help="human ratings CSV, e.g. labels/seed_ratings.csv")

    compare = sub.add_parser(
        "compare",
        help="what moved between two runs, and which rubric edit moved it",
        description="Items matched by key; per criterion the paired count, both means, the difference with a "
        "session-bootstrap interval, exact agreement and kappa between runs; the changed items with both "
        "rationales; warnings naming every edited criterion, template or judge change. Writes compare.md into RUN_B.",
    )
    _add_runs(compare, run_a="the earlier run (folder or id)", run_b="the later run (folder or id)")
    compare.add_argument("--top", type=int, default=20, help="changed items shown in the terminal (all in compare.md)")

    export = sub.add_parser(
        "export",
        help="write a run's judgments as CSV or Parquet",
        description="One row per judgment, with transcript metadata as meta.* columns.",
    )
    _add_runs(export, run="run folder or run id")
    export.add_argument("--format", choices=("csv", "parquet"), default="csv")

    cache = sub.add_parser(
        "cache",
        help="inspect or clear the LLM response cache",
        description="The response cache makes unchanged re-runs free; clear it to force fresh replies.",
    )
    cache.add_argument("action", choices=("info", "clear"))
    cache.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, metavar="PATH", help=f"cache file (default {DEFAULT_CACHE})"
    )

    report = sub.add_parser(
        "report",
        help="summarise a run and write summary.md",
        description="Summary per criterion and per transcript: counts by status, mean, "
        "distribution and the share of turns meeting each criterion.",
    )
    _add_runs(report, run="run folder or run id")
    report.add_argument("--html", action="store_true", help="also write report.html: charts, tables, turn viewer")
    return parser


def _judge_settings(args: argparse.Namespace) -> JudgeSettings:
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


async def _cmd_run(args: argparse.Namespace, console: Console) -> int:
    if args.retry_failed and args.resume is None:
        raise CliError("--retry-failed goes with --resume RUN")
    resume = resolve_run(args.resume, args.output) if args.resume is not None else None
    config = RunConfig(
        transcripts=args.transcripts,
        rubrics=_rubric_paths(args.rubric) or list(RUN.rubrics),
        output=args.output,
        judge=_judge_settings(args),
        read_options=_read_options(args),
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
    )
    if args.dry_run:
        print_dry_run(await dry_run(config), console)
        return EXIT_OK
    result = await run_async(config)
    if result.manifest.stopped:
        console.print(
            f"[yellow]{escape(result.manifest.stopped)}[/yellow]; continue with --resume {escape(str(result.run_dir))}"
        )
    summary, summary_path, report_path = result.summary, result.summary_path, result.report_path
    print_summary(summary, console, per_transcript=len(summary.manifest.transcripts) <= 8)
    console.print(
        f"\nResults: {result.run_dir}/judgments.jsonl\nSummary: {summary_path}\nReport:  {report_path}",
        markup=False,
        highlight=False,
    )
    if result.skipped:
        console.print(f"[red]{len(result.skipped)} file(s) skipped; see above and manifest.json[/red]")
    return EXIT_OK if result.ok else EXIT_ATTENTION


def _pick_transcript(path: Path, transcript_id: str | None, options: ReadOptions) -> Transcript:
    transcripts = read_transcripts(path, options)
    if transcript_id is None:
        if len(transcripts) > 1:
            ids = ", ".join(t.id for t in transcripts)
            raise CliError(f"{path} holds {len(transcripts)} transcripts; pick one with --transcript-id ({ids})")
        return transcripts[0]
    for transcript in transcripts:
        if transcript.id == transcript_id:
            return transcript
    raise CliError(f"{path} has no transcript {transcript_id!r}; it has: {', '.join(t.id for t in transcripts)}")


def _cmd_render(args: argparse.Namespace, console: Console) -> int:
    (rubric_path,) = _rubric_paths([args.rubric])
    rubric = load_rubric(rubric_path)
    transcript = _pick_transcript(args.transcript, args.transcript_id, _read_options(args))
    if not 0 <= args.turn < len(transcript.turns) or transcript.turns[args.turn].speaker != "therapist":
        therapist = ", ".join(str(t.index) for t in transcript.therapist_turns())
        raise CliError(f"turn {args.turn} of {transcript.id} is not a therapist turn; therapist turns are: {therapist}")
    criteria = [rubric.criterion(args.criterion)] if args.criterion else rubric.criteria
    renderer = PromptRenderer()
    rendered = [(c, renderer.render(rubric, c, transcript, transcript.turns[args.turn])) for c in criteria]
    if args.json:
        payload = [{"criterion": c.id, "messages": [m.model_dump() for m in r.messages]} for c, r in rendered]
        print(json.dumps(payload if len(payload) > 1 else payload[0], indent=2, ensure_ascii=False))
        return EXIT_OK
    for criterion, result in rendered:
        console.print(Rule(escape(f"{rubric.id} / {criterion.id} on {transcript.id} turn {args.turn}")))
        for message in result.messages:
            console.print(f"[bold]--- {message.role} ---[/bold]")
            console.print(message.content, markup=False, highlight=False)
    return EXIT_OK


def _validate_one(path: Path, options: ReadOptions) -> str:
    if path.suffix in RUBRIC_SUFFIXES:
        rubric: Rubric = load_rubric(path)
        check_templates([rubric], PromptRenderer())
        return f"rubric {rubric.id} v{rubric.version}, {len(rubric.criteria)} criteria: " + ", ".join(
            f"{c.id} ({scale_summary(c)})" for c in rubric.criteria
        )
    transcripts = read_transcripts(path, options)
    turns = sum(len(t.turns) for t in transcripts)
    therapist = sum(len(t.therapist_turns()) for t in transcripts)
    return f"{len(transcripts)} transcript(s), {turns} turns, {therapist} therapist turns"


def _cmd_validate(args: argparse.Namespace, console: Console) -> int:
    options = _read_options(args)
    files: list[Path] = []
    for path in args.files:
        if not path.is_dir():
            files.append(path)
            continue
        rubric_files = discover_rubrics([path])
        files += rubric_files
        try:
            files += discover([path])
        except TranscriptError:
            if not rubric_files:
                raise
    failed = 0
    for file in files:
        try:
            console.print(f"[green]ok[/green]   {escape(f'{file}: {_validate_one(file, options)}')}", highlight=False)
        except (RubricError, TranscriptError) as exc:
            failed += 1
            console.print(f"[red]FAIL[/red] {escape(str(exc))}", highlight=False)
    console.print(f"{len(files) - failed} ok, {failed} invalid", highlight=False)
    return EXIT_ATTENTION if failed else EXIT_OK


def _cmd_agree(args: argparse.Namespace, console: Console) -> int:
    report, path = write_agreement(resolve_run(args.run, args.output), args.labels)
    print_agreement(report, console)
    console.print(f"\nAgreement: {path}", markup=False, highlight=False)
    return EXIT_OK


def _cmd_compare(args: argparse.Namespace, console: Console) -> int:
    run_a, run_b = (resolve_run(r, args.output) for r in (args.run_a, args.run_b))
    comparison, path = write_comparison(run_a, run_b)
    print_comparison(comparison, console, top=args.top)
    console.print(f"\nComparison: {path}", markup=False, highlight=False)
    return EXIT_OK


def _cmd_export(args: argparse.Namespace, console: Console) -> int:
    path = export_judgments(resolve_run(args.run, args.output), args.format)
    console.print(f"Wrote {path}", markup=False, highlight=False)
    return EXIT_OK


def _cmd_cache(args: argparse.Namespace, console: Console) -> int:
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
    run_dir = resolve_run(args.run, args.output)
    summary, path = write_summary(run_dir)
    print_summary(summary, console)
    console.print(f"\nSummary: {path}", markup=False, highlight=False)
    if args.html:
        console.print(f"Report:  {write_html_report(run_dir, summary)}", markup=False, highlight=False)
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, Console], int]] = {
    "render": _cmd_render,
    "validate": _cmd_validate,
    "report": _cmd_report,
    "compare": _cmd_compare,
    "agree": _cmd_agree,
    "export": _cmd_export,
    "cache": _cmd_cache,
}


def _error_redactor(args: argparse.Namespace) -> Redactor:
    """Masks the secrets this invocation could know of, before any message is printed: the key from the
    environment, credentials in the base URL, and a key pasted where a variable name belongs."""
    env = getattr(args, "api_key_env", "OPENAI_API_KEY")
    pasted = env if api_key_env_problem(env) else None
    base_url = getattr(args, "base_url", None) or os.environ.get("OPENAI_BASE_URL")
    return Redactor([os.environ.get(env) if not pasted else None, pasted, *url_secrets(base_url)])


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    console = Console(soft_wrap=True)
    errors = Console(stderr=True, soft_wrap=True)
    redact = _error_redactor(args)
    try:
        if args.command == "run":
            return asyncio.run(_cmd_run(args, console))
        return COMMANDS[args.command](args, console)
    except (EvaluatorError, OSError) as exc:
        errors.print(f"[red]error:[/red] {escape(redact(str(exc)))}", highlight=False)
        return EXIT_FAILED
    except KeyboardInterrupt:
        errors.print("interrupted; finished judgments are saved - continue with `evaluator run --resume RUN`")
        return 130
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        errors.print(
            f"[red]internal error:[/red] {escape(redact(f'{type(exc).__name__}: {exc}'))}\n"
            f"This is a bug in the evaluator, not in your input: please report it with the command you ran "
            f"(set {DEBUG_ENV}=1 to see the traceback).",
            highlight=False,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
