"""Hostile files through the command a user types: clear errors, never a traceback or a hang, and one bad
file never stops the rest of the batch."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from evaluator.cli import main
from tests.conftest import REPO, SLOWING_SEED
from tests.test_files import bounded

GOOD_JSONL = json.dumps(
    {
        "session_id": "good-json",
        "messages": [
            {"role": "user", "content": "Can we slow down a bit? This is a lot."},
            {"role": "assistant", "content": "Of course. Let's pause here; what would help right now?"},
        ],
    }
)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The bundled pacing rubric, one good seed and no LLM configured: runs use the offline rules judge."""
    (tmp_path / "rubrics").mkdir()
    (tmp_path / "rubrics" / "pacing.yaml").write_text((REPO / "rubrics" / "pacing.yaml").read_text())
    (tmp_path / "transcripts").mkdir()
    (tmp_path / "transcripts" / SLOWING_SEED.name).write_text(SLOWING_SEED.read_text())
    monkeypatch.chdir(tmp_path)
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def _output(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    return captured.out + captured.err


def test_a_template_error_stops_validate_and_run_before_any_run_folder(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "rubrics" / "custom.j2").write_text(
        "{% block system %}{{ criterion.name }}{% endblock %}{% block user %}{{ turn.txt }}{% endblock %}"
    )
    rubric = workdir / "rubrics" / "pacing.yaml"
    rubric.write_text("template: custom.j2\n" + rubric.read_text())
    assert main(["validate", "rubrics"]) == 1
    out = _output(capsys)
    assert "FAIL rubrics/pacing.yaml: invalid rubric" in out
    assert "template for per-criterion mode: template 'custom.j2': 'dict object' has no attribute 'txt'" in out
    assert main(["run", "--no-progress", "--run-id", "r"]) == 2
    out = _output(capsys)
    assert "template 'custom.j2'" in out and "Traceback" not in out
    assert not (workdir / "results").exists()


MARKUP_ID = "[bold]x[/bold] [link=x]l[/link] [/] [red]"


def _zoo(folder: Path) -> dict[str, str]:
    """Write hostile files into `folder`; returns each bad file's name and a phrase its error must contain."""
    (folder / "good.jsonl").write_text(GOOD_JSONL + "\n")
    markup = {"session_id": MARKUP_ID, "messages": json.loads(GOOD_JSONL)["messages"]}
    markup["messages"][0]["content"] = "Slow down [/] please [bold]now[/bold]"
    (folder / "markup [red].jsonl").write_text(json.dumps(markup) + "\n")
    os.mkfifo(folder / "fifo.txt")
    (folder / "zero.csv").symlink_to("/dev/zero")
    (folder / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (folder / "huge.jsonl").write_text('{"n": ' + "9" * 100_000 + ', "messages": []}\n')
    (folder / "inf.jsonl").write_text('{"n": 1e999999, "messages": []}\n')
    (folder / "nul.txt").write_bytes(b"Patient: Slow down.\nTherapist: Sure\x00.\n")
    (folder / "surrogate.json").write_text(
        '{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "\\ud800"}]}'
    )
    (folder / "order.csv").write_text(
        "transcript_id,utterance_id,interlocutor,utterance_text\na,1,client,Hi\na,,therapist,Hello\n"
    )
    (folder / "[bold]markup name[red].txt").write_text("Doctor: [red]unknown label[/red]\n")
    return {
        "fifo.txt": "is a named pipe (FIFO), not a regular file",
        "zero.csv": "is a character device, not a regular file",
        "deep.json": "JSON nested more than 64 levels deep",
        "huge.jsonl": "(100000 digits) is too large",
        "inf.jsonl": "the number 1e999999 is too large",
        "nul.txt": "a NUL byte (U+0000)",
        "surrogate.json": "a lone surrogate (U+D800)",
        "order.csv": 'line 3: the order column "utterance_id" is empty',
        "[bold]markup name[red].txt": 'unknown speaker label "Doctor"',
    }


def test_a_batch_with_hostile_files_judges_the_good_ones_and_names_every_bad_one(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _zoo(workdir / "transcripts")
    with bounded(60):
        code = main(["validate", "transcripts"])
        validated = _output(capsys)
        run_code = main(["run", "--no-progress", "--run-id", "zoo", "-r", "pacing"])
        ran = _output(capsys)
    assert code == 1 and run_code == 1
    for out in (validated, ran):
        assert "Traceback" not in out
        for name, problem in bad.items():
            assert any(f"transcripts/{name}" in line and problem in line for line in out.splitlines()), (name, out)
    assert "transcripts/markup [red].jsonl: 1 transcript(s)" in validated
    judgments = [json.loads(line) for line in (workdir / "results" / "zoo" / "judgments.jsonl").open()]
    judged = {j["transcript_id"] for j in judgments if j["status"] in ("ok", "unscored", "not_applicable")}
    assert judged == {SLOWING_SEED.stem, "good-json", MARKUP_ID}
    assert "[bold]x[/bold]" in ran  # the id heads a column of the summary, as written, not swallowed as markup


def test_markup_in_ids_text_and_names_is_printed_literally(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _zoo(workdir / "transcripts")
    path = "transcripts/markup [red].jsonl"
    assert main(["render", path, "-r", "pacing", "--turn", "1", "--criterion", "slow_down_requested", "--unblind"]) == 0
    out = _output(capsys)
    assert f"(session {MARKUP_ID}, file markup [red].jsonl" in out and "Slow down [/] please [bold]now[/bold]" in out
    assert main(["validate", path]) == 0
    assert f"ok   {path}: 1 transcript(s)" in _output(capsys)
    assert main(["render", path, "-r", "pacing", "--turn", "7"]) == 2
    assert f"turn 7 of {MARKUP_ID} is not a therapist turn" in _output(capsys)


def test_report_compare_and_agree_print_markup_literally_and_refuse_special_files(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "transcripts" / "markup.jsonl").write_text(
        json.dumps({"session_id": MARKUP_ID, "messages": json.loads(GOOD_JSONL)["messages"]}) + "\n"
    )
    assert main(["run", "--no-progress", "--run-id", "a", "-r", "pacing"]) == 0
    capsys.readouterr()
    assert main(["report", "a"]) == 0 and main(["compare", "a", "a"]) == 0
    out = _output(capsys)
    assert "[bold]x[/bold]" in out and "Traceback" not in out
    labels = workdir / "labels [red].csv"
    labels.write_text(f'transcript,turn,criterion,score\n"{MARKUP_ID}",1,slow_down_requested,1\n')
    assert main(["agree", "a", str(labels)]) == 0
    assert "Traceback" not in _output(capsys)
    os.mkfifo(workdir / "labels.csv")
    (workdir / "prices.yaml").write_text(
        "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
        + "".join(f"a{n}: &a{n} [{', '.join(['*a' + ('' if n == 1 else str(n - 1))] * 10)}]\n" for n in range(1, 8))
    )
    with bounded():
        assert main(["agree", "a", "labels.csv"]) == 2
        assert "labels.csv: cannot read the labels file (is a named pipe (FIFO)" in _output(capsys)
        assert (
            main(
                [
                    "run",
                    "--no-progress",
                    "--prices",
                    "prices.yaml",
                    "--model",
                    "m",
                    "--base-url",
                    "http://127.0.0.1:9/v1",
                    "--dry-run",
                ]
            )
            == 2
        )
        assert "prices.yaml: cannot read the price table: line 5, column 5: YAML refused: expands" in _output(capsys)


def test_files_saved_by_other_tools_are_judged_and_ambiguous_ones_named(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What Windows, Excel, old Macs and transcription tools write is read; what would be guessed at
    (a key or quote that decides whose turn it is, an id that is a whole paragraph) is set aside by name."""
    folder = workdir / "transcripts"
    turns = "[00:00:05] Patient: Can we slow down? It’s a lot.\r\n\r\n[00:00:09] Therapist: Of course, let’s pause.\r\n"
    (folder / "notepad.txt").write_bytes(turns.encode("utf-16"))
    (folder / "mac.txt").write_bytes(turns.replace("\r\n", "\r").encode())
    (folder / "cp1252.txt").write_bytes(turns.encode("cp1252"))
    (folder / "xlsx.csv").write_bytes(b"PK\x03\x04" + bytes(200))
    (folder / "role.json").write_text(GOOD_JSONL.replace('"role": "user"', '"role": "user", "role": "assistant"'))
    (folder / "long.jsonl").write_text(GOOD_JSONL.replace("good-json", "x" * 100_000) + "\n")
    (folder / "quote.csv").write_text(
        'transcript_id,utterance_id,interlocutor,utterance_text\nq,1,client,"Slow down\nq,2,therapist,Sure\n'
    )
    with bounded(60):
        code = main(["run", "--no-progress", "--run-id", "tools", "-r", "pacing"])
    out = _output(capsys)
    assert code == 1 and "Traceback" not in out
    for name, problem in {
        "cp1252.txt": 'line 1, column 41: byte 0x92 is not valid UTF-8 (invalid start byte); it reads as "’"',
        "xlsx.csv": "is a ZIP archive (an Excel .xlsx or Word .docx file is one), not a text file",
        "role.json": 'the key "role" appears twice in one object ("user" and "assistant"); keep one',
        "long.jsonl": 'line 1: the transcript id "' + "x" * 40 + '..." from the "session_id" key is 100,000 characters',
        "quote.csv": 'line 2: malformed CSV: unexpected end of data; a quote (") opened on this row',
    }.items():
        assert any(f"transcripts/{name}" in line and problem in line for line in out.splitlines()), (name, out)
    judged = {json.loads(line)["transcript_id"] for line in (workdir / "results" / "tools" / "judgments.jsonl").open()}
    assert judged == {SLOWING_SEED.stem, "notepad", "mac"}


def test_a_rubric_with_an_infinite_weight_is_refused_before_any_run_folder(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rubric = workdir / "rubrics" / "pacing.yaml"
    rubric.write_text(
        rubric.read_text().replace("    check: pacing_request\n", "    check: pacing_request\n    weight: .inf\n")
    )
    assert main(["run", "--no-progress", "--run-id", "inf"]) == 2
    out = _output(capsys)
    assert "criteria[0] (id: slow_down_requested).weight: inf is not a finite number" in out
    assert "Traceback" not in out and "internal error" not in out and not (workdir / "results").exists()
