"""A criterion's score distribution as a small inline SVG, with its mean and 95% interval.

Hand-written rather than drawn by a plotting library: a handful of rectangles and labels costs
microseconds, where importing and driving matplotlib cost the report 1.5-2 s. The figures come from
the analysis summary (counts per level, the estimate, tones); this module only lays them out. Colours
are classes styled by report.css, so the charts follow the page's palette. Every text from a rubric or
a run is escaped here, since the SVG reaches the page as Markup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

from markupsafe import Markup, escape

from evaluator.analysis.stats import Estimate
from evaluator.analysis.summary import RubricSummary, Tone
from evaluator.models import BinaryScale, CategoricalScale, CountScale, Criterion, LikertScale
from evaluator.views import format as fmt

MAX_COUNT_BARS = 40
WIDTH, HEIGHT = 240, 116
LEFT, RIGHT = 6, 234
"""The plot's horizontal extent in the viewBox."""
STRIP_Y, BASE_Y, TOP_Y, TICK_Y = 8, 95, 26, 107
"""Mean whisker's line, bars' baseline, tallest bar's top, tick labels' baseline."""
CHAR_WIDTH = 5.0
"""Roughly the width of one 9 px character: labels wider than their slot are shortened to fit."""


@dataclass(frozen=True)
class Bar:
    x: float
    label: str
    """Text under the bar; empty for a folded in-between score (its value is in the bar's title)."""
    count: int
    tone: Tone
    value: str
    """The verdict as recorded, for the bar's title."""


def numeric_axis(criterion: Criterion) -> bool:
    """Bars stand at their scores, so a mean can be drawn among them; labels without values cannot."""
    scale = criterion.scale
    return not isinstance(scale, CategoricalScale) or all(c.value is not None for c in scale.categories)


def _levels(scale: BinaryScale | LikertScale | CountScale, verdicts: dict[str, int]) -> tuple[list[int], bool]:
    """The whole-number levels of a numeric scale, and whether they stand evenly spaced by rank rather
    than at their values (a count beyond MAX_COUNT_BARS shows the levels observed only, so one
    outlandish count cannot blow the chart up)."""
    if scale.type == "binary":
        return [0, 1], False
    if scale.type == "likert":
        return list(range(scale.min, scale.max + 1)), False
    observed = sorted({float(v) for v in verdicts})
    high = max([*observed, scale.max or 0])
    if high <= MAX_COUNT_BARS:
        return list(range(int(high) + 1)), False
    return sorted({int(v) for v in observed if v.is_integer()}), True


def bars(rs: RubricSummary, criterion: Criterion) -> tuple[list[Bar], bool]:
    """Every level the scale allows (zero bars included, so shape is comparable), in scale order, and
    whether the bars are ranked (evenly spaced) rather than placed at their scores. Scores folded from
    `--samples N` that fall between levels (a mean of 2.5) get their own bar at their own place."""
    scale, verdicts = criterion.scale, rs.overall[criterion.id].verdicts
    if isinstance(scale, CategoricalScale):
        numeric = numeric_axis(criterion)
        return [
            Bar(
                c.value if numeric and c.value is not None else i,
                c.label,
                verdicts.get(c.label, 0),
                rs.score_tone(criterion, c.value),
                c.label,
            )
            for i, c in enumerate(scale.categories)
        ], not numeric
    levels, ranked = _levels(scale, verdicts)
    names = ("no", "yes") if scale.type == "binary" else None
    drawn = [
        Bar(v, names[v] if names else str(v), verdicts.get(str(v), 0), rs.score_tone(criterion, v), str(v))
        for v in levels
    ]
    whole = {str(v) for v in levels}
    folded = sorted((float(v), n) for v, n in verdicts.items() if v not in whole)
    drawn += [Bar(v, "", n, rs.score_tone(criterion, v), fmt.verdict(v)) for v, n in folded]
    drawn.sort(key=lambda b: b.x)
    if ranked:
        drawn = [Bar(i, b.label or b.value, b.count, b.tone, b.value) for i, b in enumerate(drawn)]
    return drawn, ranked


def criterion_chart(rs: RubricSummary, criterion: Criterion) -> Markup | None:
    """The score distribution as inline SVG, with the mean and its interval where bars stand at their
    scores; None when nothing was scored. Byte-for-byte reproducible, and without ids, so any number of
    charts can share a page."""
    drawn, ranked = bars(rs, criterion)
    if not any(b.count for b in drawn):
        return None
    estimate = rs.overall[criterion.id].estimate if numeric_axis(criterion) and not ranked else None
    xs = [b.x for b in drawn]
    gaps = [b - a for a, b in pairwise(xs) if b > a]
    width = 0.68 * min(gaps, default=1.0)
    low, high = min(xs) - width, max(xs) + width
    scale = (RIGHT - LEFT) / (high - low)

    def at(value: float) -> float:
        return LEFT + (value - low) * scale

    tallest = max(b.count for b in drawn)
    bar_width = width * scale
    slot = (RIGHT - LEFT) / len([b for b in drawn if b.label])
    parts = [_bar(b, at(b.x), bar_width, tallest, slot) for b in drawn]
    if estimate is not None:
        parts.insert(0, _estimate(estimate, at))
    description = _description(criterion, drawn, estimate)
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"'
        f' aria-label="{description}"><title>{description}</title>'
        f'<line class="axis" x1="{LEFT}" y1="{BASE_Y}" x2="{RIGHT}" y2="{BASE_Y}"/>{"".join(parts)}</svg>'
    )


def _bar(bar: Bar, centre: float, width: float, tallest: int, slot: float) -> str:
    """One bar with its count above it and its level below it; a bar's title names both."""
    height = (BASE_Y - TOP_Y) * bar.count / tallest
    top = BASE_Y - height
    title = escape(f"{bar.value}: {bar.count} item{'s' if bar.count != 1 else ''}")
    svg = f"<g><title>{title}</title>"
    if bar.count:
        svg += (
            f'<rect class="bar tone-{bar.tone}" x="{_n(centre - width / 2)}" y="{_n(top)}"'
            f' width="{_n(width)}" height="{_n(height)}"/>'
            f'<text class="bar-count" x="{_n(centre)}" y="{_n(top - 2.5)}">{bar.count}</text>'
        )
    if bar.label:
        svg += f'<text class="bar-level" x="{_n(centre)}" y="{TICK_Y}">{escape(_fit(bar.label, slot))}</text>'
    return svg + "</g>"


def _estimate(estimate: Estimate, at: Callable[[float], float]) -> str:
    """Mean and 95% interval as a dot and whisker above the bars, on the same score axis."""
    return (
        f'<line class="whisker" x1="{_n(at(estimate.low))}" y1="{STRIP_Y}" x2="{_n(at(estimate.high))}"'
        f' y2="{STRIP_Y}"/><circle class="mean-dot" cx="{_n(at(estimate.value))}" cy="{STRIP_Y}" r="2.8"/>'
    )


def _description(criterion: Criterion, drawn: list[Bar], estimate: Estimate | None) -> str:
    """What the chart shows, in words: its accessible name and tooltip (escaped, for an attribute too)."""
    counts = ", ".join(f"{b.value}: {b.count}" for b in drawn)
    text = f"{criterion.name}, items per score: {counts}"
    if estimate is not None:
        text += f"; mean {fmt.interval(estimate.value, estimate.low, estimate.high)} (95% interval)"
    return str(escape(text))


def _fit(label: str, slot: float) -> str:
    """A text label shortened to its slot; numbers stay whole (a number is never cut)."""
    limit = max(int(slot / CHAR_WIDTH), 3)
    try:
        float(label)
    except ValueError:
        return fmt.clip(label, limit)
    return label


def _n(value: float) -> str:
    """Coordinates to a tenth of a unit: enough on a 240-wide chart, and short."""
    return f"{value:.1f}".rstrip("0").rstrip(".")
