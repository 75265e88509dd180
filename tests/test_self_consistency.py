"""Repeats and logprobs shown: with `--samples N` the summary reports, per criterion, the share of items
whose samples all agree (self-consistency), folded means read as numbers, and with `--logprobs` the mean
of the logprob-weighted scores beside the mean, and each turn's weighted score in the report's viewer.

The LLM runs go over real HTTP to tests/fake_openai.py, whose replies mix in the request's seed, so the
samples of one item (seeds 0, 1, 2) can differ; the rules judge is deterministic, so never does.
"""

from __future__ import annotations

import io
import re
from collections import defaultdict
from pathlib import Path
from statistics import mean

import pytest
from rich.console import Console

from evaluator.analysis.summary import RunSummary, summarize
from evaluator.config import JudgeSettings, RunConfig
from evaluator.results import open_run, stream_items
from evaluator.runner import run
from evaluator.views.html import render_html
from evaluator.views.summary import distribution, print_summary, render_markdown
from tests.conftest import REPO, SLOWING_SEED
from tests.runs import LIKERT, make_rubric, sampled, write_run

PACING = REPO / "rubrics" / "pacing.yaml"


def _config(output: Path, judge: JudgeSettings, samples: int = 3) -> RunConfig:
    return RunConfig(
        transcripts=[SLOWING_SEED],
        rubrics=[PACING],
        output=output,
        judge=judge,
        samples=samples,
        show_progress=False,
        concurrency=16,
    )


@pytest.fixture(scope="module")
def llm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.fake_openai import FakeOpenAI

    with FakeOpenAI() as server:
        judge = JudgeSettings(
            kind="openai",
            model="fake-judge",
            base_url=server.url,
            cache_path=None,
            transport_attempts=10,
            logprobs=True,
        )
        return run(_config(tmp_path_factory.mktemp("llm"), judge)).run_dir


def _terminal(summary: RunSummary) -> str:
    buffer = io.StringIO()
    print_summary(summary, Console(file=buffer, width=250), per_transcript=False)
    return buffer.getvalue()


def _unanimous_by_hand(run_dir: Path) -> dict[str, tuple[int, int]]:
    """Per criterion, (items whose scored samples all agree, items with two or more scored samples),
    counted from the raw judgments rather than from the folded records."""
    verdicts: dict[tuple[str, str, int], list[object]] = defaultdict(list)
    for j in open_run(run_dir).judgments:
        if j.status == "ok":
            verdicts[(j.criterion_id, j.transcript_id, j.turn_index)].append(
                j.label if j.label is not None else j.score
            )
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (criterion_id, _, _), given in verdicts.items():
        if len(given) > 1:
            counts[criterion_id][0] += len(set(given)) == 1
            counts[criterion_id][1] += 1
    return {cid: (agree, total) for cid, (agree, total) in counts.items()}


def test_self_consistency_counts_items_whose_samples_all_agree(llm_run: Path) -> None:
    summary = summarize(llm_run)
    (rs,) = summary.rubrics
    expected = _unanimous_by_hand(llm_run)
    assert set(expected) == {cid for cid, cell in rs.overall.items() if cell.counts["ok"]}
    for cid, (agree, total) in expected.items():
        cell = rs.overall[cid]
        assert (cell.unanimous, cell.repeated) == (agree, total), cid
        assert cell.self_consistency == pytest.approx(agree / total)
    # the fake judge's samples differ (each has its own seed), so no criterion is perfectly self-consistent
    assert all(cell.self_consistency < 1 for cell in rs.overall.values() if cell.repeated)
    assert any(cell.self_consistency > 0 for cell in rs.overall.values() if cell.repeated)


def test_self_consistency_and_weighted_means_are_shown(llm_run: Path) -> None:
    summary = summarize(llm_run)
    (rs,) = summary.rubrics
    terminal, markdown = _terminal(summary), render_markdown(summary)
    for text in (terminal, markdown):
        assert "self-consistent" in text and "3 samples all gave the same verdict" in text
        assert "weighted mean" in text
    assert "| weighted mean | self-consistent |" in markdown
    for cid, cell in rs.overall.items():
        if not cell.repeated:
            continue
        line = next(line for line in terminal.splitlines() if f" {cid} " in line)
        assert f"{cell.self_consistency:.0%}" in line
        weighted = [item.weighted_score for item in stream_items(summary.run) if item.criterion_id == cid]
        recorded = [w for w in weighted if w is not None]
        if recorded:
            assert cell.weighted_mean == pytest.approx(mean(recorded))
            assert f"{cell.weighted_mean:.2f}" in line
        else:
            assert cell.weighted_mean is None


def test_the_turn_viewer_shows_each_weighted_score(llm_run: Path) -> None:
    summary = summarize(llm_run)
    page = render_html(llm_run, summary)
    weighted = [j for j in summary.judgments if j.weighted_score is not None]
    assert weighted
    shown = set(re.findall(r"logprob-weighted score (\d+\.\d\d)", page))
    assert {f"{j.weighted_score:.2f}" for j in weighted} <= shown


def test_the_rules_judge_is_always_self_consistent(tmp_path: Path) -> None:
    run_dir = run(_config(tmp_path, JudgeSettings(kind="rules", cache_path=None))).run_dir
    summary = summarize(run_dir)
    (rs,) = summary.rubrics
    scored = [cell for cell in rs.overall.values() if cell.counts["ok"]]
    assert scored and all(cell.repeated == cell.counts["ok"] and cell.self_consistency == 1.0 for cell in scored)
    terminal = _terminal(summary)
    assert "self-consistent" in terminal and "100%" in terminal
    assert "weighted mean" not in terminal  # nothing recorded: no column of dashes


def test_single_samples_show_no_self_consistency(tmp_path: Path) -> None:
    run_dir = run(_config(tmp_path, JudgeSettings(kind="rules", cache_path=None), samples=1)).run_dir
    summary = summarize(run_dir)
    assert all(cell.repeated == 0 and cell.self_consistency is None for cell in summary.rubrics[0].overall.values())
    assert "self-consistent" not in _terminal(summary) + render_markdown(summary)


def test_folded_means_read_as_numbers(tmp_path: Path) -> None:
    judgments = sampled("t1", 1, [2, 3, 3]) + sampled("t1", 3, [4, 4, 4]) + sampled("t2", 1, [1, 2, 2])
    run_dir = write_run(tmp_path, "folded", make_rubric(LIKERT), judgments, samples=3)
    summary = summarize(run_dir)
    cell = summary.rubrics[0].overall[LIKERT["id"]]
    assert distribution(cell) == "1.67:1 2.67:1 4:1"
    assert (cell.unanimous, cell.repeated) == (1, 3)
    markdown = render_markdown(summary)
    assert "1.67:1 2.67:1 4:1" in markdown and "33%" in markdown
    assert not re.search(r"\d\.\d{3,}", markdown + _terminal(summary))
