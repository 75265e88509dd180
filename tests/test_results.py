"""A run folder read once: older run folders still read, with today's keys; newer ones are refused by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from evaluator.analysis.summary import summarize
from evaluator.config import RunConfig
from evaluator.models import MANIFEST_FORMAT
from evaluator.results import open_run
from evaluator.runner import run
from evaluator.store import JUDGMENTS, MANIFEST, TRANSCRIPTS, ResultsError
from tests.conftest import SLOWING_SEED


@pytest.fixture
def run_dir(tmp_path: Path, repo: Path, no_llm_env: None) -> Path:
    config = RunConfig(
        transcripts=[SLOWING_SEED], rubrics=[repo / "rubrics" / "pacing.yaml"], output=tmp_path, show_progress=False
    )
    return run(config).run_dir


def _as_written_in_november(run_dir: Path, old: Path) -> Path:
    """The same run as format 1 wrote it: no format_version, no transcript hashes or snapshot, keys
    without the rubric."""
    shutil.copytree(run_dir, old)
    manifest = json.loads((old / MANIFEST).read_text())
    del manifest["format_version"], manifest["transcript_hashes"]
    (old / MANIFEST).write_text(json.dumps(manifest))
    (old / TRANSCRIPTS).unlink()
    lines = []
    for line in (old / JUDGMENTS).read_text().splitlines():
        record = json.loads(line)
        record["key"] = record["key"].split("/", 1)[1]
        lines.append(json.dumps(record))
    (old / JUDGMENTS).write_text("\n".join(lines) + "\n")
    return old


def test_a_new_run_writes_the_current_format(run_dir: Path) -> None:
    assert json.loads((run_dir / MANIFEST).read_text())["format_version"] == MANIFEST_FORMAT


def test_an_older_run_folder_reads_as_a_new_one(run_dir: Path, tmp_path: Path) -> None:
    old = _as_written_in_november(run_dir, tmp_path / "old")
    new_data, old_data = open_run(run_dir), open_run(old)
    assert old_data.manifest.format_version == 1 and old_data.transcripts is None
    assert [j.key for j in old_data.judgments] == [j.key for j in new_data.judgments]
    assert old_data.rubrics == new_data.rubrics
    assert summarize(old).rubrics[0].overall.keys() == summarize(run_dir).rubrics[0].overall.keys()


def test_a_run_folder_from_a_newer_evaluator_is_refused_by_name(run_dir: Path) -> None:
    manifest = json.loads((run_dir / MANIFEST).read_text())
    manifest["format_version"] = MANIFEST_FORMAT + 1
    (run_dir / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ResultsError, match="newer evaluator.*upgrade"):
        open_run(run_dir)
