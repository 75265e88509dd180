"""What moved against the previous run, criterion by criterion, in a few lines: the view `evaluator
watch` prints after each save. The full tables stay with `evaluator compare` and compare.md; here only
the criteria that moved or were edited, each moved item with its verdicts and its new rationale."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from evaluator.analysis.compare import Comparison, CriterionComparison
from evaluator.views import format as fmt

RATIONALE_CHARS = 200
QUIET_KINDS = ("edited", "rubric")
"""Warnings already shown by the criterion lines themselves."""


def _criterion_line(c: CriterionComparison) -> str:
    what = f"{c.changed} of {c.paired} moved" if c.paired else "no paired items"
    means = f", mean {fmt.number(c.mean_a)} → {fmt.number(c.mean_b)}" if c.mean_a is not None else ""
    edit = f" [{c.edit.describe()}]" if c.edit else ""
    statuses = ", ".join(f"{k} ×{n}" for k, n in sorted(c.status_changes.items()))
    return f"{c.rubric_id}/{c.criterion_id}{edit}: {what}{means}" + (f"; status {statuses}" if statuses else "")


def print_moves(comparison: Comparison, console: Console) -> None:
    """The moved and edited criteria against run A, then each moved item with run B's rationale."""
    shown = [c for c in comparison.criteria if c.moved or c.edited]
    console.print(
        escape(
            f"Against {comparison.run_a.run_id}: {len(shown)} of {len(comparison.criteria)} criteria moved or edited"
        ),
        style="bold",
        highlight=False,
    )
    for c in shown:
        console.print(escape(_criterion_line(c)), style="yellow" if c.edited else "red", highlight=False)
        for item in comparison.changed:
            if (item.rubric_id, item.criterion_id) != (c.rubric_id, c.criterion_id):
                continue
            console.print(
                escape(
                    f"  {item.transcript_id} turn {item.turn_index}: {fmt.verdict(item.verdict_a)} → "
                    f"{fmt.verdict(item.verdict_b)}  {fmt.clip(item.rationale_b, RATIONALE_CHARS)}"
                ),
                highlight=False,
            )
    for finding in comparison.warnings:
        if finding.kind not in QUIET_KINDS:
            console.print(f"[yellow]![/yellow] {escape(finding.message)}", highlight=False)
