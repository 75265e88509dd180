"""The dry run plans as the run plans, with the sessions on the run's shelf rather than in a list."""

from __future__ import annotations

import asyncio
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
