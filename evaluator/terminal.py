"""Tables that read at any terminal width: in an 80-column terminal, a pipe or a log file (where
rich assumes 80 columns) a table too wide for the console is stacked rather than squeezed, because
Rich squeezes no_wrap cells to an ellipsis or to nothing and a cut number reads as a different one.
Foundation layer, so the dry run (orchestration) and the views print tables the same way."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from rich.console import Console, ConsoleOptions, RenderableType
from rich.measure import Measurement
from rich.table import Column, Table
from rich.text import Text

# A wrapping column may fold words longer than this; a word with a digit in it is never folded.
MIN_TEXT_WIDTH = 12
# Rich's own layout is kept while every wrapping text column shows at least this much of its longest word
# (narrower, ids fold to unreadable slivers, as `compare`'s criterion names did at 80 columns).
READABLE_TEXT = 8
FIGURE_MARKS = set(".,%+-−()[]")


class Fit:
    """A table drawn as Rich lays it out where no cell is cut, with pinned column widths where Rich
    would cut one (it squeezes no_wrap cells to an ellipsis and folds numbers when the table is too
    wide), and stacked where even the narrowest whole cells do not fit: then each row is its first
    cell followed by `header: value` pairs, so every number stays whole at any width."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[RenderableType]:
        table = self.table
        needs = column_needs(console, table)
        pads = [table._get_padding_width(i) for i in range(len(table.columns))]
        # As Table.__rich_console__ asks for them: with padding, within the width left by the borders.
        widths = table._calculate_column_widths(console, options.update_width(options.max_width - table._extra_width))
        # Rich's own layout stands unless it cuts a number or a no_wrap cell or folds text to a sliver.
        if all(width >= _figures(console, column) + pad for width, column, pad in zip(widths, table.columns, pads)):
            yield table
            return
        available = options.max_width - table._extra_width - sum(pads)
        if sum(low for low, _, _ in needs) <= available:
            yield pinned(table, needs, available)
        else:
            yield from stacked(console, table, options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.table)


def fit(table: Table) -> Fit:
    """The table, with whole cells at any console width (see Fit)."""
    return Fit(table)


def _cell_text(console: Console, cell: RenderableType) -> Text:
    """A cell as Text, never highlighted: cells are data (ids, metadata values, file names), and rich's
    highlighter took over 60 s on one 100,000-character cell; a Table highlights no cell either."""
    return console.render_str(cell, highlight=False) if isinstance(cell, str) else cell if isinstance(cell, Text) else Text(str(cell))


def _is_figure(word: str) -> bool:
    """A number as the views print it (`1,234`, `+0.31`, `(92%)`, `[0.1,`), not an id that has digits."""
    return any(ch.isdigit() for ch in word) and all(ch.isdigit() or ch in FIGURE_MARKS for ch in word)


def _figures(console: Console, column: Column) -> int:
    """The width under which Rich's layout of a column is not kept: its widest line if it does not wrap,
    else its longest word with a digit in it, and at least READABLE_TEXT columns of its longest word."""
    texts = [_cell_text(console, column.header), *(_cell_text(console, c) for c in column.cells)]
    if column.no_wrap:
        return max((line.cell_len for t in texts for line in t.split("\n")), default=0)
    words = [w for t in texts for w in t.plain.split()]
    numbers = max((len(w) for w in words if _is_figure(w)), default=0)
    return max(numbers, min(max((len(w) for w in words), default=0), READABLE_TEXT))


def column_needs(console: Console, table: Table) -> list[tuple[int, int, int]]:
    """Per column: the narrowest width that cuts no cell, the width that breaks no word, and the width
    with no wrapping at all. A no_wrap column needs its widest line; a wrapping one its longest number
    and up to MIN_TEXT_WIDTH of a word."""
    needs = []
    for column in table.columns:
        texts = [_cell_text(console, column.header), *(_cell_text(console, c) for c in column.cells)]
        widest = max((line.cell_len for t in texts for line in t.split("\n")), default=0)
        if column.no_wrap:
            low = widest
        else:
            words = [word for t in texts for word in t.plain.split()]
            numbers = max((len(w) for w in words if _is_figure(w)), default=0)
            longest = max((len(w) for w in words), default=0)
            low = max(numbers, min(longest, MIN_TEXT_WIDTH))
        low = max(low, column.min_width or 0)
        word = low if column.no_wrap else max(low, longest)
        needs.append((low, word, max(widest, word)))
    return needs


def pinned(table: Table, needs: list[tuple[int, int, int]], available: int) -> Table:
    """A copy of the table with fixed column widths: each column its narrowest whole width (with whole
    words where they all fit), and the space left shared in proportion to how much each column would
    still wrap; text folds, never ellipsised."""
    whole_words = sum(word for _, word, _ in needs) <= available
    bases = [word if whole_words else low for low, word, _ in needs]
    spare = available - sum(bases)
    short = [high - base for base, (_, _, high) in zip(bases, needs)]
    widths = [base + (spare * gap // sum(short) if sum(short) else 0) for base, gap in zip(bases, short)]
    copy = _copy(table)
    # Fold, not ellipsis: a long word in a wrapping column (an id, a header) breaks across lines, whole.
    copy.columns = [
        replace(column, width=width, overflow=column.overflow if column.no_wrap else "fold")
        for column, width in zip(table.columns, widths)
    ]
    return copy


def _copy(table: Table) -> Table:
    from copy import copy

    return copy(table)


def stacked(console: Console, table: Table, width: int) -> Iterator[RenderableType]:
    """The table as blocks, one per row: the first cell as the block's heading, then its other cells as
    `header: value` pairs packed into indented lines of the console's width. A pair is never split
    across lines, so a number always sits beside its header; a pair wider than a line wraps alone."""
    if table.title:
        title = _cell_text(console, table.title).copy()
        title.stylize("italic")
        yield title
    columns = table.columns
    headers = [_cell_text(console, c.header).plain.replace("\n", " ") for c in columns[1:]]
    cells = [list(c.cells) for c in columns]
    for row_index, row in enumerate(table.rows):
        block = _cell_text(console, cells[0][row_index]).copy()
        block.stylize("bold")
        line_width = None  # no pair on the current line yet
        for header, column_cells in zip(headers, cells[1:]):
            value = _cell_text(console, column_cells[row_index])
            if not value.plain.strip():
                continue
            pair = Text.assemble((f"{header}: ", "dim"), value.copy())
            pair.plain = pair.plain.replace("\n", " ")
            if line_width is None or line_width + 2 + pair.cell_len > width:
                if block.plain or line_width is not None:
                    block.append("\n")
                block.append("  ")
                line_width = 2 + pair.cell_len
            else:
                block.append("  ")
                line_width += 2 + pair.cell_len
            block.append_text(pair)
        if row.style:
            block.stylize(row.style)
        yield block
