"""The run index: results/index.html and `evaluator runs` list every run with its counts and links,
survive a broken folder, and escape whatever a folder or model name holds."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote

from rich.console import Console

import evaluator
from evaluator.analysis.runs import list_runs
from evaluator.cli import main
from evaluator.config import JudgeSettings, RunConfig
from evaluator.store import MANIFEST
from evaluator.views.runs import print_runs, write_run_index
from tests.conftest import REPO, SLOWING_SEED

PACING = REPO / "rubrics" / "pacing.yaml"


def _run(output: Path, run_id: str) -> Path:
    config = RunConfig(
        transcripts=[SLOWING_SEED],
        rubrics=[PACING],
        output=output,
        judge=JudgeSettings(kind="rules"),
        run_id=run_id,
        show_progress=False,
    )
    return evaluator.run(config).run_dir


def test_two_runs_are_listed_with_their_counts_and_links_that_exist(tmp_path: Path, capsys) -> None:
    results = tmp_path / "results"
    first, second = _run(results, "first"), _run(results, "second")
    (results / "broken").mkdir()
    (results / "half").mkdir()
    (results / "half" / MANIFEST).write_text("{not json")
    index = results / "index.html"
    assert index.is_file(), "every run rewrites the index"
    write_run_index(results)  # the broken folders came after the runs
    page = index.read_text()
    counts = json.loads((second / MANIFEST).read_text())["counts"]
    for run_dir in (first, second):
        assert f">{run_dir.name}</a>" in page
    assert f'<td class="num">{counts["ok"]}</td>' in page
    links = re.findall(r'href="([^"]+)"', page)
    assert "second/report.html" in links and "first/report.html" in links
    assert "second/compare-first.html" in links
    for link in links:
        assert (results / unquote(link)).is_file(), link
    assert "Run second compared with first" in (second / "compare-first.html").read_text()
    assert page.index(">second</a>") < page.index(">first</a>"), "newest first"
    assert "unreadable: no manifest.json" in page and "unreadable: ResultsError" in page

    assert main(["runs", "-o", str(results)]) == 0
    out = capsys.readouterr().out
    assert out.index("second") < out.index("first ")
    assert f"ok {counts['ok']}" in out
    assert "broken  unreadable: no manifest.json" in out
    assert "vs first (pacing)" in out


def test_user_text_is_escaped_in_the_index(tmp_path: Path) -> None:
    results = tmp_path / "results"
    run_dir = _run(results, "plain")
    manifest = json.loads((run_dir / MANIFEST).read_text())
    manifest["run_id"] = "<script>alert(1)</script>"
    manifest["judge"] = {"judge": "openai", "model": "<img src=x onerror=alert(2)>"}
    hostile = results / "x&<b>y"
    hostile.mkdir()
    (hostile / MANIFEST).write_text(json.dumps(manifest))
    page = write_run_index(results).read_text()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "<b>y" not in page and "x&amp;&lt;b&gt;y" in page


def test_an_empty_or_missing_results_folder_lists_nothing(tmp_path: Path) -> None:
    console = Console(record=True, width=80)
    print_runs(list_runs(tmp_path / "nothing"), console)
    assert "no runs yet" in " ".join(console.export_text().split())
