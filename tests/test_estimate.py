"""The dry run plans as the run plans, with the sessions on the run's shelf rather than in a list."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from evaluator.config import RunConfig
from evaluator.estimate import dry_run
from evaluator.runner import run
from evaluator.store import load_judgments
from tests.conftest import IGNORING_SEED, SLOWING_SEED


def test_a_dry_run_counts_what_the_run_judges_reading_sessions_from_the_shelf(
    tmp_path: Path, repo: Path, shelf_parses
) -> None:
    """Each session is parsed from the shelf once to check and count the plan and once per rubric, as
    the run does (a dry run of a million judgments held every session: 549 MB against 60 MB now)."""
    rubrics = [repo / "rubrics" / "pacing.yaml", repo / "rubrics" / "act_fidelity.yaml"]
    config = RunConfig(
        transcripts=[IGNORING_SEED, SLOWING_SEED], rubrics=rubrics, output=tmp_path / "out", show_progress=False
    )
    estimate = asyncio.run(dry_run(config))
    assert estimate.transcripts == 2
    assert shelf_parses == {"000_76910fef4a2e608d": 1 + len(rubrics), "004_d8361cbb940345fc": 1 + len(rubrics)}
    judged = load_judgments(run(config).run_dir)
    assert estimate.total.items == len(judged)


def test_a_dry_run_counts_uncapped_replies_at_the_ceiling_a_run_reserves(tmp_path: Path, repo: Path) -> None:
    """With --param max_tokens=null replies go uncapped: the dry run counts each at the ceiling --max-cost
    reserves (the figure the judge itself estimates), and says that replies are uncapped."""
    from io import StringIO

    from rich.console import Console

    from evaluator.config import JudgeSettings
    from evaluator.estimate import print_dry_run
    from evaluator.judges.reserve import UNCAPPED_REPLY_TOKENS

    judge = JudgeSettings(kind="openai", model="gpt-4o-mini", base_url="http://127.0.0.1:9/v1")
    config = RunConfig(
        transcripts=[SLOWING_SEED], rubrics=[repo / "rubrics" / "pacing.yaml"], output=tmp_path, judge=judge
    )
    capped = asyncio.run(dry_run(config))
    uncapped = asyncio.run(dry_run(replace(config, judge=replace(judge, parameters={"max_tokens": None}))))
    calls = uncapped.total.calls
    assert calls and capped.uncapped_calls == 0 and uncapped.uncapped_calls == calls
    assert uncapped.total.usage.completion_tokens == calls * UNCAPPED_REPLY_TOKENS
    assert capped.total.usage.completion_tokens < calls * 1000
    assert uncapped.total.usage.prompt_tokens == capped.total.usage.prompt_tokens
    assert uncapped.cost_usd is not None and capped.cost_usd is not None and uncapped.cost_usd > capped.cost_usd
    out = StringIO()
    print_dry_run(uncapped, Console(file=out, width=200))
    assert f"Replies go uncapped in {calls:,} call(s)" in out.getvalue()
    assert f"{UNCAPPED_REPLY_TOKENS:,} completion tokens" in out.getvalue()
