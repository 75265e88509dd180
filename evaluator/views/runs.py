"""The run index: results/index.html and `evaluator runs`, the same list of runs newest first, with
links to each run's report and to the comparison of each run with the previous run of its rubric.

A comparison page is written once, when its later run finishes (its figures never change after), as
results/<later>/compare-<earlier>.html: compare.md's text in a self-contained page. Older pairs
without a page show the command that writes one instead of a dead link.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from rich.console import Console
from rich.markup import escape

from evaluator.analysis.runs import RunEntry, RunListing, RunPair, list_runs
from evaluator.errors import EvaluatorError
from evaluator.models import STATUSES
from evaluator.store import write_atomic
from evaluator.views import format as fmt
from evaluator.views.templating import asset, page_environment

INDEX_FILE = "index.html"
REPORT_FILE = "report.html"
STATUS_HEADERS = {"ok": "ok", "not_applicable": "n/a", "unscored": "unscored", "error": "error"}


@dataclass(frozen=True)
class PairLink:
    earlier: str
    rubrics: str
    href: str | None
    """Relative to the results folder; None when no page is written yet."""
    command: str


@dataclass(frozen=True)
class RunRow:
    name: str
    date: str
    rubrics: str
    judge: str
    counts: list[int]
    cost: str
    report_href: str | None
    compares: list[PairLink]
    problem: str | None
    complete: bool


def compare_page_path(pair: RunPair) -> Path:
    return pair.later.run_dir / f"compare-{pair.earlier.name}.html"


def _href(*parts: str) -> str:
    return "/".join(quote(part) for part in parts)


def _date(created_at: str) -> str:
    return created_at[:19].replace("T", " ")


def _cost(entry: RunEntry) -> str:
    manifest = entry.manifest
    if manifest is None:
        return fmt.MISSING
    if manifest.cost_usd is not None:
        return f"${manifest.cost_usd:.4f}" if manifest.cost_usd < 1 else f"${manifest.cost_usd:,.2f}"
    return "free" if manifest.judge.get("judge") == "rules" else fmt.MISSING


def _pair_link(pair: RunPair) -> PairLink:
    page = compare_page_path(pair)
    return PairLink(
        pair.earlier.name,
        ", ".join(pair.rubric_ids),
        _href(pair.later.name, page.name) if page.is_file() else None,
        f"evaluator compare {pair.earlier.name} {pair.later.name}",
    )


def run_rows(listing: RunListing) -> list[RunRow]:
    """What the index and the terminal list show, newest first."""
    rows: list[RunRow] = []
    for entry in listing.newest_first():
        manifest = entry.manifest
        counts = entry.counts()
        report = entry.run_dir / REPORT_FILE
        rows.append(
            RunRow(
                name=entry.name,
                date=_date(entry.created_at) if manifest else fmt.MISSING,
                rubrics=", ".join(entry.rubric_ids),
                judge=fmt.judge_label(manifest) if manifest else fmt.MISSING,
                counts=[counts[s] for s in STATUSES],
                cost=_cost(entry),
                report_href=_href(entry.name, REPORT_FILE) if report.is_file() else None,
                compares=[_pair_link(p) for p in listing.pairs_of(entry)],
                problem=entry.problem,
                complete=bool(manifest and manifest.complete),
            )
        )
    return rows


def _render(template: str, **context: object) -> str:
    return page_environment().get_template(template).render(**context)


def render_index_html(listing: RunListing) -> str:
    return _render(
        "runs.html.j2",
        results_dir=str(listing.results_dir),
        rows=run_rows(listing),
        status_headers=[STATUS_HEADERS[s] for s in STATUSES],
        css=asset("runs.css"),
    )


def write_compare_pages(listing: RunListing, later: Path) -> list[Path]:
    """Write the comparison pages in which `later` is the later run (an existing page is kept)."""
    from evaluator.analysis.compare import compare
    from evaluator.results import open_run
    from evaluator.views.compare import render_comparison_markdown

    written: list[Path] = []
    for pair in listing.pairs:
        page = compare_page_path(pair)
        if pair.later.run_dir.resolve() != later.resolve() or page.is_file():
            continue
        try:
            comparison = compare(open_run(pair.earlier.run_dir), open_run(pair.later.run_dir))
        except (EvaluatorError, OSError, ValueError):
            continue  # an earlier run that cannot be opened any more: the index shows the command instead
        text = _render(
            "compare.html.j2",
            earlier=pair.earlier.name,
            later=pair.later.name,
            rubrics=", ".join(pair.rubric_ids),
            markdown=render_comparison_markdown(comparison),
            css=asset("runs.css"),
        )
        write_atomic(page, text)
        written.append(page)
    return written


def write_run_index(results_dir: Path, finished: Path | None = None) -> Path:
    """Rewrite results/index.html atomically; with `finished`, first write that run's comparison pages."""
    listing = list_runs(results_dir)
    if finished is not None and write_compare_pages(listing, finished):
        listing = list_runs(results_dir)
    path = results_dir / INDEX_FILE
    write_atomic(path, render_index_html(listing))
    return path


def print_runs(listing: RunListing, console: Console) -> None:
    """`evaluator runs`: the index as a few lines per run, newest first. Stacked rather than a table, so
    no figure is squeezed at 80 columns, in a pipe or in a log file."""
    rows = run_rows(listing)
    if not rows:
        console.print(f"{listing.results_dir}: no runs yet", markup=False, highlight=False)
        return
    console.print(f"{len(rows)} run(s) in {listing.results_dir}, newest first", style="bold", highlight=False)
    for row in rows:
        if row.problem is not None:
            console.print(f"[red]{escape(row.name)}  unreadable:[/red] {escape(row.problem)}", highlight=False)
            continue
        state = "" if row.complete else "  [yellow]incomplete[/yellow]"
        console.print(f"[bold]{escape(row.name)}[/bold]  {escape(row.date)}{state}", highlight=False)
        counts = " · ".join(f"{STATUS_HEADERS[s]} {n}" for s, n in zip(STATUSES, row.counts))
        details = f"  {row.rubrics} · {row.judge} · {counts} · cost {row.cost}"
        console.print(escape(details), highlight=False)
        for link in row.compares:
            page = listing.results_dir / row.name / f"compare-{link.earlier}.html"
            target = str(page) if link.href else link.command
            console.print(escape(f"  vs {link.earlier} ({link.rubrics}): {target}"), style="dim", highlight=False)
