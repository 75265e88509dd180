"""End to end on the offline rules judge: the seeds are judged as a clinician would expect."""

from __future__ import annotations

import gc
import json
import shutil
import subprocess
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from statistics import mean
from typing import Callable

import pytest

from evaluator.analysis.summary import summarize
from evaluator.config import JudgeSettings, RunConfig
from evaluator.judges import base as judge_base
from evaluator.judges.openai import OVER_BUDGET
from evaluator.models import Judgment, Transcript
from evaluator.runner import RunError, run
from evaluator.store import (
    JUDGMENTS,
    TRANSCRIPTS,
    JudgmentWriter,
    ResultsError,
    RunLocked,
    load_judgments,
    read_transcript_snapshot,
)
from evaluator.transcripts import read_all, read_transcripts
from evaluator.views.summary import render_markdown
from tests.conftest import IGNORING_SEED, SLOWING_SEED


def _run(tmp_path: Path, transcripts: list[Path], rubrics: list[Path], **kwargs) -> tuple[Path, list[Judgment]]:
    result = run(
        RunConfig(transcripts=transcripts, rubrics=rubrics, output=tmp_path / "results", show_progress=False, **kwargs)
    )
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
    mention = [
        j
        for j in judgments
        if j.transcript_id == SLOWING_SEED.stem
        and j.criterion_id == "slow_down_responsiveness"
        and j.status == "not_applicable"
        and "slow_down_requested was judged 0" in j.rationale
    ]
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


def test_a_run_leaves_the_garbage_collector_as_it_found_it(tmp_path: Path, repo: Path) -> None:
    """Judging eases the collector; a notebook calling evaluator.run must get its own settings back."""
    before = gc.get_threshold()
    _run(tmp_path, [IGNORING_SEED], [repo / "rubrics" / "pacing.yaml"])
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def _count_while_writing(monkeypatch, every: int, count: Callable[[], int]) -> list[int]:
    """`count()` at every `every`-th judgment the run writes: what a run holds while it goes."""
    counts: list[int] = []
    append = JudgmentWriter.append

    def counting_append(writer: JudgmentWriter, judgment: Judgment) -> None:
        append(writer, judgment)
        written = getattr(writer, "written", 0) + 1
        writer.written = written  # type: ignore[attr-defined]
        if written % every == 0:
            counts.append(count())

    monkeypatch.setattr(JudgmentWriter, "append", counting_append)
    return counts


def test_the_runner_holds_no_judgment_it_has_written(tmp_path: Path, repo: Path, monkeypatch) -> None:
    """Every judgment is written and dropped (a kept one costs about 4 KB: 4 GB at a million), and an
    item's samples only until they are all in: the judgments alive while writing stay a handful, not
    one per judgment so far. Counted by the garbage collector at every 100th judgment written."""
    alive = _count_while_writing(monkeypatch, 100, lambda: sum(isinstance(o, Judgment) for o in gc.get_objects()))
    _, judgments = _run(tmp_path, [IGNORING_SEED], [repo / "rubrics"], samples=3)
    assert len(judgments) > 1000 and len(alive) >= 10
    assert max(alive) < 60, alive


def test_the_runner_holds_a_few_transcripts_at_a_time_and_parses_each_a_few_times(
    tmp_path: Path, repo: Path, monkeypatch, shelf_parses
) -> None:
    """A run keeps its transcripts on disk (transcript_shelf): those alive while judging are the ones
    the workers are on, not every session (about 1.2 KB a turn: 480 MB at a million judgments). Each is
    parsed once to check and count the plan and once per rubric to judge it. Counted by the garbage
    collector at every 25th judgment, with nothing frozen out of its sight (the run freezes what exists
    when judging starts, the transcripts among it), leaving out those the judges' evidence check keeps
    in its cache of the last 256 (judges/base.py: bounded, whatever the size of the run)."""
    folder = tmp_path / "in"
    folder.mkdir()
    for n in range(12):
        (folder / f"s{n:02d}.txt").write_text((IGNORING_SEED, SLOWING_SEED)[n % 2].read_text())
    monkeypatch.setattr(gc, "freeze", lambda: None)

    def transcripts_alive() -> int:
        cached = {id(entry[0]) for entry in judge_base._HAYSTACKS.values()}
        return sum(isinstance(o, Transcript) and id(o) not in cached for o in gc.get_objects())

    gc.collect()  # what earlier tests left in reference cycles is theirs, not this run's
    alive = _count_while_writing(monkeypatch, 25, transcripts_alive)
    rubrics = [repo / "rubrics" / "pacing.yaml", repo / "rubrics" / "act_fidelity.yaml"]
    run_dir, judgments = _run(tmp_path, [folder], rubrics, concurrency=4)
    assert len(judgments) > 1000 and len(alive) >= 40
    assert max(alive) <= 4 + 2, alive
    assert shelf_parses == {f"s{n:02d}": 1 + len(rubrics) for n in range(12)}
    listed, _ = read_all([folder])
    snapshot = (run_dir / TRANSCRIPTS).read_text(encoding="utf-8")
    assert snapshot == "".join(t.model_dump_json() + "\n" for t in listed)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["transcript_hashes"] == {t.id: t.content_hash() for t in listed}


def test_a_batch_with_one_bad_file_judges_the_others(tmp_path: Path, repo: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.txt").write_text(SLOWING_SEED.read_text())
    (folder / "bad.txt").write_text("Therapist: hello\n\nDoctor: who said that?\n")
    result = run(
        RunConfig(
            transcripts=[folder],
            rubrics=[repo / "rubrics" / "pacing.yaml"],
            output=tmp_path / "results",
            show_progress=False,
        )
    )
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


def test_two_rubrics_with_one_criterion_id_are_both_judged_in_full(tmp_path: Path, repo: Path) -> None:
    pacing = (repo / "rubrics" / "pacing.yaml").read_text()
    for name in ("a", "b"):
        (tmp_path / "rubrics").mkdir(exist_ok=True)
        (tmp_path / "rubrics" / f"{name}.yaml").write_text(pacing.replace("id: pacing", f"id: pacing_{name}", 1))
    run_dir, judgments = _run(tmp_path, [SLOWING_SEED], [tmp_path / "rubrics"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert len(judgments) == manifest["items_planned"] == sum(manifest["counts"].values())
    by_rubric = defaultdict(list)
    for j in judgments:
        by_rubric[j.rubric_id].append((j.transcript_id, j.turn_index, j.criterion_id, j.status, j.score))
    assert set(by_rubric) == {"pacing_a", "pacing_b"}
    assert sorted(by_rubric["pacing_a"]) == sorted(by_rubric["pacing_b"])
    assert all(j.key.startswith(f"{j.rubric_id}/") for j in judgments)


def test_a_run_folder_from_before_rubric_keys_resumes_without_judging_twice(tmp_path: Path, repo: Path) -> None:
    run_dir, complete = _run(tmp_path, [SLOWING_SEED], [repo / "rubrics" / "pacing.yaml"])
    path = run_dir / JUDGMENTS
    legacy = []
    for line in path.read_text().splitlines()[: len(complete) // 2]:
        record = json.loads(line)
        record["key"] = record["key"].split("/", 1)[1]  # transcript/turn/criterion/sample, as written before
        legacy.append(json.dumps(record))
    path.write_text("\n".join(legacy) + "\n")
    result = run(RunConfig(resume=run_dir, show_progress=False))
    keys = [j.key for j in load_judgments(result.run_dir)]
    assert len(keys) == len(set(keys)) == len(complete)
    assert len(path.read_text().splitlines()) == len(complete)


def test_resume_refuses_changed_transcripts_and_names_them(tmp_path: Path, repo: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.txt").write_text(SLOWING_SEED.read_text())
    (folder / "b.txt").write_text(IGNORING_SEED.read_text())
    run_dir, _ = _run(tmp_path, [folder], [repo / "rubrics" / "pacing.yaml"])
    (folder / "b.txt").write_text(IGNORING_SEED.read_text().replace("slow", "fast", 1))
    (folder / "c.txt").write_text(SLOWING_SEED.read_text())  # not part of the run: never read on resume
    with pytest.raises(RunError, match="transcripts changed") as refused:
        run(RunConfig(resume=run_dir, show_progress=False))
    assert f"b ({folder / 'b.txt'}) changed" in str(refused.value)
    assert "a (" not in str(refused.value) and "c (" not in str(refused.value)
    (folder / "b.txt").write_text(IGNORING_SEED.read_text().replace("Therapist:", "Patient:", 1))
    with pytest.raises(RunError, match="b .* changed"):
        run(RunConfig(resume=run_dir, show_progress=False))


def test_a_moved_or_rewrapped_transcript_still_resumes(tmp_path: Path, repo: Path) -> None:
    """Only what a judge could see counts: blank lines that move turns to other lines change nothing."""
    source = tmp_path / "s.txt"
    source.write_text(SLOWING_SEED.read_text())
    run_dir, complete = _run(tmp_path, [source], [repo / "rubrics" / "pacing.yaml"])
    source.write_text("\n" + SLOWING_SEED.read_text().replace("\n\n", "\n\n\n"))
    result = run(RunConfig(resume=run_dir, show_progress=False))
    assert result.manifest.complete and len(load_judgments(run_dir)) == len(complete)


def test_the_run_keeps_a_snapshot_of_the_transcripts_it_judged(tmp_path: Path, repo: Path) -> None:
    source = tmp_path / "s.txt"
    source.write_text(SLOWING_SEED.read_text())
    run_dir, _ = _run(tmp_path, [source], [repo / "rubrics" / "pacing.yaml"])
    (judged,) = read_transcripts(source)
    source.unlink()
    assert read_transcript_snapshot(run_dir) == [judged]


def test_a_run_folder_in_use_is_refused_to_a_second_process(tmp_path: Path, repo: Path) -> None:
    run_dir, _ = _run(tmp_path, [SLOWING_SEED], [repo / "rubrics" / "pacing.yaml"])
    before = (run_dir / JUDGMENTS).read_bytes()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(run_dir)], stdout=subprocess.PIPE, stdin=subprocess.PIPE
    )
    try:
        assert holder.stdout.readline().strip() == b"locked"
        with pytest.raises(RunLocked, match=f"pid {holder.pid}.*writing this run"):
            run(RunConfig(resume=run_dir, retry_failed=True, show_progress=False))
    finally:
        holder.communicate(b"")
    assert (run_dir / JUDGMENTS).read_bytes() == before
    assert run(RunConfig(resume=run_dir, show_progress=False)).manifest.complete  # the lock died with its holder


HOLD_LOCK = """
import sys
from pathlib import Path
from evaluator.store import RunLock
with RunLock(Path(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.read()
"""


def test_an_existing_run_id_is_refused_unless_resuming(tmp_path: Path, repo: Path) -> None:
    run_dir, _ = _run(tmp_path, [SLOWING_SEED], [repo / "rubrics" / "pacing.yaml"], run_id="mine")
    before = (run_dir / JUDGMENTS).read_bytes()
    with pytest.raises(ResultsError, match="already exists.*--resume"):
        _run(tmp_path, [IGNORING_SEED], [repo / "rubrics" / "pacing.yaml"], run_id="mine")
    assert (run_dir / JUDGMENTS).read_bytes() == before
    with pytest.raises(ResultsError, match="cannot name a folder"):
        _run(tmp_path, [IGNORING_SEED], [repo / "rubrics" / "pacing.yaml"], run_id="../elsewhere")
    assert not (tmp_path / "elsewhere").exists()


def test_a_template_that_fails_on_one_session_errors_its_items_and_the_batch_goes_on(
    tmp_path: Path, repo: Path, fake_server
) -> None:
    """The sample session of `validate` has every metadata field; a real one may not. Its items are
    errors naming the template and the problem, the other session is judged, and the exit says so.
    The rules judge reads no prompt: the same run with it renders none, so nothing fails, and its
    judgments name no template or prompt hash."""
    template = (repo / "prompts" / "per_criterion.j2").read_text()
    (tmp_path / "custom.j2").write_text(
        template.replace("{% block user %}", "{% block user %}Arm: {{ transcript.metadata.arm }}")
    )
    rubric = (repo / "rubrics" / "pacing.yaml").read_text().replace("context:", "template: custom.j2\ncontext:", 1)
    (tmp_path / "pacing.yaml").write_text(rubric)
    session = '"messages": [{"role": "user", "content": "Slow down please"}, {"role": "assistant", "content": "OK."}]'
    sessions = tmp_path / "s.jsonl"
    sessions.write_text(f'{{"id": "with", "arm": "a", {session}}}\n{{"id": "without", {session}}}\n')
    # a blind judge sees no metadata: every field reads empty (test_prompts)
    config = _llm_config(tmp_path, fake_server(), [tmp_path / "pacing.yaml"], transcripts=[sessions], unblind=True)
    result = run(config)
    judgments = load_judgments(result.run_dir)
    assert {j.status for j in judgments if j.transcript_id == "with"} <= {"ok", "not_applicable", "unscored"}
    judged = [j for j in judgments if j.transcript_id == "with" and j.status == "ok"]
    assert judged and all(j.prompt_hash and j.template_hash for j in judged)
    errors = [j for j in judgments if j.status == "error"]
    assert errors and {j.transcript_id for j in errors} == {"without"}
    assert all("could not be rendered" in j.error and "arm" in j.error for j in errors)
    assert len(judgments) == result.manifest.items_planned and not result.ok

    rules = run(replace(config, judge=JudgeSettings(kind="rules"), output=tmp_path / "rules"))
    judgments = load_judgments(rules.run_dir)
    assert len(judgments) == rules.manifest.items_planned and rules.ok
    assert all(j.prompt_hash is None and j.template_hash is None for j in judgments)


# --- the LLM judge through the runner, against a local OpenAI-compatible server --------------------

KEY = "sk-runner-test-0123456789abcdefghij"


def _llm_config(tmp_path: Path, server, rubrics: list[Path], **overrides) -> RunConfig:
    from evaluator.config import JudgeSettings

    settings = {
        "kind": "openai",
        "model": "fake-judge",
        "base_url": server.url,
        "cache_path": None,
        "transport_attempts": 10,
        **overrides.pop("judge", {}),
    }
    judge = JudgeSettings(**settings)
    options = {
        "transcripts": [IGNORING_SEED, SLOWING_SEED],
        "rubrics": rubrics,
        "output": tmp_path / "results",
        "judge": judge,
        "show_progress": False,
        "concurrency": 16,
        **overrides,
    }
    return RunConfig(**options)


def _verdicts(judgments: list[Judgment]) -> dict[str, tuple]:
    return {j.key: (j.status, j.score, j.label) for j in judgments}


def test_faults_change_no_score_and_never_become_grades(tmp_path: Path, repo: Path, fake_server) -> None:
    """10% 429s, 10% 500s and 5% malformed replies: every item ends ok or unscored with a reason, and
    every item that succeeded has the score a fault-free run gives it."""
    rubrics = [repo / "rubrics" / "pacing.yaml"]
    clean = run(_llm_config(tmp_path / "clean", fake_server(), rubrics))
    faulty_server = fake_server(faults={"rate_limit": 0.10, "server_error": 0.10, "malformed": 0.05}, fault_seed=7)
    faulty = run(_llm_config(tmp_path / "faulty", faulty_server, rubrics))
    clean_j, faulty_j = load_judgments(clean.run_dir), load_judgments(faulty.run_dir)
    assert len(faulty_j) == len(clean_j) == faulty.manifest.items_planned
    assert all(j.status in ("ok", "not_applicable", "unscored") for j in faulty_j)
    assert all(j.unscored_reason for j in faulty_j if j.status == "unscored")
    retried = [j for j in faulty_j if j.transport_retries or j.attempts > 1]
    assert retried, "the faults must have hit some calls"
    expected = _verdicts(clean_j)
    succeeded = [j for j in faulty_j if j.status == "ok"]
    assert len(succeeded) > 0.9 * sum(1 for j in clean_j if j.status == "ok")
    assert all(expected[j.key] == (j.status, j.score, j.label) for j in succeeded)


def test_no_key_reaches_results_cache_or_manifest(tmp_path: Path, repo: Path, fake_server, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server = fake_server(script=["unauthorized"])
    config = _llm_config(
        tmp_path,
        server,
        [repo / "rubrics" / "act_fidelity.yaml"],
        judge={"cache_path": tmp_path / "cache.sqlite"},
        run_id="k",
    )
    with pytest.raises(RunError, match="check the API key in OPENAI_API_KEY"):
        run(config)
    config = _llm_config(
        tmp_path,
        fake_server(),
        [repo / "rubrics" / "act_fidelity.yaml"],
        judge={"cache_path": tmp_path / "cache.sqlite"},
        resume=tmp_path / "results" / "k",
    )
    result = run(config)
    assert result.manifest.complete and result.manifest.judge["api_key_env"] == "OPENAI_API_KEY"
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "cache.sqlite" for p in written)
    for path in written:
        assert KEY.encode() not in path.read_bytes(), path


def test_an_unchanged_rerun_sends_nothing_and_an_edit_resends_only_its_criterion(
    tmp_path: Path, repo: Path, fake_server
) -> None:
    server = fake_server()
    rubric = tmp_path / "pacing.yaml"
    rubric.write_text((repo / "rubrics" / "pacing.yaml").read_text())
    cache = {"cache_path": tmp_path / "cache.sqlite"}
    first = run(_llm_config(tmp_path, server, [rubric], judge=cache))
    sent = len(server.received)
    second = run(_llm_config(tmp_path, server, [rubric], judge=cache))
    assert len(server.received) == sent
    assert _verdicts(load_judgments(second.run_dir)) == _verdicts(load_judgments(first.run_dir))
    rubric.write_text(
        rubric.read_text().replace("Ignores the request and pushes on", "Disregards the request and pushes on")
    )
    third = run(_llm_config(tmp_path, server, [rubric], judge=cache))
    resent_criteria = {
        r.body["messages"][0]["content"].split("Criterion: ")[1].split("\n")[0] for r in server.received[sent:]
    }
    assert resent_criteria == {"Responds to the request to slow down"}
    judged = [
        j for j in load_judgments(third.run_dir) if j.criterion_id == "slow_down_responsiveness" and j.status == "ok"
    ]
    assert len(server.received) - sent == len(judged)


def test_max_cost_stops_cleanly_before_the_budget(tmp_path: Path, repo: Path, fake_server, write) -> None:
    prices = write("prices.yaml", "fake-judge: {input: 1000, cached_input: 1000, output: 1000}\n")
    config = _llm_config(
        tmp_path,
        fake_server(),
        [repo / "rubrics" / "act_fidelity.yaml"],
        judge={"prices_file": prices},
        max_cost=5.0,
        concurrency=4,
    )
    result = run(config)
    manifest = result.manifest
    assert manifest.stopped and "--max-cost 5.0" in manifest.stopped
    assert not manifest.complete and 0 < manifest.cost_usd <= 5.0
    assert sum(manifest.counts.values()) < manifest.items_planned
    assert not result.ok  # the command exits non-zero: not everything planned was judged
    missing = manifest.items_planned - sum(manifest.counts.values())
    summary = render_markdown(summarize(result.run_dir))
    assert "Stopped early: stopped before exceeding --max-cost 5.0 USD" in summary
    assert f"{missing} of {manifest.items_planned} planned judgments are missing" in summary


def test_sigkill_mid_batch_then_resume_judges_every_item_once(tmp_path: Path, repo: Path, fake_server) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    server = fake_server(latency=0.02)
    run_dir = tmp_path / "results" / "killed"
    command = [
        sys.executable,
        "-m",
        "evaluator",
        "run",
        str(IGNORING_SEED),
        str(SLOWING_SEED),
        "-r",
        str(repo / "rubrics" / "pacing.yaml"),
        "-o",
        str(tmp_path / "results"),
        "--run-id",
        "killed",
        "--base-url",
        server.url,
        "--model",
        "fake-judge",
        "--no-cache",
        "--no-progress",
        "--concurrency",
        "4",
    ]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")},
    )
    path = run_dir / JUDGMENTS
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not path.exists() or path.read_bytes().count(b"\n") < 60):
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = {j.key for j in load_judgments(run_dir)}
    requests_before = len(server.received)
    assert 60 <= len(before) < 350
    result = run(_llm_config(tmp_path, server, [], resume=run_dir))
    keys = [json.loads(line)["key"] for line in path.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == result.manifest.items_planned == 350
    after = [j for j in load_judgments(run_dir) if j.key not in before]
    judged_after = sum(1 for j in after if j.judge == "openai" and j.attempts > 0)
    assert len(server.received) - requests_before == judged_after
    assert result.manifest.complete


def test_samples_are_judged_with_distinct_seeds_and_folded(tmp_path: Path, repo: Path, fake_server) -> None:
    server = fake_server()
    result = run(_llm_config(tmp_path, server, [repo / "rubrics" / "act_fidelity.yaml"], samples=3))
    judgments = load_judgments(result.run_dir)
    assert len(judgments) == result.manifest.items_planned == 3 * 3 * 50
    assert sorted({r.body["seed"] for r in server.received}) == [0, 1, 2]
    aggregates = [json.loads(line) for line in (result.run_dir / "aggregates.jsonl").read_text().splitlines()]
    assert len(aggregates) == 3 * 50 and all(a["samples"] == 3 for a in aggregates)
    assert all(a["method"] == "majority" for a in aggregates)


def test_resume_sends_errored_items_again_since_they_hold_no_judgment(tmp_path: Path, repo: Path, fake_server) -> None:
    rubrics = [repo / "rubrics" / "act_fidelity.yaml"]
    failing = fake_server(script=["bad_request"] * 2, faults={})
    first = run(_llm_config(tmp_path, failing, rubrics, concurrency=1, run_id="r"))
    errored = {j.key for j in load_judgments(first.run_dir) if j.status == "error"}
    assert len(errored) == 2 and not first.ok
    server = fake_server()
    again = run(_llm_config(tmp_path, server, [], resume=first.run_dir))
    assert len(server.received) == 2
    after = {j.key: j for j in load_judgments(again.run_dir)}
    assert all(after[key].status == "ok" for key in errored) and again.ok


def test_requests_on_the_wire_never_exceed_the_concurrency(tmp_path: Path, repo: Path, fake_server) -> None:
    """--concurrency bounds the requests the endpoint sees at once (calls wait for a slot ready to go)."""
    server = fake_server(latency=0.05)
    result = run(_llm_config(tmp_path, server, [repo / "rubrics" / "act_fidelity.yaml"], concurrency=3))
    assert result.ok and len(server.received) > 3
    assert server.most_open == 3


def test_resume_refuses_an_edited_template_of_the_runs_mode(tmp_path: Path, repo: Path, fake_server) -> None:
    """Judgments asked with two prompts in one run would hide what the edit did. The manifest records the
    template of the run's mode (per_turn.j2 here, not the per-criterion one); the rules judge reads no
    prompt, so an edit does not stop it."""
    prompts = tmp_path / "prompts"
    shutil.copytree(repo / "prompts", prompts)
    rubrics = [repo / "rubrics" / "act_fidelity.yaml"]
    config = _llm_config(tmp_path, fake_server(), rubrics, mode="per-turn", prompts_dir=prompts, run_id="r")
    first = run(config)
    resume = replace(config, rubrics=[], resume=first.run_dir, run_id=None)
    per_criterion = prompts / "per_criterion.j2"  # not this mode's template
    per_criterion.write_text(per_criterion.read_text() + "\nOne more instruction.\n")
    assert run(resume).ok
    (prompts / "per_turn.j2").write_text((prompts / "per_turn.j2").read_text() + "\nOne more instruction.\n")
    with pytest.raises(RunError, match=r"prompt template of rubric 'act_fidelity' \(per_turn\.j2.*changed"):
        run(resume)
    rules = run(RunConfig(transcripts=[SLOWING_SEED], rubrics=rubrics, prompts_dir=prompts, output=tmp_path / "rules"))
    per_criterion.write_text(per_criterion.read_text() + "Another.\n")
    assert run(RunConfig(resume=rules.run_dir, prompts_dir=prompts, show_progress=False)).ok


def test_resume_retries_unscored_items_only_when_asked(tmp_path: Path, repo: Path, fake_server) -> None:
    rubrics = [repo / "rubrics" / "act_fidelity.yaml"]
    refusing = fake_server(script=["refusal"] * 9, faults={})
    first = run(_llm_config(tmp_path, refusing, rubrics, concurrency=1, run_id="r"))
    unscored = {j.key for j in load_judgments(first.run_dir) if j.status == "unscored"}
    assert len(unscored) == 3 and first.manifest.counts["unscored"] == 3
    server = fake_server()
    run(_llm_config(tmp_path, server, [], resume=first.run_dir))
    assert server.received == [], "a plain resume leaves unscored items alone"
    again = run(_llm_config(tmp_path, server, [], resume=first.run_dir, retry_failed=True))
    assert len(server.received) == 3
    after = {j.key: j for j in load_judgments(again.run_dir)}
    assert all(after[key].status == "ok" for key in unscored)
    assert again.manifest.counts["unscored"] == 0 and again.manifest.complete


def _billed(server, prices: dict[str, float]) -> float:
    """What the server's replies cost, as a provider bills them: every completion it sent, at USD per million."""
    return (
        sum(u["prompt_tokens"] * prices["input"] + u["completion_tokens"] * prices["output"] for u in server.served)
        / 1e6
    )


REASONING_PRICES = {"input": 0.0, "output": 1000.0}
"""USD per million tokens: only replies cost, 1,000 reply tokens $1."""


def _budget_config(tmp_path: Path, server, write, max_cost: float | None, **judge) -> RunConfig:
    from tests.conftest import REPO

    prices = write("prices.yaml", "fake-judge: {input: 0, cached_input: 0, output: 1000}\n")
    return _llm_config(
        tmp_path,
        server,
        [REPO / "rubrics" / "act_fidelity.yaml"],
        judge={"prices_file": prices, **judge},
        max_cost=max_cost,
        concurrency=4,
    )


def test_max_cost_holds_when_the_endpoint_refuses_the_default_cap(tmp_path: Path, write, fake_server) -> None:
    """A reasoning model refuses max_tokens and the user chose no cap: replies go uncapped and each spends
    20,000 reasoning tokens ($20). Reserved at the default cap (464 tokens), a $100 budget let the run
    spend $180; reserved at the uncapped ceiling, it stops under the budget."""
    server = fake_server(reasoning_tokens=20_000, unsupported=["max_tokens"])
    result = run(_budget_config(tmp_path, server, write, 100.0))
    manifest = result.manifest
    assert all("max_tokens" not in r.body for r in server.received[-3:])  # the cap went left out
    assert manifest.stopped and "--max-cost 100.0" in manifest.stopped
    assert 0 < _billed(server, REASONING_PRICES) <= 100.0
    assert manifest.cost_usd == pytest.approx(_billed(server, REASONING_PRICES))
    judged = load_judgments(result.run_dir)
    assert {j.status for j in judged} <= {"ok", "error"} and any(j.status == "ok" for j in judged)
    assert all(j.error == OVER_BUDGET for j in judged if j.status == "error")


def test_max_cost_reserves_each_reask_and_resume_completes_what_it_stopped(tmp_path: Path, write, fake_server) -> None:
    """Every reply is invalid and spends 400 reasoning tokens within its 464-token cap, so each call asks
    three times (content_attempts): reserving only the first request let a $5 budget be spent to $13.
    Each re-ask is now reserved before it goes; one that does not fit stops the run, its item recorded
    as not judged (an error, never a grade) with what it spent, and --resume judges it."""
    server = fake_server(script=["malformed"] * 40, reasoning_tokens=400)
    config = _budget_config(tmp_path, server, write, 5.0, content_attempts=3)
    result = run(config)
    manifest = result.manifest
    assert manifest.stopped and "--max-cost 5.0" in manifest.stopped
    assert 0 < _billed(server, REASONING_PRICES) <= 5.0
    assert manifest.cost_usd == pytest.approx(_billed(server, REASONING_PRICES))
    judged = load_judgments(result.run_dir)
    stopped = [j for j in judged if j.status == "error"]
    assert stopped and all(j.error == OVER_BUDGET and j.score is None for j in stopped)
    assert {j.status for j in judged} <= {"unscored", "error"}
    assert all(j.attempts == 3 for j in judged if j.status == "unscored")
    resumed = run(replace(config, max_cost=None, resume=result.run_dir))
    final = {j.key: j for j in load_judgments(resumed.run_dir)}
    assert resumed.manifest.complete and not any(j.status == "error" for j in final.values())
