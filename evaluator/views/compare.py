"""How a comparison of two runs reads: tables per rubric in the terminal, and compare.md with every
changed item and both rationales in full. Figures come from the Comparison as computed by
evaluator.analysis.compare and are formatted by views.format, so they read as in every other view."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evaluator.analysis.compare import ChangedItem, Comparison, CriterionComparison, compare_runs
from evaluator.store import write_atomic
from evaluator.views import format as fmt

COMPARE_FILE = "compare.md"
RATIONALE_CHARS = 160

MD_COLUMNS = (
    "criterion",
    "paired",
    "only A",
    "only B",
    "status changes",
    "mean A",
    "mean B",
    "B − A [95% CI]",
    "exact",
    "κ",
    "changed",
    "definition",
)
TERMINAL_COLUMNS = ("criterion", "paired", "mean A → B", "B − A [95% CI]", "exact", "κ", "changed", "definition")
WRAPPING_COLUMNS = ("mean A → B", "B − A [95% CI]", "changed", "only A / B")
"""In a compact table, the columns that wrap between their figures; criterion ids stay whole on one line."""
UNBOUNDED = 10_000
CHANGED_COLUMNS = ("criterion", "transcript", "turn", "A", "B", "moved by", "rationale A", "rationale B")
LEGEND = (
    "Means and B − A are over paired items (ok in both runs); the 95% interval resamples whole sessions. "
    "exact: share of paired items with the same verdict. κ: Cohen's kappa between the runs, "
    "ʷ quadratic-weighted (likert, count scales), else unweighted. Status changes: items judged in both runs "
    "whose status differs (e.g. ok→unscored)."
)


# --- cells ---------------------------------------------------------------------------------------------


def _difference(c: CriterionComparison) -> str:
    d = c.difference
    return fmt.MISSING if d is None else fmt.interval(d.value, d.low, d.high, signed=True)


def _kappa(c: CriterionComparison) -> str:
    return fmt.MISSING if c.kappa is None else fmt.number(c.kappa) + ("ʷ" if c.kappa_weights else "")


def _definition(c: CriterionComparison) -> str:
    if c.edit is not None:
        return "edited" if c.edit.hash_a and c.edit.hash_b else c.edit.describe()
    return "same, MOVED" if c.moved else "same"


def _status_text(c: CriterionComparison) -> str:
    return "; ".join(f"{change} {n}" for change, n in c.status_changes.items()) or "none"


def _md_row(c: CriterionComparison) -> list[str]:
    return [
        f"`{c.criterion_id}`",
        str(c.paired),
        str(c.only_a),
        str(c.only_b),
        _status_text(c),
        fmt.number(c.mean_a),
        fmt.number(c.mean_b),
        _difference(c),
        fmt.number(c.exact),
        _kappa(c),
        str(c.changed),
        _definition(c),
    ]


def _terminal_row(c: CriterionComparison, unpaired: bool) -> list[str]:
    """Means side by side and items in one run only in one optional column, to fit 120 columns."""
    statuses = sum(c.status_changes.values())
    row = [
        c.criterion_id,
        str(c.paired),
        f"{fmt.number(c.mean_a)} → {fmt.number(c.mean_b)}",
        _difference(c),
        fmt.number(c.exact),
        _kappa(c),
        str(c.changed) + (f" +{statuses} status" if statuses else ""),
        _definition(c),
    ]
    return row + [f"{c.only_a} / {c.only_b}"] if unpaired else row


def _header_lines(comparison: Comparison) -> list[str]:
    a, b = comparison.run_a, comparison.run_b
    criteria = comparison.criteria
    statuses = sum(sum(c.status_changes.values()) for c in criteria)
    counts = (
        f"{sum(c.paired for c in criteria)} paired items, {len(comparison.changed)} changed verdicts, "
        f"{statuses} status changes, {sum(c.only_a for c in criteria)} items only in A, "
        f"{sum(c.only_b for c in criteria)} only in B"
    )
    return [
        f"Run A: {a.run_id} ({fmt.judge_label(a.manifest)}), {a.run_dir}",
        f"Run B: {b.run_id} ({fmt.judge_label(b.manifest)}), {b.run_dir}",
        counts,
    ]


def _notes(criteria: Iterable[CriterionComparison]) -> list[str]:
    """Why a kappa is missing, where there was something to agree on (paired 0 already says the rest)."""
    return [f"κ of {c.criterion_id}: {c.kappa_note}" for c in criteria if c.kappa is None and c.paired]


# --- terminal ------------------------------------------------------------------------------------------


def print_comparison(comparison: Comparison, console: Console, top: int = 20) -> None:
    """Tables per rubric, the warnings, then the items that moved most with both rationales."""
    for line in _header_lines(comparison):
        console.print(escape(line), highlight=False)
    for rubric_id in comparison.rubric_ids():
        criteria = [c for c in comparison.criteria if c.rubric_id == rubric_id]
        table = _criteria_table(rubric_id, criteria, compact=False)
        if console.measure(table, options=console.options.update_width(UNBOUNDED)).maximum > console.width:
            table = _criteria_table(rubric_id, criteria, compact=True)
        console.print(fmt.fit(table))
        for note in _notes(criteria):
            console.print(f"  {escape(note)}", style="dim", highlight=False)
    console.print(LEGEND, style="dim", highlight=False)
    if comparison.warnings:
        console.print("Warnings", style="bold")
        for finding in comparison.warnings:
            console.print(f"[yellow]![/yellow] {escape(finding.message)}", highlight=False)
    if comparison.changed:
        _print_changed(comparison.changed, console, top)


def _criteria_table(rubric_id: str, criteria: list[CriterionComparison], compact: bool) -> Table:
    """One row per criterion, coloured by what moved (hence not fmt.rich_table). Compact, for a console
    too narrow for the figures on one line (80 columns): cells holding several figures wrap between them,
    never inside one, an edited definition moves under the criterion id, and cells keep one space of
    padding instead of two, so the table stays a table with whole ids (fmt.fit still stacks it where
    even that cannot fit)."""
    unpaired = any(c.only_a or c.only_b for c in criteria)
    columns = TERMINAL_COLUMNS + (("only A / B",) if unpaired else ())
    if compact:
        columns = tuple(column for column in columns if column != "definition")
    table = Table(
        title=f"{rubric_id}: run B − run A", title_justify="left", padding=(0, 1, 0, 0) if compact else (0, 1)
    )
    for column in columns:
        table.add_column(
            column,
            justify="left" if column in ("criterion", "definition") else "right",
            no_wrap=column not in (WRAPPING_COLUMNS if compact else ("criterion",)),
            overflow="fold",
        )
    for c in criteria:
        row = _terminal_row(c, unpaired)
        if compact:
            definition = row.pop(TERMINAL_COLUMNS.index("definition"))
            row[0] += "" if definition == "same" else f"\n({definition})"
        table.add_row(*(escape(cell) for cell in row), style="yellow" if c.edited else "red" if c.moved else None)
    return table


def _print_changed(changed: list[ChangedItem], console: Console, top: int) -> None:
    shown = changed[:top]
    title = f"Changed items, most changed first ({len(shown)} of {len(changed)}; all in {COMPARE_FILE})"
    table = Table(title=title, title_justify="left", show_lines=True)
    table.add_column("item", no_wrap=True)
    table.add_column("A → B", justify="center", no_wrap=True)
    table.add_column("rationale A", ratio=1)
    table.add_column("rationale B", ratio=1)
    for item in shown:
        table.add_row(
            escape(f"{item.rubric_id}/{item.criterion_id}\n{item.transcript_id} turn {item.turn_index}"),
            escape(f"{fmt.verdict(item.verdict_a)} → {fmt.verdict(item.verdict_b)}"),
            escape(fmt.clip(item.rationale_a, RATIONALE_CHARS)),
            escape(fmt.clip(item.rationale_b, RATIONALE_CHARS)),
        )
    console.print(fmt.fit(table))


# --- compare.md ----------------------------------------------------------------------------------------


def render_comparison_markdown(comparison: Comparison) -> str:
    """compare.md: the same as the terminal, with every changed item and status change in full."""
    a, b = comparison.run_a, comparison.run_b
    out = [f"# Comparison of run {a.run_id} (A) with run {b.run_id} (B)", ""]
    out += [f"- {line}" for line in _header_lines(comparison)]
    out += ["", LEGEND, "", "## Warnings", ""]
    out += [f"- {f.message}" for f in comparison.warnings] or [
        "- None: same transcripts, criterion definitions, templates and judge, and nothing moved."
    ]
    for rubric_id in comparison.rubric_ids():
        criteria = [c for c in comparison.criteria if c.rubric_id == rubric_id]
        out += ["", f"## Rubric `{rubric_id}`", ""]
        out += fmt.md_table(MD_COLUMNS, [_md_row(c) for c in criteria])
        notes = _notes(criteria)
        if notes:
            out += [""] + [f"- {note}" for note in notes]
    out += ["", f"## Changed items ({len(comparison.changed)}), most changed first", ""]
    if comparison.changed:
        rows = [
            [
                f"`{i.rubric_id}/{i.criterion_id}`",
                i.transcript_id,
                str(i.turn_index),
                fmt.verdict(i.verdict_a),
                fmt.verdict(i.verdict_b),
                f"{i.magnitude:.2f}",
                i.rationale_a,
                i.rationale_b,
            ]
            for i in comparison.changed
        ]
        out += fmt.md_table(CHANGED_COLUMNS, rows)
    else:
        out.append("No paired item changed its verdict.")
    return "\n".join(out) + "\n"


def write_comparison(run_a: Path, run_b: Path, out_dir: Path | None = None) -> tuple[Comparison, Path]:
    """Write compare.md, by default next to run B's results: B is the run whose change is being checked."""
    comparison = compare_runs(run_a, run_b)
    folder = out_dir or run_b
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / COMPARE_FILE
    write_atomic(path, render_comparison_markdown(comparison))
    return comparison, path
