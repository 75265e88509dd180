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
from itertools import pairwise
from pathlib import Path

import matplotlib
from jinja2 import Environment, StrictUndefined
from markupsafe import Markup
from matplotlib.axes import Axes
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

from evaluator.models import STATUSES, CategoricalScale, Criterion, Judgment, RunManifest, Transcript
from evaluator.report import DIRECTION_ARROWS, Cell, RubricSummary, RunSummary, summarize
from evaluator.rubrics import scale_summary
from evaluator.stats import Estimate, cluster_bootstrap_mean
from evaluator.store import read_transcript_snapshot, write_atomic
from evaluator.transcripts import TranscriptError, read_transcripts

HTML_FILE = "report.html"

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
        .from_string(_PAGE)
        .render(
            css=Markup(_CSS),
            js=Markup(_JS),
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


def _bars(criterion: Criterion, cell: Cell) -> list[_Bar]:
    """Every level the scale allows (zero bars included, so shape is comparable), in scale order."""
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
        observed = [int(float(v)) for v in verdicts]
        levels = list(range(max([*observed, scale.max or 0]) + 1))
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
    return Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


# --- page ----------------------------------------------------------------------------------------

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<title>Run {{ header.manifest.run_id }} · therapist-evaluator</title>
<style>{{ css }}</style>
</head>
<body>
{% set m = header.manifest %}
<header class="top">
  <div class="wrap">
    <div class="brand">therapist-evaluator <span>run report</span></div>
    <h1 id="run-id">{{ m.run_id }}</h1>
    <p class="meta">
      created {{ m.created_at }}{% if m.finished_at %} · finished {{ m.finished_at }}{% endif %}
      · evaluator {{ m.package_version }}{% if m.command %} · <code>{{ m.command | join(" ") }}</code>{% endif %}
    </p>
    <nav>
      <a href="#overview">Overview</a>
      {% for r in rubrics %}<a href="#rubric-{{ r.summary.rubric.id }}">{{ r.summary.rubric.id }}</a>{% endfor %}
      <a href="#conversations">Conversations</a>
    </nav>
  </div>
</header>
<main class="wrap">
{% if not m.complete %}
  <div class="notice warn" id="incomplete-notice" role="alert">
    <strong>Incomplete run.</strong>
    {{ header.judged }} of {{ m.items_planned }} planned judgments are done{% if m.stopped %}; stopped: {{ m.stopped }}{% endif %}.
    Figures below cover only what was judged. Continue it with <code>evaluator run --resume {{ header.run_dir }}</code>.
  </div>
{% endif %}
{% if m.skipped_files %}
  <div class="notice bad" id="skipped-notice">
    <strong>{{ m.skipped_files | length }} file{{ "s" if m.skipped_files | length > 1 }} skipped</strong> (not judged):
    <ul>{% for s in m.skipped_files %}<li><code>{{ s.path }}</code>: {{ s.error }}</li>{% endfor %}</ul>
  </div>
{% endif %}
<section id="overview" class="overview">
  <div class="tiles">
    <div class="tile wide">
      <div class="tile-label">{{ header.counted }} by status</div>
      <div class="status-counts">
      {% for status, n in header.counts %}
        <span class="count-pill st-{{ status }}{{ ' zero' if not n }}" data-count-status="{{ status }}"><b>{{ n }}</b> {{ status_labels[status] }}</span>
      {% endfor %}
      </div>
      <div class="tile-sub">{{ m.items_planned }} items planned · {{ m.transcripts | length }} transcript{{ "s" if m.transcripts | length != 1 }} · {{ header.turns }} therapist turns judged</div>
    </div>
    <div class="tile">
      <div class="tile-label">judge</div>
      <div class="tile-value">{{ m.judge.get("model") or ("offline rules" if m.judge.get("judge") == "rules" else m.judge.get("judge", "?")) }}</div>
      <div class="tile-sub">{{ m.judge.get("judge", "?") }} · {{ m.mode }} · {{ m.samples }} sample{{ "s" if m.samples != 1 }}</div>
    </div>
    <div class="tile">
      <div class="tile-label">tokens</div>
      <div class="tile-value">{{ "{:,}".format(m.usage.prompt_tokens + m.usage.completion_tokens) }}</div>
      <div class="tile-sub">{{ "{:,}".format(m.usage.prompt_tokens) }} prompt ({{ "{:,}".format(m.usage.cached_tokens) }} cached) · {{ "{:,}".format(m.usage.completion_tokens) }} completion</div>
    </div>
    <div class="tile">
      <div class="tile-label">cost</div>
      <div class="tile-value" id="cost">{{ header.cost }}</div>
      <div class="tile-sub">elapsed {{ header.elapsed }}</div>
    </div>
  </div>
  <div class="two-col">
    <div class="panel">
      <h2 class="panel-title">Rubrics</h2>
      <table class="plain">
        <thead><tr><th>rubric</th><th>version</th><th>hash</th><th>criteria</th></tr></thead>
        <tbody>
        {% for r in rubrics %}{% set rb = r.summary.rubric %}
          <tr><td><a href="#rubric-{{ rb.id }}">{{ rb.title }}</a> <code class="muted">{{ rb.id }}</code></td>
              <td>v{{ rb.version }}</td><td><code>{{ m.rubrics[rb.id].get("hash", "") }}</code></td><td>{{ rb.criteria | length }}</td></tr>
        {% endfor %}
        </tbody>
      </table>
    </div>
    <div class="panel">
      <h2 class="panel-title">Judge configuration</h2>
      <dl class="kv">
      {% for name, value in header.judge %}<dt>{{ name }}</dt><dd>{{ value }}</dd>{% endfor %}
      </dl>
    </div>
  </div>
</section>

{% for r in rubrics %}{% set rb = r.summary.rubric %}
<details class="rubric" id="rubric-{{ rb.id }}" open>
  <summary>
    <h2>{{ rb.title }}</h2>
    <span class="rubric-meta"><code>{{ rb.id }}</code> v{{ rb.version }} · {{ rb.criteria | length }} criteria</span>
  </summary>
  {% if rb.description %}<p class="desc">{{ rb.description }}</p>{% endif %}
  <div class="cards">
  {% for cv in r.criteria %}{% set c = cv.criterion %}
    <article class="card" data-card="{{ cv.key }}">
      <header>
        <span class="dir" title="{{ direction_text[c.better] }}">{{ arrows[c.better] }}</span>
        <div><h3>{{ c.name }}</h3><code>{{ c.id }}</code></div>
      </header>
      <div class="scale">{{ cv.scale }} · {{ direction_text[c.better] }}{% if cv.pass_text %} · meets at {{ cv.pass_text }}{% endif %}</div>
      {% if cv.chart %}
      <figure class="chart" role="img" aria-label="distribution of {{ c.id }} scores">{{ cv.chart }}</figure>
      {% else %}
      <div class="nochart">No scored items{% if cv.reason %}<span>{{ cv.reason }}</span>{% endif %}</div>
      {% endif %}
      <dl class="stats">
        <dt><i class="swatch" title="the dot and whisker above the bars"></i>mean</dt>
        <dd class="mean">{% if cv.estimate %}<b>{{ "%.2f" | format(cv.estimate.value) }}</b>
          <span class="ci" title="95% interval, whole sessions resampled{{ ' (one session: its turns resampled, indicative only)' if cv.estimate.sessions == 1 }}">[{{ "%.2f" | format(cv.estimate.low) }}, {{ "%.2f" | format(cv.estimate.high) }}]</span>
          <span class="n">{{ cv.estimate.n }} turns · {{ cv.estimate.sessions }} session{{ "s" if cv.estimate.sessions != 1 }}</span>{% else %}–{% endif %}</dd>
        {% if cv.pass_text %}
        <dt>meets {{ cv.pass_text }}</dt><dd class="share">{{ "–" if cv.cell.pass_share is none else "{:.0%}".format(cv.cell.pass_share) }}</dd>
        {% endif %}
      </dl>
      <div class="counts">
      {% for status in statuses %}{% set n = cv.cell.counts.get(status, 0) %}
        <span class="count-pill small st-{{ status }}{{ ' zero' if not n }}" data-count="{{ status }}"><b>{{ n }}</b> {{ status_labels[status] }}</span>
      {% endfor %}
      </div>
    </article>
  {% endfor %}
  </div>
  <h3 class="sub">Per transcript <span>mean · n scored{% if rb.criteria | selectattr("pass_at", "ne", none) | list %} · share meeting{% endif %}</span></h3>
  <div class="table-scroll">
  <table class="by-transcript" data-rubric="{{ rb.id }}">
    <thead><tr><th>transcript</th>
    {% for c in rb.criteria %}<th title="{{ c.id }}: {{ direction_text[c.better] }}"><span class="dir">{{ arrows[c.better] }}</span> {{ c.name }}</th>{% endfor %}
    </tr></thead>
    <tbody>
    {% for tid, cells in r.rows %}
      <tr><th scope="row"><a href="#{{ session_ids.get(tid, 'conversations') }}">{{ tid }}</a></th>
      {% for cell in cells %}
        <td title="{{ cell.title }}"><span class="tmean tone-{{ cell.tone }}">{{ cell.mean }}</span><span class="tn">{{ cell.note }}</span></td>
      {% endfor %}
      </tr>
    {% endfor %}
    </tbody>
  </table>
  </div>
</details>
{% endfor %}

<section id="conversations">
  <h2 class="section-title">Conversations <span>every therapist turn with its judgments; evidence quotes are highlighted</span></h2>
  <form class="filters" id="filters" onsubmit="return false">
    <label>Criterion
      <select id="filter-criterion">
        <option value="">all criteria</option>
        {% for title, options in filters.criteria %}
        <optgroup label="{{ title }}">{% for value, label in options %}<option value="{{ value }}">{{ label }}</option>{% endfor %}</optgroup>
        {% endfor %}
      </select>
    </label>
    <label>Score
      <select id="filter-score">
        <option value="">any score</option>
        {% for value in filters.scores %}<option value="{{ value }}">{{ value }}</option>{% endfor %}
      </select>
    </label>
    <label>Status
      <select id="filter-status">
        <option value="">any status</option>
        {% for status, n in filters.statuses %}<option value="{{ status }}">{{ status_labels[status] }} ({{ n }})</option>{% endfor %}
      </select>
    </label>
    <label>Session
      <select id="filter-session">
        <option value="">all sessions</option>
        {% for value, label in filters.sessions %}<option value="{{ value }}">{{ label }}</option>{% endfor %}
      </select>
    </label>
    <label class="check"><input type="checkbox" id="filter-only"> matching turns only</label>
    <button type="button" id="filter-reset">Reset</button>
    <output id="filter-count">{{ filters.total }} of {{ filters.total }} judgments</output>
  </form>
  {% for s in sessions %}
  <section class="session" id="{{ s.dom_id }}" data-transcript="{{ s.transcript_id }}">
    <header class="session-head">
      <h3>{{ s.transcript_id }}</h3>
      {% if s.source %}<code class="muted">{{ s.source }}</code>{% endif %}
      {% for k, v in s.metadata.items() %}<span class="chip">{{ k }}: {{ v }}</span>{% endfor %}
      <span class="session-counts">{% for status, n in s.counts %}<span class="count-pill small st-{{ status }}{{ ' zero' if not n }}"><b>{{ n }}</b> {{ status_labels[status] }}</span>{% endfor %}</span>
    </header>
    {% if s.notice %}<div class="notice warn missing-transcript">{{ s.notice }}</div>{% endif %}
    {% for t in s.turns %}
    <div class="turn {{ t.speaker }}" id="{{ t.dom_id }}" data-turn="{{ t.index }}">
      <a class="idx" href="#{{ t.dom_id }}" title="turn {{ t.index }}">{{ t.index }}</a>
      <div class="bubble">
        <div class="who">{{ t.label }}</div>
        {% if t.text is not none %}<div class="text">{{ t.text }}</div>{% else %}<div class="text unavailable">(turn text unavailable)</div>{% endif %}
      </div>
      {% if t.groups %}
      <div class="judgments">
        {% for title, views in t.groups %}
        <div class="jgroup"><div class="jgroup-title">{{ title }}</div>
        {% for v in views %}{% set j = v.judgment %}
          <div class="judgment j-{{ j.status }}{{ ' compact' if j.status in ('not_applicable', 'unscored') }}" id="{{ v.dom_id }}" data-rubric="{{ j.rubric_id }}" data-criterion="{{ j.criterion_id }}" data-status="{{ j.status }}" data-score="{{ v.score_attr }}" data-key="{{ j.key }}">
            <span class="badge st-{{ j.status }}">{{ status_labels[j.status] }}</span>
            <div class="jbody">
              <p class="jline" title="{{ j.criterion_id }}: {{ v.criterion.question }}"><span class="jname">{{ v.criterion.name }}</span>{% if header.manifest.samples > 1 %} <span class="muted">· sample {{ j.sample }}</span>{% endif %}
              {% if v.text %}<span class="rationale">{{ v.text }}</span>{% endif %}</p>
              {% if v.evidence %}
              <ul class="quotes">
              {% for e in v.evidence %}
                {% if e.found %}<li class="quote found">“{{ e.quote }}”{% if e.where %} <span class="where">{{ e.where }}</span>{% endif %}</li>
                {% else %}<li class="quote not-found" title="quote not found in transcript">⚠ “{{ e.quote }}” <span class="nf">not found in transcript</span></li>{% endif %}
              {% endfor %}
              </ul>
              {% endif %}
            </div>
            {% if j.status == "ok" %}<span class="score tone-{{ v.tone }}" title="score {{ j.score }}">{{ v.verdict }}</span>{% endif %}
          </div>
        {% endfor %}
        </div>
        {% endfor %}
        <div class="nomatch">no matching judgment</div>
      </div>
      {% endif %}
    </div>
    {% endfor %}
  </section>
  {% endfor %}
</section>
</main>
<footer class="wrap foot">Generated by therapist-evaluator {{ m.package_version }} from <code>{{ header.run_dir }}</code>. Self-contained: no network needed.</footer>
<script>{{ js }}</script>
</body>
</html>
"""

_CSS = """
:root {
  --ink: #1b2330; --muted: #64708a; --line: #e3e7ee; --bg: #f5f6f9; --card: #fff;
  --accent: #3b5bdb; --accent-soft: #e8edff;
  --good: #1f8a63; --good-bg: #dcf3e8; --mid: #a96b0c; --mid-bg: #fcefd5; --bad: #c23a50; --bad-bg: #fbe3e7;
  --neutral: #566175; --neutral-bg: #e9edf3;
  --ok: #2f56c9; --ok-bg: #e3eaff; --na: #6b7486; --na-bg: #eceff4;
  --unscored: #9a6a06; --unscored-bg: #fdf1d6; --error: #b4232f; --error-bg: #fde2e4;
  --sans: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "Liberation Sans", "DejaVu Sans", Arial, sans-serif;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", "DejaVu Sans Mono", monospace;
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
html { scroll-padding-top: 72px; }
body { margin: 0; font: 14px/1.5 var(--sans); color: var(--ink); background: var(--bg); -webkit-font-smoothing: antialiased; }
code { font: 12px var(--mono); }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
.muted { color: var(--muted); }
.wrap { max-width: 1240px; margin: 0 auto; padding: 0 20px; }
.top { background: #141b2d; color: #e8ecf5; padding: 18px 0 0; }
.brand { font-size: 12px; letter-spacing: .08em; text-transform: uppercase; color: #9fb0d8; font-weight: 600; }
.brand span { color: #6e7da3; font-weight: 500; }
.top h1 { margin: 2px 0 2px; font: 600 26px/1.25 var(--mono); letter-spacing: -.01em; }
.top .meta { margin: 0; color: #a8b3cc; font-size: 12.5px; }
.top .meta code { color: #cfd7ea; background: rgba(255,255,255,.07); padding: 1px 6px; border-radius: 4px; }
.top nav { display: flex; gap: 2px; margin-top: 14px; flex-wrap: wrap; }
.top nav a { color: #cdd6ee; padding: 8px 12px; border-radius: 8px 8px 0 0; font-size: 13px; }
.top nav a:hover { background: rgba(255,255,255,.08); text-decoration: none; }
main.wrap { padding-top: 20px; }
.notice { border-radius: 10px; padding: 10px 14px; margin: 0 0 14px; border: 1px solid; font-size: 13.5px; }
.notice ul { margin: 6px 0 0; padding-left: 20px; }
.notice.warn { background: var(--unscored-bg); border-color: #f0d18c; color: #6b4a05; }
.notice.bad { background: var(--error-bg); border-color: #f3b3ba; color: #7d1822; }
.tiles { display: grid; grid-template-columns: 2fr 1fr 1fr 1fr; gap: 12px; }
.tile, .panel, .card { background: var(--card); border: 1px solid var(--line); border-radius: 12px; box-shadow: 0 1px 2px rgba(20,30,60,.04); }
.tile { padding: 12px 16px; }
.tile-label, .panel-title { font-size: 11px; text-transform: uppercase; letter-spacing: .07em; color: var(--muted); font-weight: 600; margin: 0 0 4px; }
.tile-value { font-size: 20px; font-weight: 650; overflow-wrap: anywhere; }
.tile-sub { font-size: 12px; color: var(--muted); margin-top: 4px; }
.status-counts { display: flex; gap: 8px; flex-wrap: wrap; margin: 2px 0; }
.count-pill { display: inline-flex; gap: 5px; align-items: baseline; padding: 3px 10px; border-radius: 999px; font-size: 13px; }
.count-pill b { font-size: 16px; font-weight: 700; }
.count-pill.small { padding: 1px 8px; font-size: 11.5px; }
.count-pill.small b { font-size: 12px; }
.count-pill.zero { opacity: .45; }
.st-ok { color: var(--ok); background: var(--ok-bg); }
.st-not_applicable { color: var(--na); background: var(--na-bg); }
.st-unscored { color: var(--unscored); background: var(--unscored-bg); }
.st-error { color: var(--error); background: var(--error-bg); }
.two-col { display: grid; grid-template-columns: 3fr 2fr; gap: 12px; margin-top: 12px; }
.panel { padding: 12px 16px; }
table { border-collapse: collapse; width: 100%; }
table.plain td, table.plain th { text-align: left; padding: 5px 8px 5px 0; border-bottom: 1px solid var(--line); font-size: 13px; }
table.plain th { font-weight: 600; color: var(--muted); font-size: 12px; }
table.plain tr:last-child td { border-bottom: 0; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 3px 16px; margin: 0; font-size: 13px; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; font-family: var(--mono); font-size: 12.5px; overflow-wrap: anywhere; }
details.rubric { margin-top: 26px; }
details.rubric > summary { list-style: none; cursor: pointer; display: flex; align-items: baseline; gap: 12px; padding: 6px 0 10px; border-bottom: 2px solid var(--line); }
details.rubric > summary::-webkit-details-marker { display: none; }
details.rubric > summary::before { content: "▾"; color: var(--muted); font-size: 14px; width: 12px; }
details.rubric:not([open]) > summary::before { content: "▸"; }
details.rubric h2 { margin: 0; font-size: 19px; font-weight: 650; }
.rubric-meta { color: var(--muted); font-size: 12.5px; }
.desc { color: #3d4759; max-width: 980px; margin: 10px 0 12px; font-size: 13.5px; }
.cards { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 12px; }
.card { padding: 12px 14px 10px; display: flex; flex-direction: column; gap: 6px; }
.card header { display: flex; gap: 8px; align-items: flex-start; }
.card h3 { margin: 0; font-size: 14px; line-height: 1.3; font-weight: 620; }
.card header code { color: var(--muted); font-size: 11px; }
.dir { display: inline-grid; place-items: center; min-width: 20px; height: 20px; border-radius: 6px; background: var(--accent-soft); color: var(--accent); font-weight: 700; font-size: 12px; }
.scale { font-size: 11.5px; color: var(--muted); }
.chart { margin: 0; }
.chart svg { width: 100%; height: auto; display: block; }
.chart svg text { font-family: var(--sans) !important; }
.nochart { height: 86px; display: grid; place-content: center; text-align: center; background: repeating-linear-gradient(135deg, #f7f8fb, #f7f8fb 6px, #f1f3f7 6px, #f1f3f7 12px); border-radius: 8px; color: var(--muted); font-size: 12.5px; font-weight: 600; }
.nochart span { display: block; font-weight: 400; font-size: 11.5px; padding: 0 10px; }
dl.stats { display: grid; grid-template-columns: max-content 1fr; gap: 2px 10px; margin: 0; font-size: 12.5px; align-items: baseline; }
dl.stats dt { color: var(--muted); }
.swatch { display: inline-block; width: 8px; height: 8px; border-radius: 50%; background: var(--accent); margin-right: 5px; box-shadow: 0 0 0 3px var(--accent-soft); }
dl.stats dd { margin: 0; }
dl.stats b { font-size: 16px; }
.ci { color: var(--accent); font-family: var(--mono); font-size: 11.5px; }
.n { display: block; color: var(--muted); font-size: 11px; }
.share { font-weight: 700; font-size: 15px; }
.counts { display: flex; gap: 4px; flex-wrap: wrap; margin-top: auto; padding-top: 4px; }
h3.sub { font-size: 13px; margin: 18px 0 6px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); }
h3.sub span { text-transform: none; letter-spacing: 0; font-weight: 400; }
.table-scroll { overflow-x: auto; background: var(--card); border: 1px solid var(--line); border-radius: 12px; }
table.by-transcript th, table.by-transcript td { padding: 7px 10px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; font-size: 12.5px; }
table.by-transcript thead th { font-size: 11.5px; font-weight: 600; color: #4a5468; background: #fafbfd; white-space: normal; vertical-align: bottom; min-width: 96px; line-height: 1.3; }
table.by-transcript thead th .dir { min-width: 16px; height: 16px; font-size: 10px; }
table.by-transcript th[scope=row], table.by-transcript thead th:first-child { text-align: left; font: 500 12.5px var(--mono); }
table.by-transcript tr:last-child > * { border-bottom: 0; }
.tmean { display: inline-block; min-width: 44px; text-align: center; border-radius: 6px; padding: 1px 6px; font-weight: 650; font-variant-numeric: tabular-nums; }
.tn { display: block; color: var(--muted); font-size: 11px; }
.tone-good { color: var(--good); background: var(--good-bg); }
.tone-mid { color: var(--mid); background: var(--mid-bg); }
.tone-bad { color: var(--bad); background: var(--bad-bg); }
.tone-neutral { color: var(--neutral); background: var(--neutral-bg); }
.section-title { font-size: 19px; margin: 34px 0 10px; }
.section-title span { font-size: 13px; font-weight: 400; color: var(--muted); margin-left: 8px; }
.filters { position: sticky; top: 0; z-index: 20; display: flex; flex-wrap: wrap; gap: 10px 14px; align-items: flex-end; padding: 10px 14px; margin: 0 -14px 14px; background: rgba(245,246,249,.94); backdrop-filter: blur(6px); border-bottom: 1px solid var(--line); }
.filters label { display: flex; flex-direction: column; font-size: 11px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); font-weight: 600; gap: 2px; }
.filters label.check { flex-direction: row; align-items: center; gap: 6px; text-transform: none; letter-spacing: 0; font-size: 13px; color: var(--ink); font-weight: 500; padding-bottom: 6px; }
.filters select { font: 13px var(--sans); color: var(--ink); padding: 5px 8px; border: 1px solid #cfd5e1; border-radius: 8px; background: #fff; max-width: 300px; }
.filters button { font: 600 13px var(--sans); padding: 6px 12px; border-radius: 8px; border: 1px solid #cfd5e1; background: #fff; cursor: pointer; color: var(--ink); }
.filters button:hover { border-color: var(--accent); color: var(--accent); }
.filters output { margin-left: auto; font-size: 12.5px; color: var(--muted); padding-bottom: 6px; }
.session { background: var(--card); border: 1px solid var(--line); border-radius: 14px; padding: 4px 16px 12px; margin-bottom: 18px; }
.session-head { display: flex; align-items: center; gap: 10px; flex-wrap: wrap; padding: 10px 0; border-bottom: 1px solid var(--line); margin-bottom: 8px; }
.session-head h3 { margin: 0; font: 650 16px var(--mono); }
.session-counts { margin-left: auto; display: flex; gap: 4px; }
.chip { font-size: 11.5px; background: var(--neutral-bg); color: var(--neutral); border-radius: 999px; padding: 1px 8px; }
.turn { display: flex; gap: 12px; padding: 6px 0; align-items: flex-start; }
.turn > .idx { flex: none; width: 34px; }
.turn > .bubble { flex: 0 0 calc((100% - 58px) * .48); min-width: 0; }
.turn > .judgments { flex: 1 1 0; min-width: 0; }
.turn + .turn.therapist, .turn.therapist + .turn { border-top: 1px dashed #edf0f5; }
.idx { font: 600 11.5px var(--mono); color: var(--muted); background: var(--neutral-bg); border-radius: 6px; text-align: center; padding: 2px 0; margin-top: 8px; }
.bubble { border-radius: 14px; padding: 8px 12px 10px; position: sticky; top: 70px; }
.turn.patient .bubble, .turn.other .bubble { background: #f1f3f7; border-top-left-radius: 4px; margin-right: 6%; }
.turn.therapist .bubble { background: #eaf0ff; border-top-right-radius: 4px; margin-left: 6%; box-shadow: inset 3px 0 0 var(--accent); }
.who { font-size: 11px; font-weight: 700; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); }
.turn.therapist .who { color: var(--accent); }
.text { white-space: pre-wrap; overflow-wrap: anywhere; font-size: 14px; line-height: 1.55; }
.text.unavailable { color: var(--muted); font-style: italic; }
mark.evidence { background: #fff3bd; color: inherit; border-radius: 3px; padding: 0 1px; border-bottom: 2px solid #f3d056; }
mark.evidence.off { background: transparent; border-bottom-color: transparent; }
.judgments { display: flex; flex-direction: column; gap: 6px; }
.jgroup { display: flex; flex-direction: column; gap: 3px; }
.jgroup:not(:has(.judgment:not([hidden]))) { display: none; }
.jgroup-title { font-size: 10.5px; text-transform: uppercase; letter-spacing: .07em; color: var(--muted); font-weight: 700; }
.judgment { display: grid; grid-template-columns: 70px minmax(0, 1fr) auto; gap: 8px; align-items: start; padding: 4px 8px 4px 8px; border: 1px solid var(--line); border-left: 3px solid var(--ok); border-radius: 7px; background: #fff; font-size: 13px; line-height: 1.45; }
.judgment.j-not_applicable { border-left-color: #b8c0ce; background: #fbfbfd; }
.judgment.j-unscored { border-left-color: #e4b64a; background: #fffdf7; }
.judgment.j-error { border-left-color: var(--error); background: #fffafa; }
.badge { text-align: center; font-size: 9.5px; font-weight: 700; text-transform: uppercase; letter-spacing: .04em; border-radius: 5px; padding: 1px 6px; margin-top: 1px; }
.jbody { min-width: 0; }
.jline { margin: 0; overflow-wrap: anywhere; }
.jname { font-weight: 600; }
.rationale { color: #4a5468; }
.rationale::before { content: " — "; color: #a3acbd; }
.judgment.compact { font-size: 12.5px; padding-top: 2px; padding-bottom: 2px; }
.judgment.compact .jline { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.judgment.compact .jname { font-weight: 500; color: #3d4759; }
.judgment.compact .rationale { color: var(--muted); }
.score { font-weight: 700; font-size: 12px; border-radius: 6px; padding: 0 8px; min-width: 30px; text-align: center; }
.quotes { list-style: none; margin: 3px 0 1px; padding: 0; display: flex; flex-direction: column; gap: 2px; }
.quote { font-size: 12.5px; font-style: italic; padding: 1px 8px; border-radius: 5px; overflow-wrap: anywhere; }
.quote.found { background: #fff8d6; border-left: 2px solid #f2cf4a; }
.quote .where { font-style: normal; color: var(--muted); font-size: 11.5px; }
.quote.not-found { background: var(--error-bg); color: var(--error); border-left: 2px solid var(--error); }
.quote .nf { font-style: normal; font-weight: 700; font-size: 10.5px; text-transform: uppercase; letter-spacing: .04em; }
.nomatch { display: none; color: var(--muted); font-size: 12px; font-style: italic; padding-top: 8px; }
.turn.no-match .nomatch { display: block; }
.turn.no-match .bubble { opacity: .55; }
.foot { color: var(--muted); font-size: 12px; padding: 20px; }
@media (max-width: 1100px) { .cards { grid-template-columns: repeat(2, minmax(0, 1fr)); } .tiles { grid-template-columns: 1fr 1fr; } }
@media print { .filters { position: static; } .bubble { position: static; } }
"""

_JS = """
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const criterion = $("filter-criterion"), score = $("filter-score"), status = $("filter-status");
  const session = $("filter-session"), only = $("filter-only"), count = $("filter-count");
  const judgments = Array.from(document.querySelectorAll(".judgment"));
  const sessions = Array.from(document.querySelectorAll(".session"));
  const marks = Array.from(document.querySelectorAll("mark.evidence"));
  const keyOf = (j) => j.dataset.rubric + ":" + j.dataset.criterion;
  const numeric = (v) => v.trim() !== "" && !Number.isNaN(Number(v));
  const byValue = (a, b) => (numeric(b) - numeric(a)) || (numeric(a) ? Number(a) - Number(b) : a.localeCompare(b));

  function refreshScores() {
    const current = score.value;
    const values = new Set(judgments
      .filter((j) => j.dataset.status === "ok" && (!criterion.value || keyOf(j) === criterion.value))
      .map((j) => j.dataset.score));
    const options = Array.from(values).sort(byValue).map((v) => new Option(v, v));
    score.replaceChildren(new Option("any score", ""), ...options);
    score.value = values.has(current) ? current : "";
  }

  function matches(j) {
    if (criterion.value && keyOf(j) !== criterion.value) return false;
    if (status.value && j.dataset.status !== status.value) return false;
    if (score.value && (j.dataset.status !== "ok" || j.dataset.score !== score.value)) return false;
    return true;
  }

  function apply() {
    let shown = 0;
    for (const j of judgments) {
      j.hidden = !matches(j);
      if (!j.hidden) shown += 1;
    }
    const filtering = Boolean(criterion.value || status.value || score.value);
    for (const s of sessions) {
      s.hidden = Boolean(session.value) && s.id !== session.value;
      const turns = Array.from(s.querySelectorAll(".turn"));
      turns.forEach((turn, i) => {
        const hasJudgments = turn.querySelector(".judgment") !== null;
        const match = hasJudgments && turn.querySelector(".judgment:not([hidden])") !== null;
        turn.classList.toggle("no-match", hasJudgments && !match);
        const next = turns[i + 1];
        const leadsToMatch = !hasJudgments && next && next.querySelector(".judgment:not([hidden])") !== null;
        turn.hidden = only.checked && filtering && !match && !leadsToMatch;
      });
    }
    for (const mark of marks) {
      const refs = mark.dataset.judgments.split(" ").map((id) => document.getElementById(id));
      mark.classList.toggle("off", !refs.some((j) => j && !j.hidden));
    }
    count.value = shown + " of " + judgments.length + " judgments";
  }

  criterion.addEventListener("change", () => { refreshScores(); apply(); });
  for (const control of [score, status, session, only]) control.addEventListener("change", apply);
  $("filter-reset").addEventListener("click", () => {
    criterion.value = status.value = session.value = score.value = "";
    only.checked = false;
    refreshScores();
    apply();
  });
  refreshScores();
  apply();
})();
"""
