"""A forest plot of a contrast: one row per criterion (and arm), its difference from the baseline as a dot
and its 95% interval as a whisker around a line at zero, so a reader sees at a glance which intervals
leave zero behind and which way.

Criteria are on different scales (yes/no, 1-5, counts), so the shared axis is the difference as a share
of each criterion's scale; the figure in its own units is written beside each row. Hand-written SVG
(no matplotlib): small, inline, crisp at any zoom. Every piece of user text is escaped here.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from markupsafe import Markup

from evaluator.analysis.contrast import CriterionContrast
from evaluator.views import format as fmt

WIDTH = 760
LABEL_X = 8
PLOT_LEFT = 250
PLOT_RIGHT = 560
FIGURE_X = 572
ROW = 26
TOP = 34
BOTTOM = 40
LABEL_CHARS = 38
NICE_LIMITS = (0.05, 0.1, 0.2, 0.25, 0.5, 0.75, 1.0)
COLOURS = {"better": "#1f8a63", "worse": "#c23a50", "differs": "#3b5bdb", "unclear": "#566175"}


def _share(row: CriterionContrast, value: float) -> float:
    """A difference as a share of the row's scale; in its own units when the scale's width is unknown."""
    return value / row.span if row.span else value


def _limit(rows: Sequence[CriterionContrast]) -> float:
    """The axis runs from −limit to +limit: the smallest round share that holds every interval."""
    widest = max(
        (abs(_share(r, x)) for r in rows if r.difference for x in (r.difference.low, r.difference.high)),
        default=0.0,
    )
    return next((n for n in NICE_LIMITS if widest <= n), math.ceil(widest))


def _label(row: CriterionContrast, arms: int, rubrics: int) -> str:
    name = row.criterion.id if rubrics == 1 else f"{row.rubric_id}/{row.criterion.id}"
    return fmt.clip(f"{row.arm.label}: {name}" if arms > 1 else name, LABEL_CHARS)


def _text(x: float, y: float, text: str, css: str, anchor: str = "start") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" class="{css}" text-anchor="{anchor}">{html.escape(text)}</text>'


def forest_svg(rows: Sequence[CriterionContrast], baseline: str) -> Markup:
    """The plot for the rows of one contrast (every arm against `baseline`), as inline SVG markup."""
    rows = [r for r in rows if r.difference is not None]
    if not rows:
        return Markup("")
    arms = len({r.arm.label for r in rows})
    rubrics = len({r.rubric_id for r in rows})
    limit = _limit(rows) or 1.0
    height = TOP + ROW * len(rows) + BOTTOM

    def x_of(share: float) -> float:
        return PLOT_LEFT + (share + limit) / (2 * limit) * (PLOT_RIGHT - PLOT_LEFT)

    unit = "share of scale" if all(r.span for r in rows) else "share of scale (raw units where no range)"
    out = [
        f'<svg class="forest" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" aria-label="{html.escape(f"differences from {baseline}")}">',
        "<style>.fl{font:12px sans-serif;fill:#1b2330}.fa{font:10px sans-serif;fill:#64708a}"
        ".ff{font:11px monospace;fill:#1b2330}.fz{stroke:#8a94a8;stroke-dasharray:3 3}"
        ".fg{stroke:#e3e7ee}</style>",
        _text(PLOT_LEFT, 14, f"arm − {baseline}, as a {unit}", "fa"),
        _text(FIGURE_X, 14, "in the criterion's units [95% CI]", "fa"),
    ]
    axis_y = TOP + ROW * len(rows)
    for tick in (-limit, -limit / 2, 0.0, limit / 2, limit):
        x = x_of(tick)
        out.append(
            f'<line x1="{x:.1f}" y1="{TOP - 6}" x2="{x:.1f}" y2="{axis_y}" class="{"fz" if tick == 0 else "fg"}"/>'
        )
        out.append(_text(x, axis_y + 14, f"{tick:+.0%}" if tick else "0", "fa", "middle"))
    out.append(_text((PLOT_LEFT + PLOT_RIGHT) / 2, axis_y + 30, f"← lower than {baseline} · higher →", "fa", "middle"))
    for index, (row, d) in enumerate((r, r.difference) for r in rows if r.difference is not None):
        y = TOP + ROW * index + ROW / 2
        low, high, value = (x_of(max(-limit, min(limit, _share(row, v)))) for v in (d.low, d.high, d.value))
        colour = COLOURS[row.verdict]
        figure = fmt.interval(d.value, d.low, d.high, signed=True)
        tip = f"{row.criterion.name} ({row.criterion.id}), {row.arm.label} − {baseline}: {figure}; {row.verdict}"
        out += [
            f'<g class="forest-row" data-criterion="{html.escape(row.rubric_id)}:{html.escape(row.criterion.id)}" '
            f'data-arm="{html.escape(row.arm.label)}" data-verdict="{row.verdict}">',
            f"<title>{html.escape(tip)}</title>",
            _text(LABEL_X, y + 4, _label(row, arms, rubrics), "fl"),
            f'<line x1="{low:.1f}" y1="{y:.1f}" x2="{high:.1f}" y2="{y:.1f}" stroke="{colour}" stroke-width="2"/>',
            f'<circle cx="{value:.1f}" cy="{y:.1f}" r="4.5" fill="{colour}"/>',
            _text(FIGURE_X, y + 4, figure, "ff"),
            "</g>",
        ]
    out.append("</svg>")
    return Markup("".join(out))
