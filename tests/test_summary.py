"""Summaries: every status counted, means and session figures computed from the turn judgments."""

from __future__ import annotations

import io
from statistics import mean

from rich.console import Console

from evaluator.analysis.stats import Estimate, cluster_bootstrap_mean
from evaluator.analysis.summary import summarize
from evaluator.store import load_judgments
from evaluator.views import format as fmt
from evaluator.views.html import render_html
from evaluator.views.summary import print_summary, render_markdown
from tests.conftest import IGNORING_SEED, SLOWING_SEED
from tests.test_runner import seed_run  # noqa: F401  (module-scoped fixture shared with the runner tests)


def test_summary_matches_the_judgments(seed_run) -> None:  # noqa: F811
    run_dir, _ = seed_run
    judgments = load_judgments(run_dir)
    summary = summarize(run_dir)
    pacing = next(rs for rs in summary.rubrics if rs.rubric.id == "pacing")
    cell = pacing.overall["slow_down_responsiveness"]
    ok = [j.score for j in judgments if j.criterion_id == "slow_down_responsiveness" and j.status == "ok"]
    assert cell.counts["ok"] == len(ok)
    assert cell.mean == mean(ok)
    assert cell.pass_share == sum(s >= 4 for s in ok) / len(ok)
    per_seed = pacing.by_transcript
    assert (
        per_seed[IGNORING_SEED.stem]["slow_down_responsiveness"].mean
        < per_seed[SLOWING_SEED.stem]["slow_down_responsiveness"].mean
    )
    assert sum(summary.counts.values()) == len(judgments)


def test_markdown_lists_every_rubric_and_status(seed_run) -> None:  # noqa: F811
    run_dir, _ = seed_run
    text = render_markdown(summarize(run_dir))
    for title in ("Pacing and responsiveness", "Alliance and rupture repair", "ACT-inconsistent", "MITI"):
        assert title in text
    assert "| criterion | better | ok | n/a | unscored | error | mean | meets | distribution |" in text
    assert "unscored" in text and IGNORING_SEED.stem in text


def test_user_text_in_summary_md_is_shown_not_run(tmp_path, repo) -> None:
    from evaluator.config import RunConfig
    from evaluator.runner import run

    hostile = tmp_path / "in.jsonl"
    hostile.write_text(
        '{"session_id": "<img src=x onerror=alert(1)>|x", "messages": ['
        '{"role": "user", "content": "Can we slow down?"}, {"role": "assistant", "content": "Of course."}]}\n'
    )
    result = run(
        RunConfig(
            transcripts=[hostile], rubrics=[repo / "rubrics" / "pacing.yaml"], output=tmp_path, show_progress=False
        )
    )
    text = render_markdown(summarize(result.run_dir))
    assert "<img" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;\\|x" in text


def _card(page: str, key: str) -> str:
    return page.split(f'<article class="card" data-card="{key}">', 1)[1].split("</article>", 1)[0]


def test_terminal_summary_md_and_report_html_show_the_same_figures(seed_run) -> None:  # noqa: F811
    """One analysis object, three views: every mean, interval and meets share printed is the same, and each
    view takes it from the object (an edited figure shows up edited in all three, nothing is recomputed)."""
    run_dir, _ = seed_run
    summary = summarize(run_dir)
    pacing = next(rs for rs in summary.rubrics if rs.rubric.id == "pacing")
    edited = pacing.overall["slow_down_responsiveness"]
    edited.scores = [5.0, 1.0, 4.0, 2.0]  # mean 3.00, half of them meet pass_at 4
    edited.estimate = Estimate(3.0, 1.11, 4.44, 4, 2)

    buffer = io.StringIO()
    print_summary(summary, Console(file=buffer, width=250), per_transcript=False)
    terminal, markdown, page = buffer.getvalue(), render_markdown(summary), render_html(run_dir, summary)

    checked = 0
    for rs in summary.rubrics:
        for criterion in rs.rubric.criteria:
            cell = rs.overall[criterion.id]
            figures = [fmt.interval(cell.mean, cell.estimate.low, cell.estimate.high)] if cell.estimate else ["–"]
            figures.append(fmt.percent(cell.pass_share))
            terminal_row = next(line for line in terminal.splitlines() if f" {criterion.id} " in line)
            markdown_row = next(line for line in markdown.splitlines() if f"(`{criterion.id}`)" in line)
            for figure in figures:
                assert f" {figure} " in terminal_row, (criterion.id, figure, terminal_row)
                assert f"| {figure} |" in markdown_row, (criterion.id, figure, markdown_row)
            card = _card(page, f"{rs.rubric.id}:{criterion.id}")
            if cell.estimate is not None:
                estimate = cell.estimate
                assert f"<b>{fmt.number(cell.mean)}</b>" in card
                assert f"[{fmt.number(estimate.low)}, {fmt.number(estimate.high)}]" in card
                checked += 1
            if criterion.pass_at is not None:
                assert f'<dd class="share">{fmt.percent(cell.pass_share)}</dd>' in card
    assert checked >= 5
    assert "3.00 [1.11, 4.44]" in terminal and "| 3.00 [1.11, 4.44] | 50% |" in markdown
    headline = _card(page, "pacing:slow_down_responsiveness")
    assert "<b>3.00</b>" in headline and "[1.11, 4.44]" in headline and '<dd class="share">50%</dd>' in headline


def test_the_interval_is_the_95_percent_session_bootstrap(seed_run) -> None:  # noqa: F811
    run_dir, _ = seed_run
    pacing = next(rs for rs in summarize(run_dir).rubrics if rs.rubric.id == "pacing")
    cell = pacing.overall["slow_down_responsiveness"]
    by_session = {t: cells["slow_down_responsiveness"].scores for t, cells in pacing.by_transcript.items()}
    assert cell.estimate == cluster_bootstrap_mean(by_session, level=0.95)
    assert cell.estimate.sessions == 2 and cell.estimate.n == len(cell.scores)
    assert all(c.estimate is None for cells in pacing.by_transcript.values() for c in cells.values())
