"""Options and commands added for the prompt engineer's loop (subsets, `render --mode`, `rubrics`),
defined here so parser.py only calls them; imports nothing heavy, as `--help` loads this module."""

from __future__ import annotations

import argparse
from pathlib import Path

from evaluator.config import MODES


def turn_range(value: str) -> tuple[int, int]:
    """`--turns 3-7` (both ends included) or `--turns 5`; an argparse type, so a typo is a usage error."""
    low, sep, high = value.partition("-")
    try:
        start = int(low)
        end = int(high) if sep else start
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a turn index or a range, e.g. 5 or 3-7") from None
    if start < 0 or end < start:
        raise argparse.ArgumentTypeError(f"{value!r}: expected FIRST-LAST with 0 <= FIRST <= LAST, e.g. 3-7")
    return start, end


def add_subset_options(parser: argparse.ArgumentParser, transcripts: bool = True) -> None:
    """--transcript, --criterion, --turns, --limit: combinable, each narrowing the plan further."""
    group = parser.add_argument_group("judging a subset (combinable; the manifest and reports say so)")
    if transcripts:
        group.add_argument(
            "--transcript",
            action="append",
            default=[],
            metavar="ID|GLOB",
            help="only transcripts whose id matches (repeatable; shell-style glob, e.g. '004_*')",
        )
    group.add_argument(
        "--criterion",
        action="append",
        default=[],
        metavar="ID",
        help="only this criterion, as RUBRIC/CRITERION or a bare id (repeatable); a criterion whose "
        "applies_when reads another's verdict brings that one along",
    )
    group.add_argument(
        "--turns", type=turn_range, metavar="A-B", help="only turn indices A to B, both included (or one index: 5)"
    )
    group.add_argument("--limit", type=int, metavar="N", help="only the first N (turn, criterion) items in plan order")


def add_render_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="per-criterion",
        help="per-criterion (default): one prompt per criterion; per-turn: all criteria of a turn in one prompt; "
        "per-transcript: the session's therapist turns in one prompt",
    )
    add_subset_options(parser, transcripts=False)


def add_rubrics_parser(sub: argparse._SubParsersAction) -> None:
    sub.add_parser(
        "rubrics",
        help="list the rubrics -r NAME finds, with their criteria",
        description="Rubrics in ./rubrics/ (found first) and those installed with the package, each with "
        "its criteria ids and scales; use a name with `evaluator run -r NAME`.",
    )


def add_metadata_options(group: argparse._ArgumentGroup) -> None:
    """--metadata and --meta-from-path, beside the other options about reading transcripts."""
    group.add_argument(
        "--metadata",
        type=Path,
        metavar="FILE.csv",
        help="transcript metadata from a CSV with a transcript_id (or id) column and one column per field; "
        "it wins over the path and the record",
    )
    group.add_argument(
        "--meta-from-path",
        metavar="PATTERN",
        help="metadata from each file's path below the input folder, e.g. '{model}/{condition}/*.jsonl'; "
        "a file that does not match is set aside; wins over the record",
    )


def add_unblind_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--unblind",
        action="store_true",
        help="show the judge each transcript's id, file name and metadata (by default it sees none of them, "
        "since ids and folders often encode the arm)",
    )
