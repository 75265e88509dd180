"""The command line itself: every command, option, default and choice (defaults and choices come from
evaluator.config, so the command and `evaluator.run()` cannot drift apart).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evaluator.cli.batch_command import add_parser as add_batch_parser
from evaluator.cli.contrast_command import add_parser as add_contrast_parser
from evaluator.cli.parser_extras import (
    add_metadata_options,
    add_render_options,
    add_rubrics_parser,
    add_subset_options,
    add_unblind_option,
)
from evaluator.cli.watch_command import add_parsers as add_loop_parsers
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

RUN = RunConfig
"""The class, read for its fields' defaults: an instance would build ReadOptions and so the pydantic models."""
JUDGE = JudgeSettings()

EXAMPLES = """\
examples:
  evaluator run                                   # transcripts/ x rubrics/ -> results/<run-id>/
  evaluator run sessions/ -r rubrics/pacing.yaml  # one rubric on a folder of sessions
  evaluator render transcripts/004_d8361cbb940345fc.txt -r pacing --turn 5
  evaluator validate rubrics/ transcripts/        # lint before spending anything
  evaluator report results/<run-id>               # summary per criterion and transcript
"""


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
    add_metadata_options(group)


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
    run.add_argument("--no-report", action="store_true", help="write summary.md but not report.html")
    add_subset_options(run)
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
    add_unblind_option(run)

    render = sub.add_parser(
        "render",
        help="print the exact messages a judge would get for one turn",
        description="Print the exact prompt for one therapist turn, before any money is spent.",
    )
    render.add_argument("transcript", type=Path, help="a transcript file")
    render.add_argument("-r", "--rubric", required=True, help="rubric file or bundled id")
    render.add_argument("--turn", type=int, metavar="N", help="turn index (0-based, as in results)")
    render.add_argument("--transcript-id", help="which transcript, when the file holds several")
    render.add_argument("--json", action="store_true", help="print the messages as JSON")
    add_render_options(render)
    _add_input_options(render)
    add_unblind_option(render)

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
        description="Per criterion a verdict (is the judge within human disagreement?), then kappa, weighted "
        "kappa, Krippendorff's alpha, Spearman rho and bias, beside the agreement among the human raters; writes "
        "agreement.md. Labels: CSV with transcript, turn, criterion, score and optionally rater.",
    )
    _add_runs(agree, run="run folder or run id")
    agree.add_argument("labels", type=Path, help="human ratings CSV, e.g. labels/seed_ratings.csv")
    agree.add_argument(
        "--against",
        type=Path,
        metavar="RUN_B",
        help="a later run (e.g. after a rubric edit): each criterion's agreement in RUN and RUN_B side by side, "
        "with the difference; writes agreement-vs-RUN.md into RUN_B",
    )

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
    add_contrast_parser(sub, report)
    add_rubrics_parser(sub)
    add_loop_parsers(sub, run)
    add_batch_parser(sub, run)
    return parser
