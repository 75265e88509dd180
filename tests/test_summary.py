"""Summaries: every status counted, means and session figures computed from the turn judgments."""

from __future__ import annotations

import io
import re
from pathlib import Path
from statistics import mean

import pytest
from rich.console import Console

from evaluator.analysis.stats import Estimate, cluster_bootstrap_mean
from evaluator.analysis.summary import summarize
from evaluator.config import JudgeSettings, RunConfig
from evaluator.models import Criterion, Subset
from evaluator.runner import run
from evaluator.store import load_judgments
from evaluator.views import format as fmt
from evaluator.views.html import render_html
from evaluator.views.summary import distribution, print_summary, render_markdown
from tests.conftest import IGNORING_SEED, REPO, SLOWING_SEED
from tests.runs import BINARY, LIKERT, QUESTIONS, judgment, make_rubric, sampled, write_run
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


def test_user_text_in_summary_md_is_shown_not_run(judge_session) -> None:
    run_dir = judge_session({"session_id": "<img src=x onerror=alert(1)>|x"})
    text = render_markdown(summarize(run_dir))
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


# --- repeated samples: the summary counts items, each folded over its samples -----------------------

# Three samples of each item (written in sample order) and what folding them gives: the mean for a
# likert score, the majority for yes/no. Sample 0 and the last sample both differ from the folded
# verdict, so a summary that counted samples, or kept any one of them, shows other figures.
SAMPLED_SCORES = {("t1", 1): [2, 5, 5], ("t1", 3): [5, 2, 2], ("t2", 1): [1, 1, 1]}
FOLDED_SCORES = {("t1", 1): 4.0, ("t1", 3): 3.0, ("t2", 1): 1.0, ("t2", 3): 5.0}  # t2/3: one ok sample of 3
SAMPLED_VOTES = {("t1", 1): [1, 0, 0], ("t1", 3): [0, 1, 1], ("t2", 1): [1, 1, 0], ("t2", 3): [1, 0, 0]}
FOLDED_VOTES = {("t1", 1): 0, ("t1", 3): 1, ("t2", 1): 1, ("t2", 3): 0}


def _sampled_run(tmp_path: Path) -> Path:
    judgments = [j for (t, turn), scores in SAMPLED_SCORES.items() for j in sampled(t, turn, scores)]
    judgments += [
        judgment("t2", 3, 5.0, sample=0),
        judgment("t2", 3, None, sample=1, status="unscored"),
        judgment("t2", 3, None, sample=2, status="unscored"),
    ]
    judgments += [judgment("t2", 5, None, sample=s, status="unscored") for s in range(3)]  # never scored
    judgments += [
        j for (t, turn), votes in SAMPLED_VOTES.items() for j in sampled(t, turn, votes, criterion=BINARY["id"])
    ]
    return write_run(tmp_path, "sampled", make_rubric(LIKERT, BINARY), judgments, samples=3)


def test_with_samples_the_summary_counts_and_averages_folded_items(tmp_path: Path) -> None:
    run_dir = _sampled_run(tmp_path)
    summary = summarize(run_dir)
    (rs,) = summary.rubrics
    likert = rs.overall[LIKERT["id"]]
    assert dict(likert.counts) == {"ok": 4, "unscored": 1}  # items, not the 15 samples
    assert likert.mean == pytest.approx(mean(FOLDED_SCORES.values()))  # 3.25; the ok samples average 3.2
    assert likert.pass_share == 0.5  # folded 4.0 and 5.0 meet pass_at 4
    assert distribution(likert) == "1:1 3:1 4:1 5:1"
    t1, t2 = rs.by_transcript["t1"][LIKERT["id"]], rs.by_transcript["t2"][LIKERT["id"]]
    assert t1.mean == pytest.approx(3.5) and t1.pass_share == 0.5
    assert t2.mean == pytest.approx(3.0) and t2.pass_share == 0.5 and t2.counts["unscored"] == 1
    votes = rs.overall[BINARY["id"]]
    assert votes.counts["ok"] == 4 and votes.mean == pytest.approx(mean(FOLDED_VOTES.values()))
    assert distribution(votes) == "yes 2 / no 2"
    assert summary.counts == {"ok": 8, "unscored": 1}
    text = render_markdown(summary)
    assert "Items, each folded over 3 samples (auto; see aggregates.jsonl): 8 ok, 0 not_applicable, 1 unscored" in text
    row = next(line for line in text.splitlines() if line.startswith("| Honours the request"))
    assert row.startswith("| Honours the request (`honours_request`) | ↑ | 4 | 0 | 1 | 0 | 3.25 [")
    assert row.endswith(" | 50% | 1:1 3:1 4:1 5:1 | 33% |")  # then self-consistent: one of three items unanimous
    assert "| t1: `honours_request` | ↑ | 2 | 0 | 0 | 0 | 3.50 | 50% |" in text


def test_with_samples_the_share_meeting_pass_at_is_over_folded_items(tmp_path: Path) -> None:
    """Two of three samples say 5 but the item's folded score is 4 - 1/3: the item does not meet 4."""
    judgments = sampled("t1", 1, [5, 5, 2]) + sampled("t1", 3, [1, 4, 4]) + sampled("t2", 1, [4, 4, 5])
    summary = summarize(write_run(tmp_path, "share", make_rubric(LIKERT), judgments, samples=3))
    cell = summary.rubrics[0].overall[LIKERT["id"]]
    folded = [12 / 3, 9 / 3, 13 / 3]
    assert cell.counts["ok"] == 3 and cell.mean == pytest.approx(mean(folded))
    assert cell.pass_share == pytest.approx(2 / 3)  # 4.0 and 4.33 meet 4, 3.0 does not; 6 of 9 samples do too
    assert cell.scores == pytest.approx(folded)


# --- pass_at in the direction the criterion calls better ------------------------------------------------

# Questions asked, better: lower, pass_at 1: a turn asking at most one question meets the criterion.
QUESTION_COUNTS = {("t1", 1): 0, ("t1", 3): 0, ("t1", 5): 3, ("t2", 1): 1, ("t2", 3): 0}  # 4 of 5 ask <= 1


def _questions_run(tmp_path: Path) -> Path:
    judgments = [judgment(t, turn, n, criterion=QUESTIONS["id"]) for (t, turn), n in QUESTION_COUNTS.items()]
    return write_run(tmp_path, "questions", make_rubric(QUESTIONS), judgments)


def test_a_lower_is_better_criterion_is_met_at_or_below_pass_at(tmp_path: Path) -> None:
    summary = summarize(_questions_run(tmp_path))
    (rs,) = summary.rubrics
    cell = rs.overall[QUESTIONS["id"]]
    assert cell.pass_share == pytest.approx(4 / 5)  # 0, 0, 1, 0 meet it (1 itself included); 3 does not
    assert rs.by_transcript["t1"][QUESTIONS["id"]].pass_share == pytest.approx(2 / 3)
    assert rs.by_transcript["t2"][QUESTIONS["id"]].pass_share == 1.0
    row = next(line for line in render_markdown(summary).splitlines() if line.startswith("| Questions asked"))
    assert row.startswith("| Questions asked (`questions`) | ↓ | 5 | 0 | 0 | 0 | 0.80 [")
    assert row.endswith(" | 80% | 0:3 1:1 3:1 |")
    console = Console(record=True, width=200)
    print_summary(summary, console)
    printed = console.export_text()
    assert re.search(r"↓ questions\s*│\s*5\s*│\s*0\s*│\s*0\s*│\s*0\s*│\s*0\.80(?: \[[^]]*\])?\s*│\s*80%", printed)
    assert "1.00 (67%)" in printed and "0.50 (100%)" in printed


def test_meets_follows_the_better_direction() -> None:
    lower = Criterion.model_validate(QUESTIONS)
    higher = Criterion.model_validate(LIKERT)
    assert [lower.meets(n) for n in (0, 1, 2)] == [True, True, False]
    assert [higher.meets(s) for s in (3, 4, 5)] == [False, True, True]


# --- end to end: an LLM judge sampled three times -------------------------------------------------------

SAMPLED_RUBRIC = """\
id: sampled
title: Sampled
criteria:
  - id: honours_request
    name: Honours the request
    question: Does this therapist turn honour what the patient asked for?
    pass_at: 4
    scale:
      type: likert
      min: 1
      max: 5
      anchors: {1: ignores it, 3: in words only, 5: honours it}
"""


def _session(topic: str) -> str:
    return "\n\n".join(
        f"Patient: About {topic}, part {i}: can we slow down a little?\n\nTherapist: Let us look at {topic}, step {i}."
        for i in range(4)
    )


def test_an_llm_judge_sampled_three_times_is_summarised_over_folded_items(tmp_path: Path, fake_server) -> None:
    from evaluator.config import JudgeSettings, RunConfig
    from evaluator.runner import run

    server = fake_server()
    transcripts = []
    for topic in ("sleep", "work", "family"):
        transcripts.append(tmp_path / f"{topic}.txt")
        transcripts[-1].write_text(_session(topic), encoding="utf-8")
    rubric = tmp_path / "sampled.yaml"
    rubric.write_text(SAMPLED_RUBRIC, encoding="utf-8")
    judge = JudgeSettings(kind="openai", base_url=server.url, model="fake-judge", cache_path=None)
    config = RunConfig(
        transcripts=transcripts,
        rubrics=[rubric],
        output=tmp_path / "results",
        judge=judge,
        samples=3,
        show_progress=False,
    )
    run_dir = run(config).run_dir

    samples: dict[tuple[str, int], list[float]] = {}
    raw_ok: list[float] = []
    for j in load_judgments(run_dir):
        samples.setdefault((j.transcript_id, j.turn_index), [])
        if j.status == "ok":
            samples[j.transcript_id, j.turn_index].append(j.score)
            raw_ok.append(j.score)
    assert len(samples) == 12 and sorted({r.body["seed"] for r in server.received}) == [0, 1, 2]
    assert sum(len(set(s)) > 1 for s in samples.values()) >= 2, "some items' samples must differ"
    folded = {item: mean(scores) for item, scores in samples.items() if scores}  # mean over the ok samples
    share = sum(v >= 4 for v in folded.values()) / len(folded)
    assert share != pytest.approx(sum(s >= 4 for s in raw_ok) / len(raw_ok)), "items and samples must differ here"

    summary = summarize(run_dir)
    cell = summary.rubrics[0].overall["honours_request"]
    assert cell.counts["ok"] == len(folded) and sum(cell.counts.values()) == 12
    assert cell.mean == pytest.approx(mean(folded.values()))
    assert cell.pass_share == pytest.approx(share)
    for topic in ("sleep", "work", "family"):
        mine = [v for (t, _), v in folded.items() if t == topic]
        assert summary.rubrics[0].by_transcript[topic]["honours_request"].mean == (
            pytest.approx(mean(mine)) if mine else None
        )


def test_a_criterion_subset_summarises_only_the_planned_criteria(tmp_path: Path) -> None:
    """`--criterion slow_down_responsiveness` judges it and the criterion it depends on; the terminal,
    summary.md and report.html list those two, not the rubric's other criteria as rows of zeros."""
    config = RunConfig(
        transcripts=[IGNORING_SEED, SLOWING_SEED],
        rubrics=[REPO / "rubrics"],
        output=tmp_path,
        judge=JudgeSettings(kind="rules"),
        subset=Subset(criteria=["slow_down_responsiveness"]),
        show_progress=False,
    )
    run_dir = run(config).run_dir
    summary = summarize(run_dir)
    planned = ["slow_down_requested", "slow_down_responsiveness"]
    assert [(rs.rubric.id, [c.id for c in rs.rubric.criteria]) for rs in summary.rubrics] == [("pacing", planned)]
    assert all(rs.overall[cid].counts["ok"] for rs in summary.rubrics for cid in planned)
    buffer = io.StringIO()
    print_summary(summary, Console(file=buffer, width=200))
    markdown, page = render_markdown(summary), render_html(run_dir, summary)
    for text in (buffer.getvalue(), markdown):
        assert "Subset run" in text and all(cid in text for cid in planned)
        assert "acknowledges_request" not in text and "questions_asked" not in text
    assert re.findall(r'data-card="([^"]+)"', page) == [f"pacing:{cid}" for cid in planned]
