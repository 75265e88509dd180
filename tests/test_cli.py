"""The `evaluator` command as a user types it: exit codes, messages, files written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evaluator.cli import main
from tests.conftest import REPO, SLOWING_SEED
from tests.test_runner import seed_run  # noqa: F401  (module-scoped run of both seeds and every rubric)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh directory with the bundled rubrics and one seed, as after a clone, and no LLM configured."""
    (tmp_path / "rubrics").mkdir()
    for rubric in (REPO / "rubrics").glob("*.yaml"):
        (tmp_path / "rubrics" / rubric.name).write_text(rubric.read_text())
    (tmp_path / "transcripts").mkdir()
    (tmp_path / "transcripts" / SLOWING_SEED.name).write_text(SLOWING_SEED.read_text())
    monkeypatch.chdir(tmp_path)
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_run_says_it_is_offline_and_writes_results(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--no-progress", "--run-id", "r1"]) == 0
    out, err = capsys.readouterr()
    assert err.count("using the offline rules judge") == 1
    assert "results/r1/judgments.jsonl" in out and "slow_down_responsiveness" in out
    assert {p.name for p in (workdir / "results" / "r1").iterdir()} == {
        "manifest.json",
        "judgments.jsonl",
        "transcripts.jsonl",
        "summary.md",
        "report.html",
        ".lock",
    }
    assert "results/r1/report.html" in out


def test_run_with_a_bad_file_exits_nonzero_and_lists_it(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "transcripts" / "broken.jsonl").write_text(
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n{"messages": [\n'
    )
    assert main(["run", "--no-progress", "--run-id", "r2", "-r", "pacing"]) == 1
    err = capsys.readouterr().err
    assert "broken.jsonl, line 2" in err
    manifest = json.loads((workdir / "results" / "r2" / "manifest.json").read_text())
    assert [s["path"] for s in manifest["skipped_files"]] == ["transcripts/broken.jsonl"]
    assert manifest["counts"]["ok"] > 0


def test_invalid_rubric_stops_before_anything_is_written(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "rubrics" / "zz.yaml").write_text(
        "id: zz\ntitle: t\ncriteria:\n  - id: a\n    name: a\n    question: q\n    scale: {type: likert, min: 1, max: 5}\n"
    )
    assert main(["run", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "rubrics/zz.yaml" in err and "criteria[0] (id: a).scale.anchors: Field required" in err
    assert not (workdir / "results").exists()


def test_validate_lints_rubrics_and_transcripts(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "transcripts" / "empty.txt").write_text("  \n")
    assert main(["validate", "rubrics", "transcripts"]) == 1
    out = capsys.readouterr().out
    assert "ok   rubrics/pacing.yaml: rubric pacing v1, 7 criteria" in out
    assert f"ok   transcripts/{SLOWING_SEED.name}: 1 transcript(s)" in out
    assert "FAIL transcripts/empty.txt" in out
    assert "5 ok, 1 invalid" in out


def test_validate_fails_a_transcript_id_already_read_from_another_file_as_run_skips_it(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same session in two files: run judges the first and skips the second, so validate must fail it."""
    copy = workdir / "transcripts" / "copy" / SLOWING_SEED.name
    copy.parent.mkdir()
    copy.write_text(SLOWING_SEED.read_text())
    assert main(["validate", "transcripts"]) == 1
    out = capsys.readouterr().out
    assert f"ok   transcripts/{SLOWING_SEED.name}: 1 transcript(s)" in out
    assert (
        f'FAIL transcripts/copy/{SLOWING_SEED.name}: transcript id "{SLOWING_SEED.stem}" is also in '
        f"transcripts/{SLOWING_SEED.name}; rename one"
    ) in out
    assert "1 ok, 1 invalid" in out
    assert main(["run", "--no-progress", "--run-id", "dup", "-r", "pacing"]) == 1
    skipped = json.loads((workdir / "results" / "dup" / "manifest.json").read_text())["skipped_files"]
    assert [s["path"] for s in skipped] == [f"transcripts/copy/{SLOWING_SEED.name}"]


def test_render_prints_the_exact_messages(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    transcript = workdir / "transcripts" / SLOWING_SEED.name
    assert (
        main(
            ["render", str(transcript), "-r", "pacing", "--turn", "5", "--criterion", "acknowledges_request", "--json"]
        )
        == 0
    )
    payload = json.loads(capsys.readouterr().out)
    assert payload["criterion"] == "acknowledges_request"
    assert [m["role"] for m in payload["messages"]] == ["system", "user"]
    assert "[5] Therapist: Let's take a tiny step" in payload["messages"][1]["content"]


def test_render_refuses_a_patient_turn_with_the_therapist_turns_listed(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    transcript = workdir / "transcripts" / SLOWING_SEED.name
    assert main(["render", str(transcript), "-r", "pacing", "--turn", "0"]) == 2
    assert (
        "turn 0 of 004_d8361cbb940345fc is not a therapist turn; therapist turns are: 1, 3, 5"
        in capsys.readouterr().err
    )


def test_report_rewrites_the_summary(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["run", "--no-progress", "--run-id", "r3", "-r", "pacing"])
    summary = workdir / "results" / "r3" / "summary.md"
    summary.unlink()
    capsys.readouterr()
    assert main(["report", "r3"]) == 0
    assert "Responds to the request to slow down" in summary.read_text()
    assert main(["report", "nope"]) == 2


def test_bad_option_values_explain_the_fix(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--speaker", "Doctor"]) == 2
    assert "expected NAME=VALUE, e.g. --speaker Doctor=therapist" in capsys.readouterr().err
    assert main(["run", "--csv-column", "utterance=text"]) == 2
    assert "must be one of transcript, order, speaker, text" in capsys.readouterr().err


def test_a_caller_of_main_keeps_its_own_garbage_collector_threshold(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """main() collects cycles less often while a command runs (fewer passes over the objects a run keeps),
    and gives a notebook or test calling it its own setting back, whether the command succeeds, fails or exits."""
    import gc

    before = gc.get_threshold()
    assert main(["run", "--no-progress", "--run-id", "gc", "-r", "pacing"]) == 0
    assert main(["report", "no-such-run"]) == 2
    with pytest.raises(SystemExit):
        main(["--help"])
    assert gc.get_threshold() == before


def test_python_dash_m_and_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "evaluator", "run", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "120"},
        check=True,
    )
    assert "--resume RUN" in done.stdout and "examples:" in done.stdout


def test_run_against_an_openai_compatible_server_judges_every_rubric(
    workdir: Path, fake_server, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "transcripts" / "000.txt").write_text((REPO / "transcripts" / "000_76910fef4a2e608d.txt").read_text())
    server = fake_server()
    code = main(
        [
            "run",
            "--base-url",
            server.url,
            "--model",
            "fake-judge",
            "--no-progress",
            "--run-id",
            "llm",
            "--concurrency",
            "16",
        ]
    )
    assert code == 0
    manifest = json.loads((workdir / "results" / "llm" / "manifest.json").read_text())
    assert manifest["judge"]["judge"] == "openai" and manifest["judge"]["model"] == "fake-judge"
    assert set(manifest["rubrics"]) == {"pacing", "rupture_repair", "act_fidelity", "mi_relational"}
    assert manifest["counts"]["unscored"] == manifest["counts"]["error"] == 0
    assert manifest["counts"]["ok"] + manifest["counts"]["not_applicable"] == manifest["items_planned"]
    assert manifest["usage"]["prompt_tokens"] > 0 and manifest["complete"] is True
    assert "offline rules judge" not in capsys.readouterr().err
    assert (workdir / ".cache" / "responses.sqlite").exists()
    sent = len(server.received)
    assert main(["run", "--base-url", server.url, "--model", "fake-judge", "--no-progress", "--run-id", "again"]) == 0
    assert len(server.received) == sent, "an unchanged re-run is answered from the cache"
    capsys.readouterr()
    assert main(["cache", "info"]) == 0
    assert f"{sent} cached replies" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0
    assert f"removed {sent} cached replies" in capsys.readouterr().out


def test_dry_run_prints_the_plan_and_sends_nothing(
    workdir: Path, fake_server, capsys: pytest.CaptureFixture[str]
) -> None:
    server = fake_server()
    assert main(["run", "--dry-run", "--base-url", server.url, "--model", "gpt-4o-mini", "-r", "pacing"]) == 0
    out = capsys.readouterr().out
    assert server.received == [] and not (workdir / "results").exists()
    assert "Dry run: 1 transcripts, judge openai (gpt-4o-mini), mode per-criterion" in out
    assert "Estimated cost: $" in out and "pacing" in out


def test_agree_prints_the_table_for_the_bundled_labels(seed_run, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    run_dir, _ = seed_run
    assert main(["agree", str(run_dir), str(REPO / "labels" / "seed_ratings.csv")]) == 0
    out = capsys.readouterr().out
    assert "slow_down_responsiveness" in out and "kappa" in out and "alpha" in out
    assert (run_dir / "agreement.md").is_file()
    assert main(["agree", str(run_dir), str(REPO / "README.md")]) == 2


def test_compare_names_the_edited_criterion(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--no-progress", "--run-id", "a", "-r", "pacing"]) == 0
    rubric = workdir / "rubrics" / "pacing.yaml"
    rubric.write_text(rubric.read_text().replace("check: acknowledges_pacing_request", "check: offers_choice_or_pause"))
    assert main(["run", "--no-progress", "--run-id", "b", "-r", "pacing"]) == 0
    capsys.readouterr()
    assert main(["compare", "a", "b"]) == 0
    out = capsys.readouterr().out
    assert "criterion acknowledges_request of rubric pacing changed: check edited" in out
    assert (workdir / "results" / "b" / "compare.md").is_file()
