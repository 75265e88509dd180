"""`evaluator.run(...)` from a notebook leaves the same run folder as `evaluator run` in a shell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import evaluator
from evaluator.cli import main
from tests.conftest import SLOWING_SEED

VOLATILE = ("latency_s",)


def _judgments(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "judgments.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in VOLATILE} for row in rows]


@pytest.mark.usefixtures("no_llm_env")
def test_the_python_api_writes_what_the_command_writes(tmp_path: Path, repo: Path, capsys) -> None:
    rubric = repo / "rubrics" / "pacing.yaml"
    output = tmp_path / "results"
    assert (
        main(["run", str(SLOWING_SEED), "-r", str(rubric), "-o", str(output), "--run-id", "cli", "--no-progress"]) == 0
    )
    outcome = evaluator.run(
        transcripts=[SLOWING_SEED], rubrics=[rubric], output=output, run_id="py", show_progress=False
    )
    by_cli, by_api = output / "cli", output / "py"
    # The later run also holds its comparison with the earlier one (for the run index).
    assert (by_api / "compare-cli.html").is_file()
    assert sorted(p.name for p in by_api.iterdir() if p.name != "compare-cli.html") == sorted(
        p.name for p in by_cli.iterdir()
    )
    assert {"summary.md", "report.html", "judgments.jsonl", "manifest.json"} <= {p.name for p in by_api.iterdir()}
    assert _judgments(by_api) == _judgments(by_cli)
    summary_cli = (by_cli / "summary.md").read_text().replace("run cli", "run py").replace("Run cli", "Run py")
    assert (by_api / "summary.md").read_text() == summary_cli
    assert (
        outcome.ok and outcome.summary_path == by_api / "summary.md" and outcome.report_path == by_api / "report.html"
    )


def test_an_unknown_option_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="transcript"):
        evaluator.run(transcript=[SLOWING_SEED], output=tmp_path)
    assert not any(tmp_path.iterdir())
