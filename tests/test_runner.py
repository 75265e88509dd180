"""End to end on the offline rules judge: the seeds are judged as a clinician would expect."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from statistics import mean

import pytest

from evaluator.models import Judgment
from evaluator.runner import RunConfig, RunError, run
from evaluator.store import JUDGMENTS, load_judgments
from evaluator.transcripts import read_transcripts
from tests.conftest import IGNORING_SEED, SLOWING_SEED


def _run(tmp_path: Path, transcripts: list[Path], rubrics: list[Path], **kwargs) -> tuple[Path, list[Judgment]]:
    result = run(RunConfig(transcripts=transcripts, rubrics=rubrics, output=tmp_path / "results",
                           show_progress=False, **kwargs))
    return result.run_dir, load_judgments(result.run_dir)


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Judgment]]:
    from tests.conftest import REPO

    return _run(tmp_path_factory.mktemp("seeds"), [IGNORING_SEED, SLOWING_SEED], [REPO / "rubrics"])


def _requests(path: Path) -> set[int]:
    """Therapist turns answering a request to slow down, read off the text independently of the markers:
    in the seeds every request says "slow", and the one mere mention is "one slow breath"."""
    (transcript,) = read_transcripts(path)
    return {
        t.index
        for t in transcript.therapist_turns()
        if "slow" in (p := transcript.previous_patient_turn(t.index).text.lower()) and "slow breath" not in p
    }


def test_slow_down_criterion_applies_exactly_after_requests(seed_run) -> None:
    _, judgments = seed_run
    for path in (IGNORING_SEED, SLOWING_SEED):
        applicable = {
            j.turn_index
            for j in judgments
            if j.transcript_id == path.stem and j.criterion_id == "slow_down_responsiveness" and j.status == "ok"
        }
        assert applicable == _requests(path), path.name
    mention = [j for j in judgments if j.transcript_id == SLOWING_SEED.stem and j.criterion_id == "slow_down_responsiveness"
               and j.status == "not_applicable" and "slow_down_requested was judged 0" in j.rationale]
    assert len(mention) == 2  # "I'll try to take one slow breath", "I took a slow breath and I sent it"


def test_rules_judge_scores_the_ignoring_therapist_lower(seed_run) -> None:
    _, judgments = seed_run
    scores: dict[str, list[float]] = defaultdict(list)
    for j in judgments:
        if j.criterion_id == "slow_down_responsiveness" and j.status == "ok":
            scores[j.transcript_id].append(j.score)
    assert len(scores[IGNORING_SEED.stem]) >= 15 and len(scores[SLOWING_SEED.stem]) >= 10
    assert mean(scores[IGNORING_SEED.stem]) < mean(scores[SLOWING_SEED.stem])


def test_every_item_is_recorded_once_and_nothing_is_graded_without_a_rule(seed_run) -> None:
    run_dir, judgments = seed_run
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["complete"] is True
    assert len(judgments) == manifest["items_planned"] == sum(manifest["counts"].values())
    lines = (run_dir / JUDGMENTS).read_text().splitlines()
    assert len(lines) == len(judgments)
    no_check = [j for j in judgments if j.criterion_id in ("empathy", "autonomy_support")]
    assert no_check and all(j.status == "unscored" and j.unscored_reason == "no LLM judge configured" for j in no_check)
    assert manifest["judge"]["judge"] == "rules"
    assert manifest["counts"]["error"] == 0


def test_a_batch_with_one_bad_file_judges_the_others(tmp_path: Path, repo: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.txt").write_text(SLOWING_SEED.read_text())
    (folder / "bad.txt").write_text("Therapist: hello\n\nDoctor: who said that?\n")
    result = run(RunConfig(transcripts=[folder], rubrics=[repo / "rubrics" / "pacing.yaml"],
                           output=tmp_path / "results", show_progress=False))
    assert not result.ok
    assert [s.path for s in result.manifest.skipped_files] == [str(folder / "bad.txt")]
    assert "line 3" in result.manifest.skipped_files[0].error and "Doctor" in result.manifest.skipped_files[0].error
    assert {j.transcript_id for j in load_judgments(result.run_dir)} == {"good"}


def test_nothing_is_written_when_no_input_is_usable(tmp_path: Path, repo: Path, write) -> None:
    bad = write("only/bad.txt", "")
    with pytest.raises(RunError, match="nothing to evaluate"):
        run(RunConfig(transcripts=[bad], rubrics=[repo / "rubrics"], output=tmp_path / "results", show_progress=False))
    assert not (tmp_path / "results").exists()


def test_resume_after_a_kill_finishes_each_item_exactly_once(tmp_path: Path, repo: Path) -> None:
    run_dir, complete = _run(tmp_path, [SLOWING_SEED], [repo / "rubrics" / "pacing.yaml"])
    path = run_dir / JUDGMENTS
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 17])  # killed mid-line, half-way through
    kept = load_judgments(run_dir)
    assert 0 < len(kept) < len(complete)
    result = run(RunConfig(resume=run_dir, show_progress=False))
    after = load_judgments(result.run_dir)
    keys = [json.loads(line)["key"] for line in path.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == len(complete)
    assert sorted((j.key, j.status, j.score) for j in after) == sorted((j.key, j.status, j.score) for j in complete)
    assert result.manifest.complete


def test_resume_refuses_an_edited_rubric(tmp_path: Path, repo: Path) -> None:
    rubric = tmp_path / "pacing.yaml"
    rubric.write_text((repo / "rubrics" / "pacing.yaml").read_text())
    run_dir, _ = _run(tmp_path, [SLOWING_SEED], [rubric])
    rubric.write_text(rubric.read_text().replace("Ignores the request", "Disregards the request"))
    with pytest.raises(RunError, match="rubric 'pacing'.*changed since the run started"):
        run(RunConfig(resume=run_dir, show_progress=False))
