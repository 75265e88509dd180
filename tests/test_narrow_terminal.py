"""At 80 columns (a small terminal, a pipe, a log file) no table cell loses a digit: `agree`, `compare`,
`report` and `run --dry-run` print through the CLI with COLUMNS=80, and every figure, computed here from
the objects the views are drawn from, must appear whole in the output. Rich would otherwise squeeze
no_wrap cells to `117,786,6…` or to nothing."""

from __future__ import annotations

import asyncio
import io
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest
from rich.console import Console
from rich.highlighter import Highlighter
from rich.text import Text

from evaluator.analysis.agreement_stats import Comparison as Agreement
from evaluator.analysis.summary import summarize
from evaluator.cli.main import main
from evaluator.config import JudgeSettings, RunConfig
from evaluator.estimate import DryRun, dry_run, print_dry_run
from evaluator.models import Usage
from evaluator.views import format as fmt
from evaluator.views.agreement import write_agreement
from evaluator.views.compare import write_comparison

REPO = Path(__file__).resolve().parent.parent
LABELS = REPO / "labels" / "seed_ratings.csv"
NUMBER = re.compile(r"[+-]?\d[\d,]*(?:\.\d+)?%?")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two offline runs of the bundled transcripts and rubrics."""
    out = tmp_path_factory.mktemp("runs")
    for run_id in ("a", "b"):
        argv = ["run", str(REPO / "transcripts"), "--rubric", str(REPO / "rubrics"), "--judge", "rules"]
        assert main([*argv, "--output", str(out), "--run-id", run_id, "--no-progress"]) in (0, 1)
    return out / "a", out / "b"


def _printed(argv: list[str], columns: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    capsys.readouterr()
    assert main(argv) in (0, 1)
    out = capsys.readouterr().out
    # Prose is soft-wrapped by the terminal; a table line must fit.
    assert all(len(line) <= columns for line in out.splitlines() if line[:1] in "┏┃┡│└")
    return out


def _assert_whole(out: str, cells: Iterable[str]) -> None:
    """Each number of each expected cell appears in the output with no digit cut off either side."""
    for cell in cells:
        for number in NUMBER.findall(cell):
            pattern = rf"(?<![\d.,]){re.escape(number)}(?![\d,%…]|\.\d)"
            assert re.search(pattern, out), f"{number!r} (of {cell!r}) is not whole in:\n{out}"


def _agreement_cells(c: Agreement) -> list[str]:
    return [str(c.n), fmt.percent(c.exact), fmt.percent(c.within_one), fmt.number(c.kappa), fmt.number(c.alpha)]


def test_agree_keeps_every_figure_at_80_columns(
    runs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _printed(["agree", str(runs[0]), str(LABELS)], 80, monkeypatch, capsys)
    report, _ = write_agreement(runs[0], LABELS)
    for ca in report.criteria:
        assert ca.criterion.id in out
        for comparison in (ca.comparison, *ca.per_rater):
            cells = [
                *_agreement_cells(comparison),
                fmt.number(comparison.rho),
                fmt.number(comparison.bias, signed=True),
            ]
            _assert_whole(out, cells)
        if ca.humans is not None:
            _assert_whole(out, [str(ca.humans.n), fmt.number(ca.humans.kappa), fmt.number(ca.humans.alpha)])


def test_compare_keeps_criterion_names_and_figures_at_80_columns(
    runs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The criterion table stays a boxed table, one per rubric, with every id on one line and every figure
    whole (multi-figure cells wrap between their figures)."""
    out = _printed(["compare", str(runs[0]), str(runs[1])], 80, monkeypatch, capsys)
    comparison, _ = write_comparison(*runs)
    assert comparison.criteria
    assert out.count("┏") == len(comparison.rubric_ids())
    for c in comparison.criteria:
        assert re.search(rf"^│{re.escape(c.criterion_id)}\b", out, re.MULTILINE), c.criterion_id
        _assert_whole(out, [str(c.paired), fmt.number(c.mean_a), fmt.number(c.mean_b), fmt.number(c.exact)])
        _assert_whole(out, [str(c.changed)])


def test_compare_at_80_columns_names_an_edited_definition_under_its_criterion(
    runs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The compact table has no definition column: an edit is named under the criterion it changed."""
    rubrics = tmp_path / "rubrics"
    shutil.copytree(REPO / "rubrics", rubrics)
    pacing = rubrics / "pacing.yaml"
    pacing.write_text(pacing.read_text().replace("Clearly slows down", "Plainly slows down"), encoding="utf-8")
    argv = ["run", str(REPO / "transcripts"), "--rubric", str(rubrics), "--judge", "rules", "--no-progress"]
    assert main([*argv, "--output", str(tmp_path), "--run-id", "edited"]) in (0, 1)
    out = _printed(["compare", str(runs[0]), str(tmp_path / "edited")], 80, monkeypatch, capsys)
    assert "┏" in out and re.search(r"^│slow_down_responsiveness +│.*\n│\(edited\) +│", out, re.MULTILINE)


def test_report_keeps_every_count_and_mean_at_80_columns(
    runs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _printed(["report", str(runs[0])], 80, monkeypatch, capsys)
    for rs in summarize(runs[0]).rubrics:
        for criterion in rs.rubric.criteria:
            cell = rs.overall[criterion.id]
            assert criterion.id in out
            counts = [str(cell.counts[s]) for s in ("ok", "not_applicable", "unscored", "error")]
            _assert_whole(out, [*counts, fmt.number(cell.mean), fmt.percent(cell.pass_share)])


def _dry_run_cells(estimate: DryRun) -> list[str]:
    cells = []
    for e in [*estimate.per_rubric.values(), estimate.total]:
        figures = (e.items, e.decided_by_rules, e.calls, e.usage.prompt_tokens, e.usage.completion_tokens)
        cells += [f"{n:,}" for n in figures]
    return cells


def test_dry_run_keeps_every_total_at_80_columns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the CLI on the bundled inputs, then the same plan scaled to nine-digit token totals (the
    kind that were cut to `117,786,6…`) on an 80-column console, as in a pipe."""
    args = [str(REPO / "transcripts"), "--rubric", str(REPO / "rubrics"), "--judge", "openai", "--model", "gpt-4o"]
    out = _printed(["run", *args, "--dry-run"], 80, monkeypatch, capsys)
    config = RunConfig(
        transcripts=[REPO / "transcripts"],
        rubrics=[REPO / "rubrics"],
        judge=JudgeSettings(kind="openai", model="gpt-4o"),
    )
    estimate = asyncio.run(dry_run(config))
    assert all(rubric_id in out for rubric_id in estimate.per_rubric)
    _assert_whole(out, _dry_run_cells(estimate))

    scale = 1000
    for e in estimate.per_rubric.values():
        e.items, e.decided_by_rules, e.calls = e.items * scale, e.decided_by_rules * scale, e.calls * scale
        e.usage = Usage(
            prompt_tokens=e.usage.prompt_tokens * scale, completion_tokens=e.usage.completion_tokens * scale
        )
    assert estimate.total.usage.prompt_tokens >= 100_000_000
    console = Console(width=80, record=True, file=io.StringIO())
    print_dry_run(estimate, console)
    _assert_whole(console.export_text(), _dry_run_cells(estimate))


def test_wide_consoles_keep_the_tables(
    runs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only a console too narrow for the figures stacks them; a wide one draws the same boxed table."""
    for argv in (["agree", str(runs[0]), str(LABELS)], ["compare", str(runs[0]), str(runs[1])]):
        out = _printed(argv, 200, monkeypatch, capsys)
        assert "┏" in out and "│" in out


class _SeenHighlighter(Highlighter):
    """Records what rich asks to highlight: its regexes took over 60 s on one 100,000-character cell."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def highlight(self, text: Text) -> None:
        self.seen.append(text.plain)


@pytest.mark.parametrize("width", [80, 30])  # rich's own layout, and the stacked one of a console too narrow
def test_table_cells_are_data_never_run_through_the_highlighter(width: int) -> None:
    """A cell is a metadata value, an id or a name from a file: printed as written, at any length, with no
    highlighter (whose regexes hang on a long one) in rich's layout, the pinned one or the stacked one."""
    long_cell = "1" * 100_000
    table = fmt.rich_table(("group", "sessions", "mean [95% CI]"), [[long_cell, "3", "2.50 [1.00, 4.00]"]])
    table.columns[0].no_wrap = False
    seen = _SeenHighlighter()
    console = Console(width=width, record=True, file=io.StringIO(), highlighter=seen)
    console.print(fmt.fit(table))
    text = console.export_text()
    assert seen.seen == []
    assert text.count("1") >= 100_000 and "2.50 [1.00," in text  # the digits are data, shown whole
