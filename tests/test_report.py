"""Summaries: every status counted, means and session figures computed from the turn judgments."""

from __future__ import annotations

from statistics import mean

from evaluator.report import render_markdown, summarize
from evaluator.store import load_judgments
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
