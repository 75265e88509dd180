"""report.html: one self-contained page to read a run, from the headline figures down to every turn.

Everything is inline (CSS, plain JS, charts as matplotlib SVG), so the file opens from disk, can be
mailed or archived beside the run, and never reaches the network. Transcript and judge text is data:
the template autoescapes every value, and the only raw HTML inserted is built here from escaped
pieces (evidence highlights) or drawn by matplotlib (charts).
"""

from __future__ import annotations

import html
import io
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from itertools import pairwise
from pathlib import Path

import matplotlib
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from matplotlib.axes import Axes
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

from evaluator.analysis.stats import Estimate, cluster_bootstrap_mean
from evaluator.models import STATUSES, CategoricalScale, Criterion, Judgment, RunManifest, Transcript
from evaluator.report import DIRECTION_ARROWS, Cell, RubricSummary, RunSummary, summarize
from evaluator.rubrics import scale_summary
from evaluator.store import read_transcript_snapshot, write_atomic
from evaluator.transcripts import TranscriptError, read_transcripts

HTML_FILE = "report.html"
PAGE_TEMPLATE = "report.html.j2"

STATUS_LABELS = {"ok": "ok", "not_applicable": "n/a", "unscored": "unscored", "error": "error"}
TONE_COLOURS = {"good": "#2f9e77", "mid": "#e0a33a", "bad": "#d5576a", "neutral": "#7c8aa0"}
ACCENT = "#3b5bdb"


DIRECTION_TEXT = {
    "higher": "higher is better",
    "lower": "lower is better",
    "neither": "descriptive: neither end is better",
}


# --- public API ----------------------------------------------------------------------------------


def render_html(run_dir: Path, summary: RunSummary | None = None) -> str:
    """The whole report as one HTML document; reads the run folder (unless its summary is given)
    and the transcripts it judged."""
    summary = summary or summarize(run_dir)
    judgments = summary.judgments
    transcripts, problems = _load_transcripts(run_dir, summary.manifest)
    rubrics = [_rubric_view(rs, judgments) for rs in summary.rubrics]
    sessions = _session_views(summary, judgments, transcripts, problems)
    return (
        _environment()
        .get_template(PAGE_TEMPLATE)
        .render(
            css=_asset("report.css"),
            js=_asset("report.js"),
            header=_header_view(summary, run_dir, judgments),
            rubrics=rubrics,
            sessions=sessions,
            filters=_filter_view(summary, judgments, sessions),
            session_ids={s.transcript_id: s.dom_id for s in sessions},
            status_labels=STATUS_LABELS,
            statuses=STATUSES,
            arrows=DIRECTION_ARROWS,
            direction_text=DIRECTION_TEXT,
        )
    )


def write_html_report(run_dir: Path, summary: RunSummary | None = None) -> Path:
    """Write <run>/report.html atomically, so a reader never opens half a report."""
    path = run_dir / HTML_FILE
    write_atomic(path, render_html(run_dir, summary))
    return path


# --- formatting ----------------------------------------------------------------------------------


def _number(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _cost(manifest: RunManifest) -> str:
    if manifest.cost_usd is not None:
        return f"${manifest.cost_usd:.4f}" if manifest.cost_usd < 1 else f"${manifest.cost_usd:,.2f}"
    return "free (rules judge)" if manifest.judge.get("judge") == "rules" else "unknown"


def _verdict_text(criterion: Criterion, verdict: str | float | None) -> str:
    """A verdict as a reader says it: yes/no for binary scales, the label or the number otherwise."""
    if criterion.scale.type == "binary" and verdict in (0, 1):
        return "yes" if verdict == 1 else "no"
    if isinstance(verdict, float):
        return f"{verdict:.2f}"
    return str(verdict)


def _value_key(value: str) -> tuple[bool, float, str]:
    """Numbers in numeric order first, then labels alphabetically."""
    try:
        return (False, float(value), value)
    except ValueError:
        return (True, 0.0, value)


# --- colour by how good a score is --------------------------------------------------------------


def _score_range(criterion: Criterion, top: float | None) -> tuple[float, float] | None:
    """Worst-to-best span of the scale; a count without a maximum uses the largest count observed."""
    scale = criterion.scale
    if isinstance(scale, CategoricalScale):
        values = [c.value for c in scale.categories if c.value is not None]
        return (min(values), max(values)) if values else None
    if scale.type == "binary":
        return (0.0, 1.0)
    if scale.type == "likert":
        return (float(scale.min), float(scale.max))
    high = scale.max if scale.max is not None else top
    return (0.0, float(high)) if high else None


def _goodness(criterion: Criterion, value: float, top: float | None) -> float | None:
    """0 worst .. 1 best on the criterion's scale in its `better` direction; only ever used for colour."""
    span = _score_range(criterion, top)
    if span is None or span[1] == span[0]:
        return None
    share = (value - span[0]) / (span[1] - span[0])
    return {"higher": share, "lower": 1 - share}.get(criterion.better)


def _tone_of(goodness: float | None) -> str:
    if goodness is None:
        return "neutral"
    return "good" if goodness >= 2 / 3 else "bad" if goodness <= 1 / 3 else "mid"


def _tone(criterion: Criterion, score: float | None, top: float | None) -> str:
    """A turn meets `pass_at` or not; without one, the score's place on the scale decides."""
    if score is None:
        return "neutral"
    if criterion.pass_at is not None:
        return "good" if criterion.meets(score) else "bad"
    return _tone_of(_goodness(criterion, score, top))


# --- charts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Bar:
    x: float
    label: str
    count: int
    tone: str


def _numeric_axis(criterion: Criterion) -> bool:
    """Bars stand at their scores, so a mean can be drawn among them; labels without values cannot."""
    scale = criterion.scale
    return not isinstance(scale, CategoricalScale) or all(c.value is not None for c in scale.categories)


MAX_COUNT_BARS = 40


def _bars(criterion: Criterion, cell: Cell) -> list[_Bar]:
    """Every level the scale allows (zero bars included, so shape is comparable), in scale order; a count
    beyond MAX_COUNT_BARS shows the levels observed only, so one outlandish count cannot blow the chart up."""
    scale, verdicts, top = criterion.scale, cell.verdicts, max(cell.scores, default=None)
    if isinstance(scale, CategoricalScale):
        numeric = _numeric_axis(criterion)
        return [
            _Bar(
                c.value if numeric and c.value is not None else i,
                c.label,
                verdicts.get(c.label, 0),
                _tone(criterion, c.value, top),
            )
            for i, c in enumerate(scale.categories)
        ]
    if scale.type == "binary":
        return [_Bar(v, _verdict_text(criterion, v), verdicts.get(str(v), 0), _tone(criterion, v, top)) for v in (0, 1)]
    if scale.type == "likert":
        levels = list(range(scale.min, scale.max + 1))
    else:
        observed = sorted({int(float(v)) for v in verdicts})
        high = max([*observed, scale.max or 0])
        levels = list(range(high + 1)) if high <= MAX_COUNT_BARS else observed
    return [_Bar(v, str(v), verdicts.get(str(v), 0), _tone(criterion, v, top)) for v in levels]


def _draw_estimate(strip: Axes, estimate: Estimate | None) -> None:
    """Mean and 95% interval as a dot and whisker above the bars, on the same score axis."""
    strip.set_axis_off()
    strip.set_ylim(-1, 1)
    if estimate is not None:
        strip.plot([estimate.low, estimate.high], [0, 0], color=ACCENT, alpha=0.35, lw=4, solid_capstyle="round")
        strip.plot([estimate.value], [0], marker="o", ms=5, color=ACCENT)


def _chart_svg(criterion: Criterion, cell: Cell, estimate: Estimate | None, salt: str) -> Markup | None:
    """The score distribution as inline SVG, with the mean and its interval where scores are numbers.

    The OO API with the SVG canvas never touches a GUI backend; a per-chart hash salt keeps the clip
    path ids of several inline SVGs distinct and the output byte-for-byte reproducible.
    """
    bars = _bars(criterion, cell)
    if not any(b.count for b in bars):
        return None
    rc = {
        "svg.hashsalt": salt,
        "svg.fonttype": "none",
        "font.size": 8,
        "axes.edgecolor": "#c8cfd9",
        "xtick.color": "#475569",
    }
    with matplotlib.rc_context(rc):
        figure = Figure(figsize=(3.3, 1.6), dpi=72)
        FigureCanvasSVG(figure)
        strip, axes = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 6], "hspace": 0.08})
        xs = [b.x for b in bars]
        gaps = [b - a for a, b in pairwise(xs) if b > a]
        width = 0.68 * min(gaps, default=1.0)
        _draw_estimate(strip, estimate if _numeric_axis(criterion) else None)
        drawn = axes.bar(xs, [b.count for b in bars], width=width, color=[TONE_COLOURS[b.tone] for b in bars], zorder=2)
        axes.bar_label(
            drawn, labels=[str(b.count) if b.count else "" for b in bars], padding=1.5, fontsize=7.5, color="#334155"
        )
        axes.set_xticks(xs, [b.label.replace("$", r"\$") for b in bars])
        axes.set_yticks([])
        axes.set_ylim(0, max(b.count for b in bars) * 1.22)
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


# --- rubric section -----------------------------------------------------------------------------


@dataclass
class _CriterionView:
    rubric_id: str
    criterion: Criterion
    cell: Cell
    scale: str
    estimate: Estimate | None
    chart: Markup | None
    reason: str | None
    pass_text: str | None

    @property
    def key(self) -> str:
        return f"{self.rubric_id}:{self.criterion.id}"


@dataclass
class _TableCell:
    mean: str
    note: str
    tone: str
    title: str


@dataclass
class _RubricView:
    summary: RubricSummary
    criteria: list[_CriterionView]
    rows: list[tuple[str, list[_TableCell]]]


def _estimate(rs: RubricSummary, criterion_id: str) -> Estimate | None:
    """Mean with a 95% interval from resampling whole sessions, since turns of a session are not independent."""
    return cluster_bootstrap_mean({t: cells[criterion_id].scores for t, cells in rs.by_transcript.items()})


def _common_reason(rs: RubricSummary, criterion_id: str, judgments: Sequence[Judgment]) -> str | None:
    reasons = Counter(
        j.unscored_reason or j.error or j.rationale
        for j in judgments
        if j.rubric_id == rs.rubric.id and j.criterion_id == criterion_id and j.status != "ok"
    )
    reasons.pop("", None)
    return reasons.most_common(1)[0][0] if reasons else None


def _pass_text(criterion: Criterion) -> str | None:
    if criterion.pass_at is None:
        return None
    value = int(criterion.pass_at) if float(criterion.pass_at).is_integer() else criterion.pass_at
    return f"{'≥' if criterion.better == 'higher' else '≤'} {value}"


def _rubric_view(rs: RubricSummary, judgments: Sequence[Judgment]) -> _RubricView:
    criteria = []
    for criterion in rs.rubric.criteria:
        cell = rs.overall[criterion.id]
        estimate = _estimate(rs, criterion.id)
        chart = _chart_svg(criterion, cell, estimate, f"{rs.rubric.id}/{criterion.id}")
        criteria.append(
            _CriterionView(
                rs.rubric.id,
                criterion,
                cell,
                scale_summary(criterion),
                estimate,
                chart,
                _common_reason(rs, criterion.id, judgments),
                _pass_text(criterion),
            )
        )
    rows = [(t, [_table_cell(rs, cells[c.id]) for c in rs.rubric.criteria]) for t, cells in rs.by_transcript.items()]
    return _RubricView(rs, criteria, rows)


def _table_cell(rs: RubricSummary, cell: Cell) -> _TableCell:
    counts = ", ".join(f"{cell.counts.get(s, 0)} {STATUS_LABELS[s]}" for s in STATUSES)
    top = max(rs.overall[cell.criterion.id].scores, default=None)
    tone = _tone_of(_goodness(cell.criterion, cell.mean, top)) if cell.mean is not None else "neutral"
    ok = cell.counts.get("ok", 0)
    if ok:
        note = f"n={ok}" + (f" · {_percent(cell.pass_share)}" if cell.pass_share is not None else "")
    else:
        note = ", ".join(f"{n} {STATUS_LABELS[s]}" for s, n in cell.counts.items() if n) or "no items"
    return _TableCell(_number(cell.mean), note, tone, counts)


# --- header ----------------------------------------------------------------------------------------


@dataclass
class _HeaderView:
    manifest: RunManifest
    run_dir: str
    counts: list[tuple[str, int]]
    counted: str
    judge: list[tuple[str, str]]
    cost: str
    elapsed: str
    turns: int
    judged: int


_JUDGE_FIELDS = ("model", "base_url", "temperature", "seed")
_JUDGE_EXTRAS = ("max_tokens", "output", "logprobs")


def _judge_rows(manifest: RunManifest) -> list[tuple[str, str]]:
    """The judge's configuration as recorded (never a key); the rules judge has no model or sampling,
    which shows as a dash rather than a missing row."""
    judge = manifest.judge

    def shown(name: str) -> str:
        return "–" if judge.get(name) is None else str(judge[name])

    rows = [("judge", shown("judge"))]
    rows += [(name, shown(name)) for name in _JUDGE_FIELDS]
    rows += [(name, shown(name)) for name in _JUDGE_EXTRAS if name in judge]
    if judge.get("parameters"):
        rows.append(("parameters", ", ".join(f"{k}={v}" for k, v in judge["parameters"].items())))
    if "checks" in judge:
        rows.append(("rule checks", str(len(judge["checks"]))))
    rows += [("mode", manifest.mode), ("samples", str(manifest.samples))]
    if manifest.samples > 1:
        rows.append(("aggregate", manifest.aggregate))
    return rows


def _header_view(summary: RunSummary, run_dir: Path, judgments: Sequence[Judgment]) -> _HeaderView:
    manifest = summary.manifest
    counted = "items (samples folded)" if manifest.samples > 1 else "judgments"
    turns = len({(j.transcript_id, j.turn_index) for j in judgments})
    return _HeaderView(
        manifest=manifest,
        run_dir=str(run_dir),
        counts=[(s, summary.counts.get(s, 0)) for s in STATUSES],
        counted=counted,
        judge=_judge_rows(manifest),
        cost=_cost(manifest),
        elapsed=_duration(manifest.elapsed_s),
        turns=turns,
        judged=len(judgments),
    )


# --- transcripts and the turn viewer -----------------------------------------------------------


def _candidates(name: str, run_dir: Path) -> list[Path]:
    """Where a recorded transcript file may be now: as recorded (absolute, or relative to the working
    directory) or relative to the project holding results/<run>/."""
    path = Path(name)
    return [path] if path.is_absolute() else [path, run_dir.resolve().parent.parent / path]


def _load_transcripts(run_dir: Path, manifest: RunManifest) -> tuple[dict[str, Transcript], list[str]]:
    """The conversations the run judged, by id, and what could not be read. The run's own snapshot is
    what was judged; only run folders older than snapshots reread the files, where a file moved or
    edited since the run costs the conversation view, never the judgments."""
    snapshot = read_transcript_snapshot(run_dir)
    if snapshot is not None:
        return {t.id: t for t in snapshot}, []
    skipped = {s.path for s in manifest.skipped_files}
    found: dict[str, Transcript] = {}
    problems: list[str] = []
    for name in manifest.transcript_files:
        if name in skipped:
            continue
        path = next((p for p in _candidates(name, run_dir) if p.is_file()), None)
        if path is None:
            problems.append(f"{name}: file not found")
            continue
        try:
            for transcript in read_transcripts(path):
                found.setdefault(transcript.id, transcript)
        except (TranscriptError, OSError) as exc:
            problems.append(str(exc))
    return found, problems


@dataclass
class _EvidenceView:
    quote: str
    found: bool
    where: str | None


@dataclass
class _JudgmentView:
    dom_id: str
    judgment: Judgment
    criterion: Criterion
    rubric_title: str
    verdict: str
    tone: str
    text: str
    evidence: list[_EvidenceView]

    @property
    def score_attr(self) -> str:
        return str(self.judgment.verdict) if self.judgment.status == "ok" else ""


@dataclass
class _TurnView:
    dom_id: str
    index: int
    speaker: str
    label: str
    text: Markup | None
    groups: list[tuple[str, list[_JudgmentView]]] = field(default_factory=list)


@dataclass
class _SessionView:
    dom_id: str
    transcript_id: str
    source: str | None
    metadata: dict[str, str]
    counts: list[tuple[str, int]]
    notice: str | None
    turns: list[_TurnView]


_TYPOGRAPHIC = {
    **dict.fromkeys("'‘’", "['‘’]"),
    **dict.fromkeys('"“”', '["“”]'),
    **dict.fromkeys("-–—", "[-–—]"),
}


def _quote_pattern(quote: str) -> re.Pattern[str] | None:
    """The quote as the judge checked it: ignoring case, runs of spacing, typographic quotes and dashes."""
    text = quote.strip().replace("…", "...")
    if not text:
        return None
    parts = []
    for token in re.findall(r"\s+|\.\.\.|.", text, flags=re.DOTALL):
        if token.isspace():
            parts.append(r"\s+")
        elif token == "...":
            parts.append(r"(?:\.\.\.|…)")
        else:
            parts.append(_TYPOGRAPHIC.get(token, re.escape(token)))
    return re.compile("".join(parts), re.IGNORECASE)


def _search_order(transcript: Transcript, index: int) -> list[int]:
    """The rated turn first, then the context before it (nearest first), then what follows."""
    return [index, *range(index - 1, -1, -1), *range(index + 1, len(transcript.turns))]


Span = tuple[int, int, list[str]]


def _locate(quote: str, transcript: Transcript, index: int) -> tuple[int, list[tuple[int, int]]] | None:
    pattern = _quote_pattern(quote)
    if pattern is None:
        return None
    for turn_index in _search_order(transcript, index):
        matches = [m.span() for m in pattern.finditer(transcript.turns[turn_index].text)]
        if matches:
            return turn_index, matches
    return None


def _merge(spans: list[Span]) -> list[Span]:
    """Overlapping highlights become one <mark> naming every judgment that quotes it."""
    merged: list[Span] = []
    for start, end, refs in sorted(spans, key=lambda s: (s[0], -s[1])):
        if merged and start < merged[-1][1]:
            last = merged[-1]
            merged[-1] = (last[0], max(last[1], end), last[2] + [r for r in refs if r not in last[2]])
        else:
            merged.append((start, end, list(refs)))
    return merged


def _highlight(text: str, spans: list[Span]) -> Markup:
    """Escape the turn text piece by piece and wrap the evidence in <mark>: the only raw HTML in a turn is
    the <mark> tags written here, so no transcript text can ever become markup."""
    out, position = [], 0
    for start, end, refs in _merge(spans):
        out.append(html.escape(text[position:start]))
        refs_attr = html.escape(" ".join(refs))
        out.append(f'<mark class="evidence" data-judgments="{refs_attr}">{html.escape(text[start:end])}</mark>')
        position = end
    out.append(html.escape(text[position:]))
    return Markup("".join(out))


def _judgment_text(judgment: Judgment) -> str:
    if judgment.status == "unscored":
        return " — ".join(t for t in (judgment.unscored_reason or "", judgment.rationale) if t)
    if judgment.status == "error":
        return judgment.error or judgment.rationale
    return judgment.rationale


class _SessionBuilder:
    """Lays one session out as turns with their judgments beside them, collecting evidence highlights."""

    def __init__(self, number: int, summary: RunSummary, transcript: Transcript | None) -> None:
        self.prefix = f"s{number}"
        self.transcript = transcript
        self.rubrics = {rs.rubric.id: rs for rs in summary.rubrics}
        self.spans: dict[int, list[Span]] = defaultdict(list)
        self.count = 0

    def judgment_view(self, judgment: Judgment) -> _JudgmentView:
        rs = self.rubrics[judgment.rubric_id]
        criterion = rs.rubric.criterion(judgment.criterion_id)
        self.count += 1
        dom_id = f"{self.prefix}-t{judgment.turn_index}-j{self.count}"
        top = max(rs.overall[criterion.id].scores, default=None)
        verdict = _verdict_text(criterion, judgment.verdict) if judgment.status == "ok" else ""
        evidence = [self._evidence(e.quote, e.found, judgment.turn_index, dom_id) for e in judgment.evidence]
        return _JudgmentView(
            dom_id,
            judgment,
            criterion,
            rs.rubric.title,
            verdict,
            _tone(criterion, judgment.score, top),
            _judgment_text(judgment),
            evidence,
        )

    def _evidence(self, quote: str, found: bool, index: int, dom_id: str) -> _EvidenceView:
        """Highlight a quote where it is, usually the rated turn, else the context the judge saw."""
        transcript = self.transcript
        located = _locate(quote, transcript, index) if found and transcript is not None else None
        if transcript is None or located is None:
            return _EvidenceView(quote, found, None)
        turn_index, matches = located
        self.spans[turn_index] += [(start, end, [dom_id]) for start, end in matches]
        where = None if turn_index == index else f"in turn {turn_index} ({transcript.turns[turn_index].label})"
        return _EvidenceView(quote, found, where)

    def grouped(self, judgments: list[Judgment]) -> list[tuple[str, list[_JudgmentView]]]:
        """A turn's judgments under their rubric's title, in the order given."""
        groups: dict[str, tuple[str, list[_JudgmentView]]] = {}
        for judgment in judgments:
            view = self.judgment_view(judgment)
            groups.setdefault(judgment.rubric_id, (view.rubric_title, []))[1].append(view)
        return list(groups.values())

    def turn_id(self, index: int) -> str:
        return f"{self.prefix}-t{index}"


def _order(summary: RunSummary) -> dict[tuple[str, str], int]:
    """Judgments beside a turn follow the report's rubric and criterion order."""
    keys = [(rs.rubric.id, c.id) for rs in summary.rubrics for c in rs.rubric.criteria]
    return {key: i for i, key in enumerate(keys)}


def _matches_judgments(transcript: Transcript, by_turn: dict[int, list[Judgment]]) -> bool:
    """A transcript edited since the run no longer has therapist turns where the judgments say."""
    return all(i < len(transcript.turns) and transcript.turns[i].speaker == "therapist" for i in by_turn)


def _session_views(
    summary: RunSummary, judgments: list[Judgment], transcripts: dict[str, Transcript], problems: list[str]
) -> list[_SessionView]:
    order = _order(summary)
    by_session: dict[str, dict[int, list[Judgment]]] = {t: defaultdict(list) for t in summary.manifest.transcripts}
    for judgment in sorted(judgments, key=lambda j: (order.get((j.rubric_id, j.criterion_id), len(order)), j.sample)):
        if (judgment.rubric_id, judgment.criterion_id) in order:
            by_session.setdefault(judgment.transcript_id, defaultdict(list))[judgment.turn_index].append(judgment)
    views = []
    for number, (transcript_id, by_turn) in enumerate(by_session.items()):
        transcript = transcripts.get(transcript_id)
        notice = None
        if transcript is None:
            detail = "; ".join(problems) if problems else "no file read holds this transcript id"
            notice = f"The transcript could not be read ({detail}): its judgments are shown without the conversation."
        elif not _matches_judgments(transcript, by_turn):
            notice = (
                f"{transcript.source} changed since the run (judged turns are no longer therapist turns): "
                "its judgments are shown without the conversation."
            )
            transcript = None
        views.append(_session_view(number, summary, transcript_id, transcript, by_turn, notice))
    return views


def _session_view(
    number: int,
    summary: RunSummary,
    transcript_id: str,
    transcript: Transcript | None,
    by_turn: dict[int, list[Judgment]],
    notice: str | None,
) -> _SessionView:
    builder = _SessionBuilder(number, summary, transcript)
    counts = Counter(j.status for js in by_turn.values() for j in js)
    grouped = {index: builder.grouped(js) for index, js in sorted(by_turn.items())}
    if transcript is None:
        turns = [_TurnView(builder.turn_id(i), i, "therapist", "Therapist", None, g) for i, g in grouped.items()]
    else:
        turns = [
            _TurnView(
                builder.turn_id(t.index),
                t.index,
                t.speaker,
                t.label,
                _highlight(t.text, builder.spans[t.index]),
                grouped.get(t.index, []),
            )
            for t in transcript.turns
        ]
    metadata = {k: str(v) for k, v in summary.manifest.transcript_metadata.get(transcript_id, {}).items()}
    return _SessionView(
        f"s{number}",
        transcript_id,
        transcript.source if transcript else None,
        metadata,
        [(s, counts.get(s, 0)) for s in STATUSES],
        notice,
        turns,
    )


# --- filters -------------------------------------------------------------------------------------


@dataclass
class _FilterView:
    criteria: list[tuple[str, list[tuple[str, str]]]]
    scores: list[str]
    statuses: list[tuple[str, int]]
    sessions: list[tuple[str, str]]
    total: int


def _filter_view(summary: RunSummary, judgments: list[Judgment], sessions: list[_SessionView]) -> _FilterView:
    """Options list only what the run holds, so every choice shows something."""
    criteria = [
        (rs.rubric.title, [(f"{rs.rubric.id}:{c.id}", f"{c.name} ({c.id})") for c in rs.rubric.criteria])
        for rs in summary.rubrics
    ]
    scores = sorted({str(j.verdict) for j in judgments if j.status == "ok"}, key=_value_key)
    statuses = Counter(j.status for j in judgments)
    return _FilterView(
        criteria,
        scores,
        [(s, statuses.get(s, 0)) for s in STATUSES],
        [(s.dom_id, s.transcript_id) for s in sessions],
        len(judgments),
    )


def _environment() -> Environment:
    """Autoescape on: every value from a transcript, rubric or judge is escaped unless built as Markup here."""
    return Environment(
        loader=PackageLoader("evaluator", "views/templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _asset(name: str) -> Markup:
    """The page's CSS and JS, kept as real files and inlined at render so the page stays self-contained."""
    return Markup((resources.files("evaluator") / "views" / "templates" / name).read_text(encoding="utf-8"))
