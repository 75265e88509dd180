"""Summaries of a run: per criterion and per transcript, in the terminal and as summary.md.

Every status is counted, so a reader sees how many items were not applicable, unscored or errored
beside every mean: a mean over the few items that happened to be scored is never shown alone.
Session-level figures (e.g. the share of slow-down requests honoured) come from turn judgments
through each criterion's `pass_at`.
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evaluator.aggregate import aggregate_samples
from evaluator.models import STATUSES, Aggregate, CategoricalScale, Criterion, Judgment, Rubric, RunManifest
from evaluator.store import load_judgments, read_manifest, write_atomic

SUMMARY_FILE = "summary.md"


@dataclass
class Cell:
    """Judgments of one criterion over some set of turns (all of them, or one transcript's)."""

    criterion: Criterion
    counts: Counter[str] = field(default_factory=Counter)
    scores: list[float] = field(default_factory=list)
    verdicts: Counter[str] = field(default_factory=Counter)

    def add(self, judgment: Judgment | Aggregate) -> None:
        self.counts[judgment.status] += 1
        if judgment.status == "ok":
            self.verdicts[str(judgment.verdict)] += 1
            if judgment.score is not None:
                self.scores.append(judgment.score)

    @property
    def mean(self) -> float | None:
        return mean(self.scores) if self.scores else None

    @property
    def pass_share(self) -> float | None:
        """Share of scored turns that meet the criterion's `pass_at`, e.g. slow-down requests honoured."""
        if self.criterion.pass_at is None or not self.scores:
            return None
        return sum(bool(self.criterion.meets(s)) for s in self.scores) / len(self.scores)

    def distribution(self) -> str:
        scale = self.criterion.scale
        if isinstance(scale, CategoricalScale):
            order = scale.allowed()
        elif scale.type == "binary":
            return f"yes {self.verdicts.get('1', 0)} / no {self.verdicts.get('0', 0)}" if self.verdicts else ""
        else:
            order = sorted(self.verdicts, key=float)
        return " ".join(f"{v}:{self.verdicts[v]}" for v in order if self.verdicts.get(v))


@dataclass
class RubricSummary:
    rubric: Rubric
    overall: dict[str, Cell]
    by_transcript: dict[str, dict[str, Cell]]


@dataclass
class RunSummary:
    run_dir: Path
    manifest: RunManifest
    rubrics: list[RubricSummary]
    counts: Counter[str]
    judgments: list[Judgment] = field(default_factory=list)
    """Every judgment as read (samples unfolded), so other views of the run need not read it again."""


def summarize(run_dir: Path) -> RunSummary:
    """Read a run folder and aggregate its judgments; rubrics come from the manifest's snapshot,
    so a summary describes the rubric as it was when judged, whatever the file says now."""
    manifest = read_manifest(run_dir)
    rubrics = {rid: Rubric.model_validate(info["definition"]) for rid, info in manifest.rubrics.items()}
    loaded = load_judgments(run_dir)
    judgments: list[Judgment] | list[Aggregate] = loaded
    if manifest.samples > 1:
        judgments = aggregate_samples(loaded, rubrics, manifest.aggregate)
    summaries = []
    for rubric_id, rubric in rubrics.items():
        overall = {c.id: Cell(c) for c in rubric.criteria}
        by_transcript: dict[str, dict[str, Cell]] = {
            t: {c.id: Cell(c) for c in rubric.criteria} for t in manifest.transcripts
        }
        for judgment in judgments:
            if judgment.rubric_id != rubric_id or judgment.criterion_id not in overall:
                continue
            overall[judgment.criterion_id].add(judgment)
            by_transcript.setdefault(judgment.transcript_id, {c.id: Cell(c) for c in rubric.criteria})
            by_transcript[judgment.transcript_id][judgment.criterion_id].add(judgment)
        summaries.append(RubricSummary(rubric, overall, by_transcript))
    return RunSummary(run_dir, manifest, summaries, Counter(j.status for j in judgments), loaded)


def _fmt(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:.0%}" if percent else f"{value:.2f}"


def _direction(criterion: Criterion) -> str:
    return DIRECTION_ARROWS[criterion.better]


DIRECTION_ARROWS = {"higher": "↑", "lower": "↓", "neither": "·"}
COLUMNS = ("criterion", "better", "ok", "n/a", "unscored", "error", "mean", "meets", "distribution")


def _row(label: str, cell: Cell) -> list[str]:
    c = cell.counts
    return [
        label,
        _direction(cell.criterion),
        str(c["ok"]),
        str(c["not_applicable"]),
        str(c["unscored"]),
        str(c["error"]),
        _fmt(cell.mean),
        _fmt(cell.pass_share, percent=True),
        cell.distribution(),
    ]


def _header_lines(summary: RunSummary) -> list[str]:
    m = summary.manifest
    counts = ", ".join(f"{summary.counts.get(s, 0)} {s}" for s in STATUSES)
    judge = m.judge.get("judge", "?") + (f" ({m.judge['model']})" if m.judge.get("model") else "")
    lines = [
        f"Run {m.run_id}: {len(m.transcripts)} transcripts, judge {judge}, {m.items_planned} items planned",
        f"Judgments: {counts}",
    ]
    if m.samples > 1:
        lines[1] = f"Items, each folded over {m.samples} samples ({m.aggregate}; see aggregates.jsonl): {counts}"
    if m.skipped_files:
        lines.append(f"Skipped files: {len(m.skipped_files)} (" + "; ".join(s.path for s in m.skipped_files) + ")")
    if m.stopped:
        lines.append(f"Stopped early: {m.stopped}")
    if not m.complete:
        judged = len({j.key for j in summary.judgments})
        missing = max(m.items_planned - judged, 0)
        lines.append(
            f"This run is incomplete: {missing} of {m.items_planned} planned judgments are missing; "
            f"continue it with `evaluator run --resume {summary.run_dir}`."
        )
    return lines


def md_escape(text: str) -> str:
    """User text as markdown shows it literally: HTML in a transcript id, a model name or a rubric title
    is displayed, never run by whatever renders summary.md, and a `|` cannot split a table cell."""
    return html.escape(text, quote=False).replace("|", "\\|")


def render_markdown(summary: RunSummary) -> str:
    """summary.md: the same figures as the terminal, for a lab notebook or a pull request."""
    out = [f"# Summary of run {md_escape(summary.manifest.run_id)}", ""]
    out += [f"- {md_escape(line)}" for line in _header_lines(summary)]
    out += [
        "",
        "Columns: `better` says which direction is the better therapy (· for descriptive criteria); `meets` is the share of scored "
        "turns at or beyond the criterion's `pass_at` (for the pacing headline: slow-down requests honoured).",
        "",
    ]
    for rs in summary.rubrics:
        out += [f"## {md_escape(rs.rubric.title)} (`{rs.rubric.id}` v{md_escape(str(rs.rubric.version))})", ""]
        out += _md_table(COLUMNS, [_row(f"{c.name} (`{cid}`)", rs.overall[cid]) for cid, c in _criteria(rs)])
        out += ["", "### Per transcript", ""]
        rows = [
            [f"{tid}: `{cid}`", *_row("", cells[cid])[1:]]
            for tid, cells in rs.by_transcript.items()
            for cid, _ in _criteria(rs)
        ]
        out += _md_table(("transcript: criterion", *COLUMNS[1:]), rows)
        out.append("")
    return "\n".join(out) + "\n"


def _criteria(rs: RubricSummary) -> list[tuple[str, Criterion]]:
    return [(c.id, c) for c in rs.rubric.criteria]


def _md_table(header: tuple[str, ...], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_escape(cell) for cell in row) + " |" for row in rows]
    return lines


TERMINAL_COLUMNS = ("criterion", "ok", "n/a", "unscored", "error", "mean", "meets")


def print_summary(summary: RunSummary, console: Console, per_transcript: bool = True) -> None:
    """The terminal view: counts, mean and share meeting each criterion (↑/↓: which way is better,
    ·: descriptive);
    distributions are in summary.md, where width is not a constraint."""
    for line in _header_lines(summary):
        console.print(escape(line), highlight=False)
    for rs in summary.rubrics:
        table = Table(title=escape(f"{rs.rubric.title} ({rs.rubric.id} v{rs.rubric.version})"), title_justify="left")
        for column in TERMINAL_COLUMNS:
            table.add_column(column, justify="left" if column == "criterion" else "right", no_wrap=True)
        for cid, criterion in _criteria(rs):
            row = _row(f"{_direction(criterion)} {cid}", rs.overall[cid])
            table.add_row(*(escape(cell) for cell in (row[0], *row[2:8])))
        console.print(table)
        if per_transcript:
            by_t = Table(title="per transcript: mean (share meeting the criterion)", title_justify="left")
            by_t.add_column("criterion", no_wrap=True)
            for tid in rs.by_transcript:
                by_t.add_column(escape(tid), justify="right")
            for cid, _ in _criteria(rs):
                cells = [rs.by_transcript[t][cid] for t in rs.by_transcript]
                by_t.add_row(escape(cid), *(escape(_mean_and_share(cell)) for cell in cells))
            console.print(by_t)


def _mean_and_share(cell: Cell) -> str:
    share = cell.pass_share
    return _fmt(cell.mean) + (f" ({share:.0%})" if share is not None else "")


def write_summary(run_dir: Path) -> tuple[RunSummary, Path]:
    summary = summarize(run_dir)
    path = run_dir / SUMMARY_FILE
    write_atomic(path, render_markdown(summary))
    return summary, path
