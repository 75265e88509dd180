"""`evaluator runs` and `evaluator watch`: the prompt engineer's loop, kept out of commands.py so that
file stays a list of commands. Heavy modules are imported inside the commands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from evaluator.cli.options import EXIT_OK, CliError, run_config
from evaluator.config import RunConfig

if TYPE_CHECKING:
    from rich.console import Console


def cmd_runs(args: argparse.Namespace, console: Console) -> int:
    from evaluator.analysis.runs import list_runs
    from evaluator.views.runs import print_runs

    print_runs(list_runs(args.output), console)
    index = args.output / "index.html"
    if index.is_file():
        console.print(f"\nIndex: {index}", markup=False, highlight=False)
    return EXIT_OK


def watch_config(args: argparse.Namespace) -> RunConfig:
    """The run options as `run` reads them; a watch makes new runs, so resuming or naming one is refused."""
    for flag, value in (("--resume", args.resume), ("--run-id", args.run_id), ("--dry-run", args.dry_run)):
        if value:
            raise CliError(f"{flag} does not go with watch: every save starts a new run")
    config = run_config(args)
    if config.judge.cache_path is None:
        raise CliError(
            "watch needs the response cache (drop --no-cache): it is what makes re-runs judge only what changed"
        )
    return config


def cmd_watch(args: argparse.Namespace, console: Console) -> int:
    from evaluator.watch import watch

    watch(watch_config(args), console, poll_s=args.poll)
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser], run: argparse.ArgumentParser) -> None:
    """`runs`, and `watch` taking every option of `run` (copied from it, so the two cannot drift)."""
    output = RunConfig.output  # the field's default; a RunConfig instance would load the models
    runs = sub.add_parser(
        "runs",
        help="list the runs in the results folder, newest first",
        description="Date, rubrics, judge, counts by status and cost of every run, and the comparisons of consecutive "
        "runs of the same rubric; the same list as results/index.html, which every run rewrites.",
    )
    runs.add_argument("-o", "--output", type=Path, default=output, help=f"results folder (default: {output}/)")
    watch = sub.add_parser(
        "watch",
        parents=[run],
        conflict_handler="resolve",
        help="re-run on every save of a rubric or template and print what moved",
        description="Takes the options of `run`. Runs once, then polls the rubric files and the templates they can "
        "use; each save starts a new run with the response cache on, so only the items whose prompt changed are "
        "judged, and prints what moved against the previous run, criterion by criterion, with each moved item's "
        "rationale. Ctrl-C stops; an interrupted run is resumable with `evaluator run --resume RUN`.",
    )
    watch.add_argument("--poll", type=float, default=0.5, metavar="S", help="seconds between checks (default 0.5)")
