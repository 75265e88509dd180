"""report.html: one self-contained page to read a run, from the headline figures down to every turn.

It renders the same analysis.summary.RunSummary as the terminal and summary.md (means, intervals,
shares, counts and tones all come from it), plus the conversations (views.sessions) and charts
(views.charts). Everything is inline (CSS and JS from views/templates, charts as SVG), so the file
opens from disk, can be mailed or archived beside the run, and never reaches the network. The template
autoescapes every value; the only raw HTML inserted is pre-escaped text or views.charts' SVG (its text
escaped there).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from evaluator.analysis.stats import Estimate
from evaluator.analysis.summary import Cell, RubricSummary, RunSummary, Tone, summarize
from evaluator.models import STATUSES, Criterion, RunManifest
from evaluator.results import judged_transcripts
from evaluator.rubrics import scale_summary
from evaluator.store import write_atomic
from evaluator.views import format as fmt
from evaluator.views.charts import criterion_chart
from evaluator.views.groups import report_groups
from evaluator.views.sessions import SessionView, session_views
from evaluator.views.summary import DIRECTION_ARROWS

HTML_FILE = "report.html"
PAGE_TEMPLATE = "report.html.j2"

STATUS_LABELS = {"ok": "ok", "not_applicable": "n/a", "unscored": "unscored", "error": "error"}
DIRECTION_TEXT = {
    "higher": "higher is better",
    "lower": "lower is better",
    "neither": "descriptive: neither end is better",
}


def render_html(run_dir: Path, summary: RunSummary | None = None, by: Sequence[str] = ()) -> str:
    """The whole report as one HTML document, from the run's summary (read from run_dir unless given);
    `by` (metadata fields) adds the group sections, the forest plot and the group filter."""
    summary = summary or summarize(run_dir)
    transcripts, problems = judged_transcripts(summary.run)
    sessions = session_views(summary, transcripts, problems)
    return (
        _environment()
        .get_template(PAGE_TEMPLATE)
        .render(
            css=_asset("report.css"),
            js=_asset("report.js"),
            header=_header_view(summary, run_dir),
            rubrics=[_rubric_view(rs) for rs in summary.rubrics],
            sessions=sessions,
            filters=_filter_view(summary, sessions),
            session_ids={s.transcript_id: s.dom_id for s in sessions},
            status_labels=STATUS_LABELS,
            statuses=STATUSES,
            arrows=DIRECTION_ARROWS,
            direction_text=DIRECTION_TEXT,
            grouping=report_groups(summary.run, by) if by else None,
        )
    )


def write_html_report(run_dir: Path, summary: RunSummary | None = None, by: Sequence[str] = ()) -> Path:
    """Write <run>/report.html atomically, so a reader never opens half a report."""
    path = run_dir / HTML_FILE
    write_atomic(path, render_html(run_dir, summary, by))
    return path


# --- rubric section -----------------------------------------------------------------------------


@dataclass
class _CriterionView:
    rubric_id: str
    criterion: Criterion
    cell: Cell
    scale: str
    chart: Markup | None
    reason: str | None
    pass_text: str | None

    @property
    def key(self) -> str:
        return f"{self.rubric_id}:{self.criterion.id}"

    @property
    def estimate(self) -> Estimate | None:
        return self.cell.estimate

    @property
    def mean(self) -> str:
        return fmt.number(self.cell.mean)

    @property
    def low(self) -> str:
        return fmt.number(self.estimate.low if self.estimate else None)

    @property
    def high(self) -> str:
        return fmt.number(self.estimate.high if self.estimate else None)

    @property
    def share(self) -> str:
        return fmt.percent(self.cell.pass_share)


@dataclass
class _TableCell:
    mean: str
    note: str
    tone: Tone
    title: str


@dataclass
class _RubricView:
    summary: RubricSummary
    criteria: list[_CriterionView]
    rows: list[tuple[str, list[_TableCell]]]


def _pass_text(criterion: Criterion) -> str | None:
    if criterion.pass_at is None:
        return None
    value = int(criterion.pass_at) if float(criterion.pass_at).is_integer() else criterion.pass_at
    return f"{'≥' if criterion.better == 'higher' else '≤'} {value}"


def _rubric_view(rs: RubricSummary) -> _RubricView:
    criteria = [
        _CriterionView(
            rs.rubric.id,
            criterion,
            rs.overall[criterion.id],
            scale_summary(criterion),
            criterion_chart(rs, criterion),
            rs.reasons.get(criterion.id),
            _pass_text(criterion),
        )
        for criterion in rs.rubric.criteria
    ]
    rows = [(t, [_table_cell(rs, cells[c.id]) for c in rs.rubric.criteria]) for t, cells in rs.by_transcript.items()]
    return _RubricView(rs, criteria, rows)


def _table_cell(rs: RubricSummary, cell: Cell) -> _TableCell:
    counts = ", ".join(f"{cell.counts.get(s, 0)} {STATUS_LABELS[s]}" for s in STATUSES)
    ok = cell.counts.get("ok", 0)
    if ok:
        note = f"n={ok}" + (f" · {fmt.percent(cell.pass_share)}" if cell.pass_share is not None else "")
    else:
        note = ", ".join(f"{n} {STATUS_LABELS[s]}" for s, n in cell.counts.items() if n) or "no items"
    return _TableCell(fmt.number(cell.mean), note, rs.mean_tone(cell), counts)


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


def _judge_rows(manifest: RunManifest) -> list[tuple[str, str]]:
    """The judge's configuration as recorded (never a key); the rules judge has no model or sampling,
    which shows as a dash rather than a missing row."""
    judge = manifest.judge

    def shown(name: str) -> str:
        return fmt.MISSING if judge.get(name) is None else str(judge[name])

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
    if manifest.subset is not None:
        rows.append(("subset", manifest.subset.describe()))
    return rows


def _header_view(summary: RunSummary, run_dir: Path) -> _HeaderView:
    manifest = summary.manifest
    return _HeaderView(
        manifest=manifest,
        run_dir=str(run_dir),
        counts=[(s, summary.counts.get(s, 0)) for s in STATUSES],
        counted="items (samples folded)" if manifest.samples > 1 else "judgments",
        judge=_judge_rows(manifest),
        cost=_cost(manifest),
        elapsed=_duration(manifest.elapsed_s),
        turns=summary.turns_judged,
        judged=len(summary.judgments),
    )


# --- filters -------------------------------------------------------------------------------------


@dataclass
class _FilterView:
    criteria: list[tuple[str, list[tuple[str, str]]]]
    scores: list[str]
    statuses: list[tuple[str, int]]
    sessions: list[tuple[str, str]]
    total: int


def _value_key(value: str) -> tuple[bool, float, str]:
    """Numbers in numeric order first, then labels alphabetically."""
    try:
        return (False, float(value), value)
    except ValueError:
        return (True, 0.0, value)


def _filter_view(summary: RunSummary, sessions: list[SessionView]) -> _FilterView:
    """Options list only what the run holds, so every choice shows something."""
    judgments = summary.judgments
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
    """Autoescape on: every value from a transcript, rubric or judge is escaped unless it arrives as Markup."""
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
