"""A criterion's score distribution as inline SVG drawn by matplotlib, with its mean and 95% interval.

The figures come from the analysis summary (counts per level, the estimate, tones); this module only
lays them out. The OO API with the SVG canvas never touches a GUI backend.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

from markupsafe import Markup

from evaluator.analysis.stats import Estimate
from evaluator.analysis.summary import RubricSummary, Tone
from evaluator.models import CategoricalScale, Criterion

if TYPE_CHECKING:
    from matplotlib.axes import Axes

TONE_COLOURS = {"good": "#2f9e77", "mid": "#e0a33a", "bad": "#d5576a", "neutral": "#7c8aa0"}
ACCENT = "#3b5bdb"
MAX_COUNT_BARS = 40


@dataclass(frozen=True)
class Bar:
    x: float
    label: str
    count: int
    tone: Tone


def numeric_axis(criterion: Criterion) -> bool:
    """Bars stand at their scores, so a mean can be drawn among them; labels without values cannot."""
    scale = criterion.scale
    return not isinstance(scale, CategoricalScale) or all(c.value is not None for c in scale.categories)


def bars(rs: RubricSummary, criterion: Criterion) -> list[Bar]:
    """Every level the scale allows (zero bars included, so shape is comparable), in scale order; a count
    beyond MAX_COUNT_BARS shows the levels observed only, so one outlandish count cannot blow the chart up."""
    scale, verdicts = criterion.scale, rs.overall[criterion.id].verdicts
    if isinstance(scale, CategoricalScale):
        numeric = numeric_axis(criterion)
        return [
            Bar(
                c.value if numeric and c.value is not None else i,
                c.label,
                verdicts.get(c.label, 0),
                rs.score_tone(criterion, c.value),
            )
            for i, c in enumerate(scale.categories)
        ]
    if scale.type == "binary":
        return [Bar(v, ("no", "yes")[v], verdicts.get(str(v), 0), rs.score_tone(criterion, v)) for v in (0, 1)]
    if scale.type == "likert":
        levels = list(range(scale.min, scale.max + 1))
    else:
        observed = sorted({int(float(v)) for v in verdicts})
        high = max([*observed, scale.max or 0])
        levels = list(range(high + 1)) if high <= MAX_COUNT_BARS else observed
    return [Bar(v, str(v), verdicts.get(str(v), 0), rs.score_tone(criterion, v)) for v in levels]


def _draw_estimate(strip: Axes, estimate: Estimate | None) -> None:
    """Mean and 95% interval as a dot and whisker above the bars, on the same score axis."""
    strip.set_axis_off()
    strip.set_ylim(-1, 1)
    if estimate is not None:
        strip.plot([estimate.low, estimate.high], [0, 0], color=ACCENT, alpha=0.35, lw=4, solid_capstyle="round")
        strip.plot([estimate.value], [0], marker="o", ms=5, color=ACCENT)


def criterion_chart(rs: RubricSummary, criterion: Criterion) -> Markup | None:
    """The score distribution as inline SVG, with the mean and its interval where scores are numbers;
    None when nothing was scored. A per-chart hash salt keeps the clip path ids of several inline SVGs
    distinct and the output byte-for-byte reproducible."""
    drawn_bars = bars(rs, criterion)
    if not any(b.count for b in drawn_bars):
        return None
    # Here, not at the top: matplotlib takes half a second to import and only the HTML report draws.
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    with matplotlib.rc_context(
        {
            "svg.hashsalt": f"{rs.rubric.id}/{criterion.id}",
            "svg.fonttype": "none",
            "font.size": 8,
            "axes.edgecolor": "#c8cfd9",
            "xtick.color": "#475569",
        }
    ):
        figure = Figure(figsize=(3.3, 1.6), dpi=72)
        FigureCanvasSVG(figure)
        strip, axes = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 6], "hspace": 0.08})
        xs = [b.x for b in drawn_bars]
        gaps = [b - a for a, b in pairwise(xs) if b > a]
        width = 0.68 * min(gaps, default=1.0)
        _draw_estimate(strip, rs.overall[criterion.id].estimate if numeric_axis(criterion) else None)
        counts = [b.count for b in drawn_bars]
        colours = [TONE_COLOURS[b.tone] for b in drawn_bars]
        drawn = axes.bar(xs, counts, width=width, color=colours, zorder=2)
        axes.bar_label(drawn, labels=[str(n) if n else "" for n in counts], padding=1.5, fontsize=7.5, color="#334155")
        axes.set_xticks(xs, [b.label.replace("$", r"\$") for b in drawn_bars])
        axes.set_yticks([])
        axes.set_ylim(0, max(counts) * 1.22)
        axes.set_xlim(min(xs) - width, max(xs) + width)
        for side in ("top", "right", "left"):
            axes.spines[side].set_visible(False)
        axes.tick_params(axis="x", length=0, pad=3)
        figure.subplots_adjust(left=0.02, right=0.98, top=0.98, bottom=0.15)
        buffer = io.StringIO()
        no_metadata = dict.fromkeys(("Date", "Creator", "Format", "Type"))
        figure.savefig(buffer, format="svg", transparent=True, metadata=no_metadata)
    return Markup(_inline(buffer.getvalue()))


def _inline(svg: str) -> str:
    """An SVG file made fit to sit inside HTML: no XML prolog, and only the ids it references
    (matplotlib names every group figure_1, axes_1..., which would repeat across charts)."""
    svg = svg[svg.index("<svg") :]
    referenced = set(re.findall(r"#([\w.-]+)", svg))
    return re.sub(r' id="([^"]*)"', lambda m: m.group(0) if m.group(1) in referenced else "", svg)
