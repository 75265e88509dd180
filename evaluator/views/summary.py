"""The summary in the terminal and as summary.md: both render one analysis.summary.RunSummary, with
figures formatted by views.format, so they show the same numbers as each other and as report.html."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evaluator.analysis.summary import Cell, RubricSummary, RunSummary, summarize
from evaluator.models import STATUSES, Criterion
from evaluator.store import write_atomic
from evaluator.views import format as fmt

SUMMARY_FILE = "summary.md"

DIRECTION_ARROWS = {"higher": "↑", "lower": "↓", "neither": "·"}
COLUMNS = ("criterion", "better", "ok", "n/a", "unscored", "error", "mean", "meets", "distribution")
MEAN_WITH_INTERVAL = "mean [95% CI]"
UNBOUNDED = 10_000
TERMINAL_COLUMNS = ("criterion", "ok", "n/a", "unscored", "error", MEAN_WITH_INTERVAL, "meets")


def mean_text(cell: Cell) -> str:
    """The mean with its session-bootstrap interval where the cell has one (a criterion over the run)."""
    estimate = cell.estimate
    if estimate is None:
        return fmt.number(cell.mean)
    return fmt.interval(cell.mean, estimate.low, estimate.high)


def distribution(cell: Cell) -> str:
    """`1:3 2:5` in scale order; a binary scale as `yes 3 / no 5`; folded means (`--samples N`) as `3.67:2`."""
    if cell.criterion.scale.type == "binary":
        return f"yes {cell.verdicts.get('1', 0)} / no {cell.verdicts.get('0', 0)}" if cell.verdicts else ""
    return " ".join(f"{_level(v)}:{n}" for v, n in cell.levels())


def _level(value: str) -> str:
    try:
        return fmt.verdict(float(value))
    except ValueError:
        return value


Extra = tuple[str, Callable[[Cell], str], str]  # header, cell text, what it means


def extra_columns(summary: RunSummary) -> list[Extra]:
    """Columns shown only where the run has their data: the mean of logprob-weighted scores (`--logprobs`)
    and self-consistency, the share of items whose samples all agree (`--samples N`)."""
    extras: list[Extra] = []
    if any(cell.weighted for rs in summary.rubrics for cell in rs.overall.values()):
        meaning = "mean of the scores weighted by the judge's top logprobs for the score token, where recorded"
        extras.append(("weighted mean", lambda cell: fmt.number(cell.weighted_mean), meaning))
    if summary.manifest.samples > 1:
        meaning = (
            f"share of items whose {summary.manifest.samples} samples all gave the same verdict (of the items "
            "with two or more scored samples; not chance-corrected)"
        )
        extras.append(("self-consistent", lambda cell: fmt.percent(cell.self_consistency), meaning))
    return extras


def _row(label: str, cell: Cell) -> list[str]:
    c = cell.counts
    return [
        label,
        DIRECTION_ARROWS[cell.criterion.better],
        str(c["ok"]),
        str(c["not_applicable"]),
        str(c["unscored"]),
        str(c["error"]),
        mean_text(cell),
        fmt.percent(cell.pass_share),
        distribution(cell),
    ]


def _criteria_table(rs: RubricSummary, interval: bool, extras: Sequence[Extra] = ()) -> Table:
    """Counts, mean (with its 95% interval, if asked) and meets share per criterion, then any extra columns."""
    rows = []
    for cid, criterion in _criteria(rs):
        cell = rs.overall[cid]
        row = _row(f"{DIRECTION_ARROWS[criterion.better]} {cid}", cell)
        rows.append([row[0], *row[2:6], row[6] if interval else fmt.number(cell.mean), row[7]])
        rows[-1] += [show(cell) for _, show, _ in extras]
    columns = (
        TERMINAL_COLUMNS if interval else tuple("mean" if c == MEAN_WITH_INTERVAL else c for c in TERMINAL_COLUMNS)
    ) + tuple(name for name, _, _ in extras)
    return fmt.rich_table(columns, rows, title=f"{rs.rubric.title} ({rs.rubric.id} v{rs.rubric.version})")


def _fits(console: Console, table: Table) -> bool:
    return console.measure(table, options=console.options.update_width(UNBOUNDED)).maximum <= console.width


def _mean_and_share(cell: Cell) -> str:
    share = cell.pass_share
    return fmt.number(cell.mean) + (f" ({fmt.percent(share)})" if share is not None else "")


def _criteria(rs: RubricSummary) -> list[tuple[str, Criterion]]:
    return [(c.id, c) for c in rs.rubric.criteria]


def header_lines(summary: RunSummary) -> list[str]:
    m = summary.manifest
    counts = ", ".join(f"{summary.counts.get(s, 0)} {s}" for s in STATUSES)
    lines = [
        f"Run {m.run_id}: {len(m.transcripts)} transcripts, judge {fmt.judge_label(m)}, {m.items_planned} items planned",
        f"Judgments: {counts}",
    ]
    if m.samples > 1:
        lines[1] = f"Items, each folded over {m.samples} samples ({m.aggregate}; see aggregates.jsonl): {counts}"
    lines += [f"{name}: {meaning}" for name, _, meaning in extra_columns(summary)]
    if m.skipped_files:
        lines.append(f"Skipped files: {len(m.skipped_files)} (" + "; ".join(s.path for s in m.skipped_files) + ")")
    if m.stopped:
        lines.append(f"Stopped early: {m.stopped}")
    if not m.complete:
        lines.append(
            f"This run is incomplete: {summary.missing} of {m.items_planned} planned judgments are missing; "
            f"continue it with `evaluator run --resume {summary.run_dir}`."
        )
    if m.subset is not None:
        lines[0] += " in the subset"
        lines.insert(0, f"Subset run (only part of the plan was judged): {m.subset.describe()}")
    return lines


def render_markdown(summary: RunSummary) -> str:
    """summary.md: the same figures as the terminal, for a lab notebook or a pull request."""
    out = [f"# Summary of run {fmt.md_escape(summary.manifest.run_id)}", ""]
    out += [f"- {fmt.md_escape(line)}" for line in header_lines(summary)]
    out += [
        "",
        "Columns: `better` says which direction is the better therapy (· for descriptive criteria); `mean` has "
        "its 95% interval from resampling whole sessions; `meets` is the share of scored turns at or beyond the "
        "criterion's `pass_at` (for the pacing headline: slow-down requests honoured).",
        "",
    ]
    for rs in summary.rubrics:
        rubric = rs.rubric
        out += [f"## {fmt.md_escape(rubric.title)} (`{rubric.id}` v{fmt.md_escape(str(rubric.version))})", ""]
        extras = extra_columns(summary)
        names = tuple(name for name, _, _ in extras)

        def row(label: str, cell: Cell) -> list[str]:
            return _row(label, cell) + [show(cell) for _, show, _ in extras]

        out += fmt.md_table(COLUMNS + names, [row(f"{c.name} (`{cid}`)", rs.overall[cid]) for cid, c in _criteria(rs)])
        out += ["", "### Per transcript", ""]
        rows = [
            [f"{tid}: `{cid}`", *row("", cells[cid])[1:]]
            for tid, cells in rs.by_transcript.items()
            for cid, _ in _criteria(rs)
        ]
        out += fmt.md_table(("transcript: criterion", *COLUMNS[1:], *names), rows)
        out.append("")
    return "\n".join(out) + "\n"


def print_summary(summary: RunSummary, console: Console, per_transcript: bool = True) -> None:
    """The terminal view: counts, mean with its interval and share meeting each criterion (↑/↓: which way
    is better, ·: descriptive); distributions are in summary.md, where width is not a constraint."""
    for line in header_lines(summary):
        console.print(escape(line), highlight=False)
    # Intervals only where every table still fits (summary.md always has them): a squeezed table cuts off counts.
    extras = extra_columns(summary)
    interval = all(_fits(console, _criteria_table(rs, True, extras)) for rs in summary.rubrics)
    for rs in summary.rubrics:
        console.print(fmt.fit(_criteria_table(rs, interval, extras)))
        if per_transcript:
            transcripts = list(rs.by_transcript)
            table = fmt.rich_table(
                ("criterion", *transcripts),
                [[cid, *(_mean_and_share(rs.by_transcript[t][cid]) for t in transcripts)] for cid, _ in _criteria(rs)],
                title="per transcript: mean (share meeting the criterion)",
            )
            for column in table.columns[1:]:
                column.no_wrap = False  # many transcripts: a figure wraps rather than being cut off
            console.print(fmt.fit(table))


def write_summary(run_dir: Path) -> tuple[RunSummary, Path]:
    """Summarise a run and write its summary.md atomically; the summary is returned for the other views."""
    summary = summarize(run_dir)
    path = run_dir / SUMMARY_FILE
    write_atomic(path, render_markdown(summary))
    return summary, path
