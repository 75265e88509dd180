"""report.html: the page to read a run, from the headline figures down to every turn.

It renders the same analysis.summary.RunSummary as the terminal and summary.md (means, intervals,
shares, counts and tones all come from it), plus the conversations (views.sessions) and charts
(views.charts). A small run is one self-contained file (CSS and JS inline, charts as SVG) that opens
from disk, can be mailed or archived beside the run, and never reaches the network. A large one
(views.pages) keeps the figures and a paginated, searchable index in report.html, and puts each
transcript's conversation on its own page in report/ beside it. The templates autoescape every value;
the only raw HTML inserted is pre-escaped text or views.charts' SVG (its text escaped there).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup

from evaluator.analysis.stats import Estimate
from evaluator.analysis.summary import Cell, RubricSummary, RunSummary, Tone, summarize
from evaluator.models import STATUSES, Criterion, Judgment, RunManifest
from evaluator.results import judged_transcripts, transcript_reader
from evaluator.rubrics import scale_summary
from evaluator.store import write_atomic
from evaluator.views import format as fmt
from evaluator.views.charts import criterion_chart
from evaluator.views.groups import GroupsView, report_groups
from evaluator.views.pages import PageContext, fits_one_file, remove_pages, write_pages
from evaluator.views.sessions import SessionView, session_views
from evaluator.views.summary import DIRECTION_ARROWS
from evaluator.views.templating import asset, page_environment
from evaluator.views.transcript_index import STATUS_LABELS, cell_note, transcript_index

HTML_FILE = "report.html"
PAGE_TEMPLATE = "report.html.j2"
TRANSCRIPT_TEMPLATE = "transcript.html.j2"
DIRECTION_TEXT = {
    "higher": "higher is better",
    "lower": "lower is better",
    "neither": "descriptive: neither end is better",
}


def render_html(run_dir: Path, summary: RunSummary | None = None, by: Sequence[str] = ()) -> str:
    """The whole report as one HTML document, every session inline, from the run's summary (read from
    run_dir unless given); `by` (metadata fields) adds the group sections, the forest plot and the group
    filter."""
    summary = summary or summarize(run_dir)
    return _render_single(run_dir, summary, report_groups(summary.run, by) if by else None)


def write_html_report(
    run_dir: Path, summary: RunSummary | None = None, by: Sequence[str] = (), single_file: bool | None = None
) -> Path:
    """Write <run>/report.html atomically, so a reader never opens half a report: one file for a small
    run, report.html plus report/ (a page per transcript) for a large one (views.pages.fits_one_file
    decides unless `single_file` says)."""
    summary = summary or summarize(run_dir)
    grouping = report_groups(summary.run, by) if by else None
    path = run_dir / HTML_FILE
    if fits_one_file(summary) if single_file is None else single_file:
        write_atomic(path, _render_single(run_dir, summary, grouping))
        remove_pages(run_dir)
        return path
    transcript_of, problems = transcript_reader(summary.run)
    header = _header_view(summary, run_dir)
    template = page_environment().get_template(TRANSCRIPT_TEMPLATE)

    def render_page(page: PageContext) -> str:
        return template.render(
            **_common(header, grouping),
            session=page.session,
            filters=_filter_view(summary, page.judgments, []),
            previous=page.previous,
            next=page.next,
        )

    assets = {name: str(asset(name)) for name in ("report.css", "report.js")}
    links = write_pages(run_dir, summary, transcript_of, problems, render_page, assets)
    index = transcript_index(summary, list(links), links, grouping)
    write_atomic(path, _render(summary, header, grouping, index=index, index_js=asset("index.js")))
    return path


def _render_single(run_dir: Path, summary: RunSummary, grouping: GroupsView | None) -> str:
    transcripts, problems = judged_transcripts(summary.run)
    sessions = session_views(summary, transcripts, problems)
    return _render(
        summary,
        _header_view(summary, run_dir),
        grouping,
        sessions=sessions,
        filters=_filter_view(summary, summary.judgments, sessions),
        session_ids={s.transcript_id: s.dom_id for s in sessions},
        js=asset("report.js"),
    )


def _render(summary: RunSummary, header: _HeaderView, grouping: GroupsView | None, **page: object) -> str:
    """report.html: with `sessions` (single file) or with `index` (conversations on transcript pages)."""
    context: dict[str, object] = {"sessions": [], "index": None, **page}
    return (
        page_environment()
        .get_template(PAGE_TEMPLATE)
        .render(
            **_common(header, grouping),
            css=asset("report.css"),
            rubrics=[_rubric_view(rs, tables=context["index"] is None) for rs in summary.rubrics],
            **context,
        )
    )


def _common(header: _HeaderView, grouping: GroupsView | None) -> dict[str, object]:
    """What report.html and every transcript page render alike."""
    return {
        "header": header,
        "grouping": grouping,
        "status_labels": STATUS_LABELS,
        "statuses": STATUSES,
        "arrows": DIRECTION_ARROWS,
        "direction_text": DIRECTION_TEXT,
    }


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

    @property
    def weighted(self) -> str | None:
        """The mean of the logprob-weighted scores (`--logprobs`), where the endpoint returned them."""
        return None if self.cell.weighted_mean is None else fmt.number(self.cell.weighted_mean)

    @property
    def consistency(self) -> str | None:
        """Share of items whose samples all agree (`--samples N`), of those with two or more scored."""
        return None if self.cell.self_consistency is None else fmt.percent(self.cell.self_consistency)


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


def _rubric_view(rs: RubricSummary, tables: bool) -> _RubricView:
    """A rubric's cards, and its per-transcript table rows unless the transcript index replaces them."""
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
    cells = rs.by_transcript.items() if tables else []
    rows = [(t, [_table_cell(rs, by_id[c.id]) for c in rs.rubric.criteria]) for t, by_id in cells]
    return _RubricView(rs, criteria, rows)


def _table_cell(rs: RubricSummary, cell: Cell) -> _TableCell:
    counts = ", ".join(f"{cell.counts.get(s, 0)} {STATUS_LABELS[s]}" for s in STATUSES)
    return _TableCell(fmt.number(cell.mean), cell_note(cell), rs.mean_tone(cell), counts)


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
    rows += [("mode", manifest.mode), ("samples", str(manifest.samples)), ("blind", _blind(manifest))]
    if manifest.samples > 1:
        rows.append(("aggregate", manifest.aggregate))
    if manifest.subset is not None:
        rows.append(("subset", manifest.subset.describe()))
    return rows


def _blind(manifest: RunManifest) -> str:
    if manifest.unblind:
        return "no (--unblind): the judge saw transcript ids, file names and metadata"
    return "yes: the judge saw no transcript id, file name or metadata"


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
        judged=summary.judged,
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


def _filter_view(summary: RunSummary, judgments: list[Judgment], sessions: list[SessionView]) -> _FilterView:
    """Options list only what the judgments shown hold, so every choice shows something."""
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
