"""What `evaluator run` does, callable from a notebook: judge, then write the summary and the report
beside the judgments, so `evaluator.run(...)` leaves the same run folder as the command."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console

from evaluator.analysis.summary import RunSummary
from evaluator.config import RunConfig
from evaluator.errors import EvaluatorError
from evaluator.runner import RunResult
from evaluator.runner import run_async as judge_async
from evaluator.views.html import write_html_report
from evaluator.views.runs import write_run_index
from evaluator.views.summary import write_summary


@dataclass
class RunOutcome(RunResult):
    """A finished run and the files written from it."""

    summary: RunSummary
    summary_path: Path
    report_path: Path | None
    """None when the run was configured without the HTML report (RunConfig.write_report)."""


async def run_async(config: RunConfig, console: Console | None = None) -> RunOutcome:
    """Judge (see RunConfig), then write summary.md and (unless write_report is off) report.html."""
    result = await judge_async(config, console)
    summary, summary_path = write_summary(result.run_dir)
    report_path = write_html_report(result.run_dir, summary) if config.write_report else None
    _write_index(result.run_dir, console)
    return RunOutcome(result.run_dir, result.manifest, result.skipped, summary, summary_path, report_path)


def _write_index(run_dir: Path, console: Console | None) -> None:
    """Rewrite results/index.html; a run is finished and saved whatever happens to the index."""
    try:
        write_run_index(run_dir.parent, run_dir)
    except (EvaluatorError, OSError, ValueError) as exc:
        (console or Console(stderr=True)).print(f"run index not written: {exc}", markup=False, highlight=False)


def run(config: RunConfig | None = None, **overrides: object) -> RunOutcome:
    """`evaluator.run(transcripts=[...], rubrics=[...])` from a script or notebook."""
    config = config or RunConfig()
    unknown = sorted(name for name in overrides if not hasattr(config, name))
    if unknown:
        raise TypeError(f"unknown run option(s) {unknown}; see evaluator.RunConfig")
    return asyncio.run(run_async(replace(config, **overrides)))  # type: ignore[arg-type]
