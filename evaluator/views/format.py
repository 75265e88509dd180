"""One place for how figures and tables look, in the terminal, in markdown and in HTML, so every view
shows the same number the same way: a missing value is a dash, a share a whole percent, an estimate
its value with its 95% interval. User text is data: escaped for rich and for markdown here."""

from __future__ import annotations

import html
from collections.abc import Sequence

from rich.markup import escape
from rich.table import Table

from evaluator.models import RunManifest
from evaluator.terminal import fit

__all__ = ["fit"]  # the views print their tables through fmt.fit

MISSING = "–"


def number(value: float | None, digits: int = 2, signed: bool = False) -> str:
    if value is None:
        return MISSING
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def percent(value: float | None) -> str:
    return MISSING if value is None else f"{value:.0%}"


def interval(value: float | None, low: float | None, high: float | None, signed: bool = False) -> str:
    """`0.42 [0.30, 0.55]`: a point estimate with its interval, the way every view prints one."""
    if value is None:
        return MISSING
    if low is None or high is None:
        return number(value, signed=signed)
    return f"{number(value, signed=signed)} [{number(low, signed=signed)}, {number(high, signed=signed)}]"


def verdict(value: float | str | None) -> str:
    """A verdict as recorded: a label, a whole score, or a folded (mean) score to two decimals."""
    if value is None:
        return MISSING
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.2f}"
    return str(value)


def clip(text: str, limit: int) -> str:
    """Text on one line, cut with an ellipsis past `limit` characters: a rationale beside a table."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def judge_label(manifest: RunManifest) -> str:
    """`openai (gpt-4o-mini)` or `rules`: which judge a run used, in one phrase."""
    judge = manifest.judge
    return str(judge.get("judge", "?")) + (f" ({judge['model']})" if judge.get("model") else "")


def md_escape(text: str) -> str:
    """User text as markdown shows it literally: HTML in a transcript id, a model name or a rationale is
    displayed, never run by whatever renders the file; a `|` or a line break cannot split a table cell."""
    return html.escape(" ".join(text.split()), quote=False).replace("|", "\\|")


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(md_escape(h) for h in header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(md_escape(cell) for cell in row) + " |" for row in rows]


def rich_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], text_columns: int = 1, title: str | None = None
) -> Table:
    """Text columns on the left, figures right-aligned and never wrapped; cells escaped, since ids,
    criterion names and rater names are data."""
    table = Table(title=escape(title) if title else None, title_justify="left")
    for index, column in enumerate(header):
        table.add_column(escape(column), justify="left" if index < text_columns else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    return table
