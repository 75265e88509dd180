"""`evaluator contrast` (arms of one run by metadata, or two runs) and `report --by`: the researcher's
"is A better than B on each criterion, and how sure are we?". Heavy modules load inside the commands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from evaluator.cli.options import EXIT_OK, CliError

if TYPE_CHECKING:
    from rich.console import Console

WEIGHT_HELP = "average over turns (default; long sessions weigh more) or over sessions (each session's mean once)"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], report: argparse.ArgumentParser) -> None:
    """`contrast`, and `--by` on `report`."""
    report.add_argument(
        "--by",
        metavar="FIELD[,FIELD]",
        help="group by transcript metadata: per group and criterion sessions, turns, mean and share meeting "
        "pass_at with 95%% session-bootstrap intervals, in the terminal and report.html (implies --html), "
        "with a forest plot of each group against the first",
    )
    contrast = sub.add_parser(
        "contrast",
        help="is arm B better than A on each criterion, and how sure are we",
        description="Per criterion the difference between arms (B − baseline) with a 95%% interval that resamples "
        "whole sessions, a permutation p-value and Holm-adjusted p-values across criteria. Arms come from a "
        "metadata field (contrast RUN --by model) or are two runs of the same transcripts, paired by transcript "
        "(contrast RUN_A RUN_B: two judges, two rubric versions). Writes contrast.md and contrast.html (with a "
        "forest plot) into the run folder (RUN_B's for two runs).",
    )
    contrast.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="one run with --by, or two runs")
    contrast.add_argument("-o", "--output", type=Path, default=Path("results"), help="results folder for run ids")
    contrast.add_argument("--by", metavar="FIELD[,FIELD]", help="metadata field(s) whose values are the arms")
    contrast.add_argument("--baseline", metavar="VALUE", help="the reference arm (default: first in sorted order)")
    contrast.add_argument(
        "--pair-by",
        metavar="FIELD",
        help="pair sessions across arms on this field (e.g. patient_id: the same patient script in both arms)",
    )
    contrast.add_argument("--weight", choices=("turns", "sessions"), default="turns", help=WEIGHT_HELP)


def cmd_contrast(args: argparse.Namespace, console: Console) -> int:
    from evaluator.analysis.contrast import contrast_groups, contrast_runs
    from evaluator.store import resolve_run
    from evaluator.views.contrast import print_contrast, write_contrast

    runs = [resolve_run(r, args.output) for r in args.runs]
    if len(runs) == 2:
        for flag, value in (("--by", args.by), ("--pair-by", args.pair_by), ("--baseline", args.baseline)):
            if value:
                raise CliError(f"{flag} does not go with two runs: run A is the baseline, paired by transcript")
        result = contrast_runs(runs[0], runs[1])
    elif len(runs) > 2:
        raise CliError("contrast takes one run with --by FIELD, or two runs (RUN_A RUN_B)")
    elif not args.by:
        raise CliError("say which metadata field makes the arms, e.g. contrast RUN --by model (or give two runs)")
    else:
        result = contrast_groups(runs[0], args.by, args.baseline, args.pair_by, args.weight)
    print_contrast(result, console)
    md, page = write_contrast(result, runs[-1])
    console.print(f"\nContrast: {md}\nPage:     {page}", markup=False, highlight=False)
    return EXIT_OK


def print_report_groups(run_dir: Path, by: str, console: Console) -> None:
    """`report --by`: the group tables in the terminal and groups.md (report.html gets them from
    write_html_report)."""
    from evaluator.analysis.groups import summarize_groups
    from evaluator.views.groups import print_groups, write_groups

    groups = summarize_groups(run_dir, by)
    console.print()
    print_groups(groups, console)
    console.print(f"\nGroups:  {write_groups(groups, run_dir)}", markup=False, highlight=False)
