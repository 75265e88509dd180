"""The batch path over real HTTP: `evaluator batch` against the fake server's /v1/files and /v1/batches
(tests/fake_batches.py), whose lines are answered by the same logic as its chat completions. So a batch
run must end with the judgments a live run gets, whatever the queue did on the way (split files,
re-asks, failed lines, expiry, cancellation, a process stopped between commands)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evaluator.batch_files import (
    ENDPOINT,
    BatchFileError,
    Limits,
    Splitter,
    read_results,
    read_results_file,
    request_line,
)
from evaluator.batch_replies import refused_format, refused_seed, refused_system_role
from evaluator.batch_state import read_state, write_state
from evaluator.cli.main import main
from evaluator.config import JudgeSettings, RunConfig
from evaluator.judges.pricing import DEFAULT_PRICES
from evaluator.models import Judgment
from evaluator.runner import run as live_run
from evaluator.store import JUDGMENTS, iter_judgments, load_judgments, read_manifest
from tests.fake_batches import NO_JSON_SCHEMA, NO_SEED, NO_SYSTEM_ROLE

KEY = "sk-batch-test-0123456789abcdefghijklmnop"
MODEL = "gpt-4o-mini"  # priced, so the batch discount shows; the fake server answers any model name
RUBRIC = """\
id: mini
title: Mini rubric
criteria:
  - id: requested
    name: The patient asked to slow down
    question: Did the patient just ask to slow down?
    scale: {type: binary, yes: asked, no: did not ask}
  - id: honours
    name: Honours the request
    applies_when:
      criterion: {criterion: requested, is: [1]}
    question: Does the therapist honour the request to slow down?
    scale:
      type: likert
      min: 1
      max: 5
      anchors: {1: ignores it, 3: in words only, 5: clearly slows down}
  - id: length
    name: Relative length
    question: Is the turn shorter or longer than the patient's?
    scale:
      type: categorical
      categories:
        - {label: shorter, description: shorter}
        - {label: longer, description: longer}
"""
SESSION = """\
Patient: I feel overwhelmed by all of this. Can we slow down a bit?
Therapist: Of course. Let's slow right down and take a breath together.
Patient: Thanks, that helps a little, but my chest still feels tight.
Therapist: Would you like to pause here for a moment, or keep going gently?
Patient: Keep going, but slowly please, I'm still shaky.
Therapist: Let's try a new exercise: list ten thoughts and rate each one from one to ten.
Patient: That is a lot right now.
Therapist: Fair enough. We can do just one, whenever you are ready.
"""


@pytest.fixture
def inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_llm_env: None) -> dict[str, Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    folder = tmp_path / "sessions"
    folder.mkdir()
    (folder / "s1.txt").write_text(SESSION, encoding="utf-8")
    (folder / "s2.txt").write_text(SESSION.replace("a bit?", "please?").replace("ten", "five"), encoding="utf-8")
    rubric = tmp_path / "mini.yaml"
    rubric.write_text(RUBRIC, encoding="utf-8")
    return {"sessions": folder, "rubric": rubric, "results": tmp_path / "results"}


def cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def submit_args(inputs: dict[str, Path], server, *extra: object) -> list[object]:
    return [
        "batch",
        "submit",
        inputs["sessions"],
        "-r",
        inputs["rubric"],
        "-o",
        inputs["results"],
        "--model",
        MODEL,
        "--base-url",
        server.url,
        "--no-cache",
        "--run-id",
        "b1",
        *extra,
    ]


def live_verdicts(inputs: dict[str, Path], server, mode: str = "per-criterion", samples: int = 1) -> dict:
    """The judgments a live run of the same plan gets from the same fake logic."""
    settings = JudgeSettings(kind="openai", model=MODEL, base_url=server.url, cache_path=None)
    config = RunConfig(
        transcripts=[inputs["sessions"]],
        rubrics=[inputs["rubric"]],
        output=inputs["results"] / "live",
        judge=settings,
        mode=mode,  # type: ignore[arg-type]
        samples=samples,
        show_progress=False,
    )
    return verdicts(load_judgments(live_run(config).run_dir))


def verdicts(judgments: list[Judgment]) -> dict:
    return {j.key: (j.status, j.score, j.label) for j in judgments}


def drive(capsys, run_dir: Path, rounds: int = 8) -> None:
    """Status until the batches end, collect, submit what is next; until the run is complete."""
    for _ in range(rounds):
        for _ in range(3):
            assert cli(capsys, "batch", "status", run_dir)[0] == 0
        cli(capsys, "batch", "collect", run_dir, "--no-report")
        manifest = read_manifest(run_dir)
        if manifest.complete and not manifest.counts.get("error") and not read_state(run_dir).reasks:
            return
        assert cli(capsys, "batch", "submit", "--resume", run_dir)[0] == 0
    raise AssertionError(f"not complete after {rounds} rounds: {read_manifest(run_dir).counts}")


def _collect_when_ended(capsys, run_dir: Path) -> tuple[int, str]:
    """Status until the fake queue has ended what was submitted (three rounds), then collect: its exit and output."""
    for _ in range(3):
        cli(capsys, "batch", "status", run_dir)
    return cli(capsys, "batch", "collect", run_dir, "--no-report")


def batch_lines(server) -> list[dict]:
    return [r.body for r in server.received if r.path == f"batch:{ENDPOINT}"]


def written_keys(run_dir: Path) -> list[str]:
    return [j.key for j in iter_judgments(run_dir)]


@pytest.mark.parametrize("mode", ["per-criterion", "per-turn", "per-transcript"])
def test_a_batch_run_ends_with_the_judgments_of_a_live_run(inputs, fake_server, capsys, mode) -> None:
    """Split into files of 1 request, stage by stage (`honours` waits for `requested`), grouped modes too."""
    live = live_verdicts(inputs, fake_server(), mode)
    server = fake_server()
    code, out = cli(capsys, *submit_args(inputs, server, "--mode", mode, "--max-requests", 1))
    assert code == 0, out
    run_dir = inputs["results"] / "b1"
    state = read_state(run_dir)
    assert len(state.batches) >= 2 and all(b.requests == 1 and b.batch_id for b in state.batches)
    submitted_first = {k for b in state.batches for k in _keys(run_dir, b)}
    assert not any("/honours/" in k for k in submitted_first)  # the dependent stage waits
    assert state.waiting > 0 and "wait for a prerequisite's verdict" in out
    code, out = cli(capsys, "batch", "status", run_dir)
    assert code == 0 and "in_progress" in out and f"{state.waiting} item(s) wait for a prerequisite" in out
    drive(capsys, run_dir)
    judgments = load_judgments(run_dir)
    assert verdicts(judgments) == live
    assert len(written_keys(run_dir)) == len(set(written_keys(run_dir))) == len(live)
    assert any(j.criterion_id == "honours" and j.status == "ok" for j in judgments)
    assert len(batch_lines(server)) == sum(b.requests for b in read_state(run_dir).batches)


def _keys(run_dir: Path, record) -> set[str]:
    from evaluator.batch_state import iter_calls

    return {k for c, _ in iter_calls(run_dir, record) for k in c.keys}


def test_the_request_file_is_the_documented_format_with_the_live_bodies(inputs, fake_server, capsys) -> None:
    """Every line is {custom_id, method, url, body}; custom_id is the item key; each body is exactly what the
    live judge sent for that item (prompt, schema, seed, max_tokens)."""
    live_server = fake_server()
    live_verdicts(inputs, live_server, samples=2)
    sent = {json.dumps(r.body, sort_keys=True) for r in live_server.received}
    exported = inputs["results"].parent / "requests.jsonl"
    code, out = cli(capsys, *submit_args(inputs, live_server, "--samples", 2, "--export", exported))
    assert code == 0, out
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    assert lines and all(set(line) == {"custom_id", "method", "url", "body"} for line in lines)
    assert all(line["method"] == "POST" and line["url"] == "/v1/chat/completions" for line in lines)
    ids = [line["custom_id"] for line in lines]
    assert len(ids) == len(set(ids))
    assert {tuple(i.split("/"))[2:] for i in ids} >= {("1", "requested", "0"), ("1", "requested", "1")}
    assert {json.dumps(line["body"], sort_keys=True) for line in lines} <= sent
    assert all(line["body"]["seed"] == int(line["custom_id"].rsplit("/", 1)[1]) for line in lines)
    assert all(line["body"]["response_format"]["json_schema"]["strict"] for line in lines)


def _split(lines: list[bytes], limits: Limits) -> list[list[bytes]]:
    splitter, files = Splitter(limits), [[]]
    for line in lines:
        if splitter.starts_file(line):
            files.append([])
        files[-1].append(line)
    return files


def test_limits_split_files_by_requests_and_bytes() -> None:
    lines = [request_line(f"id{n}", {"messages": [{"role": "user", "content": "x" * n}]}) for n in range(10)]
    by_count = _split(lines, Limits(requests=3))
    assert [len(f) for f in by_count] == [3, 3, 3, 1] and sum(by_count, []) == lines
    cap = len(lines[-1]) + len(lines[-2])
    by_size = _split(lines, Limits(bytes=cap))
    assert all(sum(map(len, f)) <= cap for f in by_size) and sum(by_size, []) == lines and len(by_size) > 3
    with pytest.raises(BatchFileError, match="more than a batch file may hold"):
        Splitter(Limits(bytes=10)).starts_file(lines[0])


def test_a_bad_reply_is_unscored_with_its_reason_after_follow_up_batches(inputs, fake_server, capsys) -> None:
    server = fake_server(faults={"out_of_range": 1.0})
    assert cli(capsys, *submit_args(inputs, server, "--attempts", 2, "--criterion", "length"))[0] == 0
    run_dir = inputs["results"] / "b1"
    drive(capsys, run_dir)
    judgments = load_judgments(run_dir)
    assert judgments and all(j.status == "unscored" and j.score is None and j.label is None for j in judgments)
    assert all("after 2 attempt(s)" in j.unscored_reason and "'score' must be one of" in j.unscored_reason
               for j in judgments)  # fmt: skip
    rounds = len(read_state(run_dir).batches)
    assert rounds == 2 and len(batch_lines(server)) == 2 * len(judgments)
    reasked = [b for b in batch_lines(server) if len(b["messages"]) > 2]
    assert len(reasked) == len(judgments) and reasked[0]["messages"][-1]["content"].startswith("Your reply could")


def test_a_re_ask_in_a_follow_up_batch_gets_a_grade(inputs, fake_server, capsys) -> None:
    """The first reply to each item is invalid, the re-ask valid: ok after 2 attempts, as the live judge."""

    def chooser(body: dict, n: int) -> str:
        return "malformed" if len(body["messages"]) == 2 else "valid"

    server = fake_server(chooser=chooser)
    assert cli(capsys, *submit_args(inputs, server, "--criterion", "length"))[0] == 0
    run_dir = inputs["results"] / "b1"
    drive(capsys, run_dir)
    judgments = load_judgments(run_dir)
    assert judgments and all(j.status == "ok" and j.attempts == 2 for j in judgments)
    live = live_verdicts(inputs, fake_server(chooser=chooser))
    assert verdicts(judgments) == {k: v for k, v in live.items() if "/length/" in k}


@pytest.mark.parametrize("mode", ["per-turn", "per-transcript"])
def test_a_grouped_reply_keeps_its_valid_verdicts_across_a_follow_up_batch(inputs, fake_server, capsys, mode) -> None:
    """The first reply breaks one verdict of the group, the re-ask in the follow-up batch is cut off: the
    broken one ends unscored and the others keep the first reply's verdicts, as the live judge does."""

    def chooser(body: dict, n: int) -> str:
        return "out_of_range" if len(body["messages"]) == 2 else "length"

    server = fake_server(chooser=chooser)
    assert cli(capsys, *submit_args(inputs, server, "--mode", mode, "--attempts", 2))[0] == 0
    run_dir = inputs["results"] / "b1"
    drive(capsys, run_dir)
    judgments = load_judgments(run_dir)
    assert {j.attempts for j in judgments if j.status in ("ok", "unscored") and j.criterion_id != "honours"} == {2}
    assert {j.status for j in judgments} >= {"ok", "unscored"}
    assert verdicts(judgments) == live_verdicts(inputs, fake_server(chooser=chooser), mode)


def test_failed_lines_are_errors_and_a_resubmit_sends_only_them(inputs, fake_server, capsys) -> None:
    failing = {"n": 0}

    def chooser(body: dict, n: int) -> str:
        failing["n"] += 1
        return "server_error" if failing["n"] % 3 == 0 and failing["n"] <= 8 else "valid"  # the first batch only

    server = fake_server(chooser=chooser)
    assert cli(capsys, *submit_args(inputs, server, "--criterion", "length"))[0] == 0
    run_dir = inputs["results"] / "b1"
    code, out = _collect_when_ended(capsys, run_dir)
    errors = [j for j in load_judgments(run_dir) if j.status == "error"]
    assert code == 1 and errors and all("500" in j.error for j in errors)
    assert f"{len(errors)} failed request(s)" in out
    sent_before = len(batch_lines(server))
    code, out = cli(capsys, "batch", "submit", "--resume", run_dir)
    assert code == 0 and f"{len(errors)} request(s) submitted" in out
    drive(capsys, run_dir)
    assert len(batch_lines(server)) == sent_before + len(errors)
    assert all(j.status == "ok" for j in load_judgments(run_dir))


def test_an_expired_batch_keeps_its_finished_lines_and_the_rest_is_sent_again(inputs, fake_server, capsys) -> None:
    server = fake_server()
    server.batches.expire_after = {0: 2}
    assert cli(capsys, *submit_args(inputs, server, "--criterion", "length"))[0] == 0
    run_dir = inputs["results"] / "b1"
    planned = read_manifest(run_dir).items_planned
    for _ in range(2):
        cli(capsys, "batch", "status", run_dir)
    code, out = cli(capsys, "batch", "collect", run_dir, "--no-report")
    assert len(load_judgments(run_dir)) == 2 and f"{planned - 2} request(s) never run" in out
    drive(capsys, run_dir)
    assert len(written_keys(run_dir)) == planned and len(batch_lines(server)) == planned
    assert verdicts(load_judgments(run_dir)) == {
        k: v for k, v in live_verdicts(inputs, fake_server()).items() if "/length/" in k
    }


def test_a_batch_that_fails_validation_shows_why_and_its_items_are_sent_again(inputs, fake_server, capsys) -> None:
    server = fake_server()
    server.batches.refuse = {0}
    assert cli(capsys, *submit_args(inputs, server, "--criterion", "length"))[0] == 0
    run_dir = inputs["results"] / "b1"
    code, out = cli(capsys, "batch", "status", run_dir)
    assert code == 0 and "failed" in out and "invalid_request: The batch was refused (scripted). (line 1)" in out
    code, out = cli(capsys, "batch", "collect", run_dir, "--no-report")
    assert "Collected 1 batch(es): 0 judgment(s) written" in out and "are ready for a follow-up batch" in out
    drive(capsys, run_dir)
    planned = read_manifest(run_dir).items_planned
    assert len(written_keys(run_dir)) == planned == len(batch_lines(server))


def test_cancel_keeps_what_ran_and_the_rest_is_sent_again(inputs, fake_server, capsys) -> None:
    server = fake_server()
    server.batches.lines_per_step = 1
    assert cli(capsys, *submit_args(inputs, server, "--criterion", "length"))[0] == 0
    run_dir = inputs["results"] / "b1"
    cli(capsys, "batch", "status", run_dir)  # in progress, one line run
    code, out = cli(capsys, "batch", "cancel", run_dir)
    assert code == 0 and "cancelling" in out
    code, out = cli(capsys, "batch", "status", run_dir)
    assert "cancelled" in out
    cli(capsys, "batch", "collect", run_dir, "--no-report")
    assert len(load_judgments(run_dir)) == 1
    drive(capsys, run_dir, rounds=12)
    assert len(written_keys(run_dir)) == read_manifest(run_dir).items_planned == len(batch_lines(server))


def test_kill_and_resume_between_submit_and_collect_loses_nothing_and_judges_nothing_twice(
    inputs, fake_server, capsys
) -> None:
    """submit in one process; a submit stopped between upload and create; collect in another process, killed
    after writing half its judgments; collected again: every item once, no request sent twice."""
    server = fake_server()
    server.batches.fail_create = 1
    env = {"OPENAI_API_KEY": KEY, "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    argv = [str(a) for a in submit_args(inputs, server, "--max-requests", 4)]
    first = subprocess.run([sys.executable, "-m", "evaluator", *argv], capture_output=True, text=True, env=env)
    assert first.returncode == 2 and "could not be created" in first.stderr
    run_dir = inputs["results"] / "b1"
    state = read_state(run_dir)
    assert state.batches[0].input_file_id and state.batches[0].batch_id is None
    resumed = subprocess.run(
        [sys.executable, "-m", "evaluator", "batch", "submit", "--resume", str(run_dir)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert len(server.batches.batches) == len(read_state(run_dir).batches)  # the stopped one created once
    for _ in range(3):
        cli(capsys, "batch", "status", run_dir)
    collected = subprocess.run(
        [sys.executable, "-m", "evaluator", "batch", "collect", str(run_dir), "--no-report"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert collected.returncode == 0, collected.stderr
    complete = (run_dir / JUDGMENTS).read_bytes().splitlines(keepends=True)
    # a collect killed half way: half its lines written, the last one cut short, its batches not marked collected
    (run_dir / JUDGMENTS).write_bytes(b"".join(complete[: len(complete) // 2]) + complete[-1][:40])
    state = read_state(run_dir)
    for record in state.batches:
        record.collected = False
    state.reasks = []
    write_state(run_dir, state)
    drive(capsys, run_dir)
    keys = written_keys(run_dir)
    assert len(keys) == len(set(keys)) == read_manifest(run_dir).items_planned
    live_server = fake_server()
    assert verdicts(load_judgments(run_dir)) == live_verdicts(inputs, live_server)
    assert len(batch_lines(server)) == len(live_server.received)  # each call sent once, as the live run does


def test_vllm_round_trip_export_then_collect_from_file(inputs, fake_server, capsys, monkeypatch) -> None:
    """export writes the file run_batch reads; its output (here: each line posted to the fake server's chat
    endpoint, written as run_batch writes it) is collected with --from-file, stage after stage, with no key
    and no queue: the files and batches endpoints are never called."""
    monkeypatch.delenv("OPENAI_API_KEY")
    server = fake_server()
    requests_file = inputs["results"].parent / "requests.jsonl"
    results = inputs["results"].parent / "results.jsonl"
    argv = submit_args(inputs, server, "--export", requests_file)
    del argv[argv.index("--base-url") : argv.index("--base-url") + 2]
    code, out = cli(capsys, *argv)
    assert code == 0, out
    run_dir = inputs["results"] / "b1"
    for _ in range(4):
        written = requests_file.read_text()
        assert cli(capsys, "batch", "export", run_dir, requests_file)[0] == 0
        assert requests_file.read_text() == written  # before a collect, the same requests again
        with results.open("w") as out_file:
            for n, raw in enumerate(written.splitlines()):
                line = json.loads(raw)
                status, body = _post(server.url + "/chat/completions", line["body"])
                response = {"status_code": status, "request_id": f"vllm-batch-{n}", "body": body}
                entry = {"id": f"vllm-{n}", "custom_id": line["custom_id"], "response": response, "error": None}
                out_file.write(json.dumps(entry) + "\n")
        code, out = cli(capsys, "batch", "collect", run_dir, "--from-file", results, "--no-report")
        assert code == 0, out
        if read_manifest(run_dir).complete:
            break
        assert cli(capsys, "batch", "export", run_dir, requests_file)[0] == 0
    assert verdicts(load_judgments(run_dir)) == live_verdicts(inputs, fake_server())
    assert server.batches.headers == []


def _post(url: str, body: dict) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_no_key_is_written_and_the_cost_is_at_batch_prices(inputs, fake_server, capsys) -> None:
    server = fake_server()
    code, out = cli(capsys, *submit_args(inputs, server))
    assert code == 0
    run_dir = inputs["results"] / "b1"
    outputs = [out]
    for _ in range(3):
        outputs.append(cli(capsys, "batch", "status", run_dir)[1])
    outputs.append(cli(capsys, "batch", "collect", run_dir)[1])
    assert server.batches.headers and all(h["authorization"] == f"Bearer {KEY}" for h in server.batches.headers)
    for path in [p for p in inputs["results"].rglob("*") if p.is_file()]:
        assert KEY.encode() not in path.read_bytes(), path
    assert all(KEY not in text for text in outputs)
    manifest = read_manifest(run_dir)
    assert manifest.judge["batch"] == "openai-batch" and (run_dir / "report.html").is_file()
    price = DEFAULT_PRICES[MODEL]
    assert manifest.usage.prompt_tokens > 0
    assert manifest.cost_usd == pytest.approx(price.cost(manifest.usage) / 2, abs=1e-6)


REFUSAL = {"error": {"message": "json_schema is not supported", "type": "BadRequestError", "param": None, "code": 400}}
"""A refused line as vLLM's run_batch writes it: the endpoint's error beside a response holding its status."""


def test_results_lines_in_both_shapes_are_read() -> None:
    data = b"\n".join(
        json.dumps(line).encode()
        for line in (
            {"custom_id": "a", "response": {"status_code": 200, "body": {"choices": []}}, "error": None},
            {"custom_id": "b", "response": {"status_code": 429, "body": {"error": {"message": "slow down"}}}},
            {"custom_id": "c", "response": None, "error": {"code": "batch_expired", "message": "expired"}},
            {"custom_id": "d", "response": {"status_code": 400, "request_id": "r", "body": None}, "error": REFUSAL},
            {"custom_id": "e", "response": {"status_code": 400, "request_id": "r"}, "error": "stream mode"},
            {"custom_id": "f", "response": {"status_code": 400, "body": NO_JSON_SCHEMA}},
            {"custom_id": "g", "response": {"status_code": 400, "body": NO_SEED}},
            {"custom_id": "h", "response": {"status_code": 400, "request_id": "r"}, "error": NO_SEED},
        )
    )
    a, b, c, d, e, f, g, h = read_results(data, "out.jsonl")
    assert a.reply == '{"choices":[]}' and a.error is None
    assert b.reply is None and "429: slow down" in (b.error or "") and not b.unanswered
    assert c.unanswered
    assert d.status == 400 and "400: json_schema is not supported" in (d.error or "") and not d.unanswered
    assert e.status == 400 and "stream mode" in (e.error or "")
    assert [refused_format(r) for r in (a, b, c, d, e, f)] == [False, False, False, True, False, True]
    assert [refused_seed(r) for r in (a, b, c, d, e, f, g, h)] == [False] * 6 + [True, True]
    assert not any(refused_system_role(r) for r in (a, b, c, d, e, f, g, h))


def test_refusals_of_the_system_role_are_told_in_every_shape_a_queue_writes() -> None:
    """As vLLM's server answers it (in the body), as its run_batch writes it (beside a bodiless response, or
    flat), as llama-server words it (500) and as OpenAI did for o1-mini: refused for the system role."""
    flat = {"object": "error", "message": "System role not supported", "type": "BadRequestError", "param": None}
    o1 = {"message": "'messages[0].role' does not support 'system' with this model.", "param": "messages[0].role"}
    jinja = {"code": 500, "message": "Error: Jinja Exception: System role not supported", "type": "server_error"}
    lines = (
        {"custom_id": "a", "response": {"status_code": 400, "body": NO_SYSTEM_ROLE}},
        {"custom_id": "b", "response": {"status_code": 400, "request_id": "r", "body": None}, "error": NO_SYSTEM_ROLE},
        {"custom_id": "c", "response": {"status_code": 400, "request_id": "r"}, "error": flat},
        {"custom_id": "d", "response": None, "error": {"message": "System role not supported"}},
        {"custom_id": "e", "response": {"status_code": 500, "body": {"error": jinja}}},
        {"custom_id": "f", "response": {"status_code": 400, "body": {"error": o1}}},
        {
            "custom_id": "g",
            "response": {"status_code": 429, "body": {"error": {"message": "System role not supported"}}},
        },
        {
            "custom_id": "h",
            "response": {"status_code": 200, "body": {"choices": [], "note": "System role not supported"}},
        },
    )
    results = list(read_results(b"\n".join(json.dumps(line).encode() for line in lines), "out.jsonl"))
    assert [refused_system_role(r) for r in results] == [True] * 6 + [False, False]


def test_a_results_file_is_read_a_line_at_a_time_as_the_bytes_are_and_a_bad_path_says_what_is_wrong(
    tmp_path: Path,
) -> None:
    lines = [
        {"custom_id": "a", "response": {"status_code": 200, "body": {"choices": []}}, "error": None},
        {"custom_id": "g", "response": {"status_code": 400, "body": NO_SEED}},
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode() + b"\nnot json\n"
    (tmp_path / "results.jsonl").write_bytes(data)
    streamed = read_results_file(tmp_path / "results.jsonl")
    expected = read_results(data, str(tmp_path / "results.jsonl"))
    assert [next(streamed), next(streamed)] == [next(expected), next(expected)]
    with pytest.raises(BatchFileError, match="results.jsonl, line 4: not a batch result line"):
        next(streamed)
    with pytest.raises(BatchFileError, match="missing.jsonl: cannot read the results file: no such file"):
        read_results_file(tmp_path / "missing.jsonl")
    with pytest.raises(BatchFileError, match="cannot read the results file: not a regular file"):
        read_results_file(tmp_path)


def test_items_the_response_cache_answers_are_judged_at_submit_and_not_sent(inputs, fake_server, capsys) -> None:
    """A live run fills the cache; a batch run of the same plan then sends nothing, judges every item from
    it, and ends with the same verdicts (the dependent stage too, in the second round)."""
    live_server = fake_server()
    cache = inputs["results"].parent / "cache.sqlite"
    settings = JudgeSettings(kind="openai", model=MODEL, base_url=live_server.url, cache_path=cache)
    config = RunConfig(
        transcripts=[inputs["sessions"]],
        rubrics=[inputs["rubric"]],
        output=inputs["results"] / "live",
        judge=settings,
        show_progress=False,
    )
    live = verdicts(load_judgments(live_run(config).run_dir))
    server = fake_server()
    argv = submit_args(inputs, server)
    argv[argv.index("--no-cache")] = "--cache"
    argv.insert(argv.index("--cache") + 1, cache)
    argv[argv.index("--base-url") + 1] = live_server.url  # the cache is keyed by endpoint
    code, out = cli(capsys, *argv)
    assert code == 0 and "0 request(s) submitted" in out and "answered from the response cache" in out
    run_dir = inputs["results"] / "b1"
    assert cli(capsys, "batch", "submit", "--resume", run_dir)[0] == 0
    assert read_state(run_dir).batches == [] and batch_lines(server) == batch_lines(live_server) == []
    assert verdicts(load_judgments(run_dir)) == live and read_manifest(run_dir).complete
    assert all(j.from_cache for j in load_judgments(run_dir) if j.status == "ok")


def test_a_run_started_with_metadata_collects_and_resumes_with_it_and_stays_blind(inputs, fake_server, capsys) -> None:
    """The sidecar is read again by every later command from what the run recorded; no value reaches a prompt."""
    sidecar = inputs["sessions"].parent / "arms.csv"
    sidecar.write_text("transcript_id,arm\ns1,arm-zebra-7\ns2,arm-quokka-9\n", encoding="utf-8")
    server = fake_server()
    code, out = cli(capsys, *submit_args(inputs, server, "--metadata", sidecar))
    assert code == 0, out
    run_dir = inputs["results"] / "b1"
    drive(capsys, run_dir)
    assert read_manifest(run_dir).transcript_metadata["s2"]["arm"] == "arm-quokka-9"
    sent = json.dumps(batch_lines(server))
    assert batch_lines(server) and "arm-zebra-7" not in sent and "arm-quokka-9" not in sent


def test_run_resume_refuses_a_batch_run_and_names_the_batch_commands(inputs, fake_server, capsys) -> None:
    """A live resume would judge the waiting items at full price beside the open batches."""
    server = fake_server()
    assert cli(capsys, *submit_args(inputs, server))[0] == 0
    run_dir = inputs["results"] / "b1"
    sent = len(server.received)
    code, out = cli(capsys, "run", "--resume", run_dir, "--base-url", server.url, "--model", MODEL)
    assert code != 0 and "batch queue" in out and f"evaluator batch status {run_dir}" in out
    assert len(server.received) == sent and not written_keys(run_dir)


def request_lines(run_dir: Path) -> dict[str, list[dict]]:
    """Each batch's request lines as uploaded, by batch name."""
    return {
        path.name.split(".")[0]: [json.loads(line) for line in path.read_text().splitlines()]
        for path in sorted((run_dir / "batch").glob("*.requests.jsonl"))
    }


def format_of(line: dict) -> str:
    return line["body"].get("response_format", {}).get("type", "text")


def test_lines_refused_for_json_schema_are_sent_again_as_json_object_under_auto(inputs, fake_server, capsys) -> None:
    """A strict endpoint refuses every json_schema line with a 400: collect records no judgment for them,
    the run steps down as the live judge does, and the next submit sends them as json_object; the run ends
    with the verdicts of a live run against an endpoint without json_schema."""
    server = fake_server()
    server.batches.strict = True
    run_dir, refused, out = _first_batch_collected(inputs, server, capsys)
    assert f"{refused} request(s) refused for their output format" in out and "sends them as json_object" in out
    assert not written_keys(run_dir) and read_manifest(run_dir).judge["output_in_force"] == "json_object"
    assert cli(capsys, "batch", "submit", "--resume", run_dir)[0] == 0
    drive(capsys, run_dir)
    formats = {name: {format_of(line) for line in lines} for name, lines in request_lines(run_dir).items()}
    assert formats.pop("0001") == {"json_schema"} and set().union(*formats.values()) == {"json_object"}
    judgments = load_judgments(run_dir)
    assert all(j.status != "error" for j in judgments) and any(j.status == "ok" for j in judgments)
    assert {j.parameters["output"] for j in judgments if j.status == "ok"} == {"json_object"}
    assert verdicts(judgments) == live_verdicts(inputs, fake_server(supports_json_schema=False))


def test_a_batch_collected_after_the_step_down_is_read_in_the_format_it_was_sent_in(
    inputs, fake_server, capsys
) -> None:
    """Three batches in json_schema; the first ends first and is refused, the other two are still running
    when the run steps down: they are judged as sent (json_schema), and only the first one's items go out
    again, as json_object."""
    server = fake_server()
    server.batches.strict = {0}
    server.batches.lines_per_step, server.batches.expire_after = 1, {0: 3}  # batch 0 runs its 3 lines at once
    assert cli(capsys, *submit_args(inputs, server, "--criterion", "length", "--max-requests", 3))[0] == 0
    run_dir = inputs["results"] / "b1"
    for _ in range(2):
        cli(capsys, "batch", "status", run_dir)
    code, out = cli(capsys, "batch", "collect", run_dir, "--no-report")
    assert code == 0 and "3 request(s) refused for their output format" in out and "Still running" in out
    assert [b.collected for b in read_state(run_dir).batches] == [True, False, False]
    drive(capsys, run_dir, rounds=12)
    lines = request_lines(run_dir)
    assert [(len(batch), {format_of(line) for line in batch}) for batch in lines.values()] == [
        (3, {"json_schema"}), (3, {"json_schema"}), (2, {"json_schema"}), (3, {"json_object"})
    ]  # fmt: skip
    resent = {line["custom_id"] for line in lines["0004"]}
    assert resent == {line["custom_id"] for line in lines["0001"]}
    judgments = load_judgments(run_dir)
    assert all(j.status == "ok" for j in judgments) and len(judgments) == 8
    assert {j.key: j.parameters["output"] for j in judgments} == {
        j.key: "json_object" if j.key in resent else "json_schema" for j in judgments
    }


def test_a_chosen_json_schema_does_not_step_down_and_the_error_says_how_to_fix_it(inputs, fake_server, capsys) -> None:
    server = fake_server()
    server.batches.strict = True
    argv = submit_args(inputs, server, "--criterion", "length", "--output-format", "json_schema")
    assert cli(capsys, *argv)[0] == 0
    run_dir = inputs["results"] / "b1"
    code, out = _collect_when_ended(capsys, run_dir)
    errors = load_judgments(run_dir)
    assert code == 1 and errors and all(j.status == "error" for j in errors)
    assert all("400" in j.error and "response_format" in j.error and "--output-format auto" in j.error for j in errors)
    assert "refused for their output format" not in out
    assert read_manifest(run_dir).judge["output_in_force"] == "json_schema"
    assert cli(capsys, "batch", "submit", "--resume", run_dir)[0] == 0
    assert {format_of(line) for line in request_lines(run_dir)["0002"]} == {"json_schema"}


def _first_batch_collected(inputs, server, capsys) -> tuple[Path, int, str]:
    """Submit, let the queue finish the first batch and collect it: the run, the lines that batch held, and
    what collect printed."""
    assert cli(capsys, *submit_args(inputs, server))[0] == 0
    run_dir = inputs["results"] / "b1"
    code, out = _collect_when_ended(capsys, run_dir)
    assert code == 0, out
    return run_dir, len(request_lines(run_dir)["0001"]), out


def test_lines_refused_for_the_default_seed_are_sent_again_without_it(inputs, fake_server, capsys) -> None:
    """An endpoint that takes no seed refuses every line with a 400 naming it: collect records no judgment
    for them, the run leaves the default seed out as the live judge does (recorded in the manifest), and the
    next submit sends them without it; the run ends with the verdicts of a live run against that endpoint,
    its judgments recording no seed."""
    server = fake_server(unsupported=("seed",))
    run_dir, refused, out = _first_batch_collected(inputs, server, capsys)
    assert f"{refused} request(s) refused for the default seed" in out and "sends them without one" in out
    assert not written_keys(run_dir) and read_manifest(run_dir).judge["seed_left_out_since"] == "0002"
    assert cli(capsys, "batch", "submit", "--resume", run_dir)[0] == 0
    drive(capsys, run_dir)
    lines = request_lines(run_dir)
    assert all(line["body"]["seed"] == 0 for line in lines.pop("0001"))
    assert lines and not any("seed" in line["body"] for batch in lines.values() for line in batch)
    judgments = load_judgments(run_dir)
    assert all(j.status != "error" for j in judgments) and any(j.status == "ok" for j in judgments)
    assert {j.parameters["seed"] for j in judgments if j.status == "ok"} == {None}
    assert verdicts(judgments) == live_verdicts(inputs, fake_server(unsupported=("seed",)))


def _three_batches_the_first_ended(inputs, server, capsys) -> tuple[Path, str]:
    """Three batches of one criterion submitted; the first runs its lines at once and is collected while the
    other two are still running: the run, and what collect printed."""
    server.batches.lines_per_step, server.batches.expire_after = 1, {0: 3}  # batch 0 runs its 3 lines at once
    assert cli(capsys, *submit_args(inputs, server, "--criterion", "length", "--max-requests", 3))[0] == 0
    run_dir = inputs["results"] / "b1"
    for _ in range(2):
        cli(capsys, "batch", "status", run_dir)
    code, out = cli(capsys, "batch", "collect", run_dir, "--no-report")
    assert code == 0 and "Still running" in out, out
    return run_dir, out


def test_a_batch_collected_after_the_seed_is_left_out_is_read_with_the_seed_it_was_sent_with(
    inputs, fake_server, capsys
) -> None:
    """Three batches sent with the seed; the first ends first and is refused, the other two are still
    running when the run leaves the seed out: their judgments record seed 0, and only the first one's
    items go out again, without it."""
    server = fake_server()
    server.batches.refuse_seed = {0}
    run_dir, out = _three_batches_the_first_ended(inputs, server, capsys)
    assert "3 request(s) refused for the default seed" in out
    drive(capsys, run_dir, rounds=12)
    lines = request_lines(run_dir)
    assert [(len(batch), {"seed" in line["body"] for line in batch}) for batch in lines.values()] == [
        (3, {True}), (3, {True}), (2, {True}), (3, {False})
    ]  # fmt: skip
    resent = {line["custom_id"] for line in lines["0004"]}
    assert resent == {line["custom_id"] for line in lines["0001"]}
    judgments = load_judgments(run_dir)
    assert all(j.status == "ok" for j in judgments) and len(judgments) == 8
    assert {j.key: j.parameters["seed"] for j in judgments} == {
        j.key: None if j.key in resent else 0 for j in judgments
    }


def test_a_chosen_seed_refused_is_an_error_that_says_how_to_fix_it(inputs, fake_server, capsys) -> None:
    server = fake_server(unsupported=("seed",))
    assert cli(capsys, *submit_args(inputs, server, "--criterion", "length", "--seed", 7))[0] == 0
    run_dir = inputs["results"] / "b1"
    code, out = _collect_when_ended(capsys, run_dir)
    errors = load_judgments(run_dir)
    assert code == 1 and errors and all(j.status == "error" for j in errors)
    assert all("'seed'" in j.error and "the seed was chosen" in j.error and "seed=null" in j.error for j in errors)
    assert "refused for the default seed" not in out and "seed_left_out_since" not in read_manifest(run_dir).judge
    assert cli(capsys, "batch", "submit", "--resume", run_dir)[0] == 0
    assert {line["body"]["seed"] for line in request_lines(run_dir)["0002"]} == {7}


def _opens_with_system(line: dict) -> bool:
    return line["body"]["messages"][0]["role"] == "system"


def test_lines_refused_for_the_system_role_are_sent_again_folded(inputs, fake_server, capsys) -> None:
    """A model whose chat template has no system role (vLLM serving Gemma) refuses every line: collect records
    no judgment for them, the run folds the instructions into the first user message from the next batch on
    (recorded in the manifest), and the run ends with the verdicts of a live run against that endpoint, each
    item judged once, its judgments recording system_role false."""
    server = fake_server(no_system_role="vllm")
    run_dir, refused, out = _first_batch_collected(inputs, server, capsys)
    assert f"{refused} request(s) refused for their system message" in out and "sends them folded" in out
    assert not written_keys(run_dir) and read_manifest(run_dir).judge["system_folded_since"] == "0002"
    assert cli(capsys, "batch", "submit", "--resume", run_dir)[0] == 0
    drive(capsys, run_dir)
    lines = request_lines(run_dir)
    assert all(_opens_with_system(line) for line in lines.pop("0001"))
    assert lines and not any(_opens_with_system(line) for batch in lines.values() for line in batch)
    judgments = load_judgments(run_dir)
    assert all(j.status != "error" for j in judgments) and any(j.status == "ok" for j in judgments)
    assert {j.parameters.get("system_role") for j in judgments if j.status == "ok"} == {False}
    keys = written_keys(run_dir)
    assert len(keys) == len(set(keys)) == read_manifest(run_dir).items_planned
    assert verdicts(judgments) == live_verdicts(inputs, fake_server(no_system_role="vllm"))


def test_a_batch_collected_after_folding_is_read_as_it_was_sent(inputs, fake_server, capsys) -> None:
    """Three batches sent with a system message; the first ends first and is refused for it, the other two are
    answered: their judgments record no system_role, and only the first one's items go out again, folded."""
    server = fake_server()
    server.batches.refuse_template = {0}
    run_dir, out = _three_batches_the_first_ended(inputs, server, capsys)
    assert "3 request(s) refused for their system message" in out
    drive(capsys, run_dir, rounds=12)
    lines = request_lines(run_dir)
    assert [(len(batch), {_opens_with_system(line) for line in batch}) for batch in lines.values()] == [
        (3, {True}), (3, {True}), (2, {True}), (3, {False})
    ]  # fmt: skip
    resent = {line["custom_id"] for line in lines["0004"]}
    assert resent == {line["custom_id"] for line in lines["0001"]}
    judgments = load_judgments(run_dir)
    assert all(j.status == "ok" for j in judgments) and len(judgments) == 8
    assert {j.key: j.parameters.get("system_role") for j in judgments} == {
        j.key: False if j.key in resent else None for j in judgments
    }


def test_a_line_refused_although_folded_is_an_error_that_says_how_to_fix_it(inputs, fake_server, capsys) -> None:
    server = fake_server(no_system_role="vllm")
    server.batches.refuse_template = {1}  # the folded batch: a template that takes no instructions at all
    run_dir, refused, _ = _first_batch_collected(inputs, server, capsys)
    assert cli(capsys, "batch", "submit", "--resume", run_dir)[0] == 0
    code, out = _collect_when_ended(capsys, run_dir)
    errors = load_judgments(run_dir)
    assert code == 1 and len(errors) == refused and all(j.status == "error" for j in errors)
    assert all(
        "System role not supported" in j.error and "even with the instructions folded" in j.error for j in errors
    )
    assert all("--chat-template" in j.error and j.parameters["system_role"] is False for j in errors)
    assert "refused for their system message" not in out
    assert read_manifest(run_dir).judge["system_folded_since"] == "0002"


def test_vllm_run_batch_output_refused_for_the_system_role_is_exported_again_folded(
    inputs, fake_server, capsys, monkeypatch
) -> None:
    """export + collect --from-file against vLLM serving a model without a system role: run_batch writes each
    refusal as an error beside a bodiless response; the next export holds those lines folded, and the run
    ends with the live run's verdicts."""
    monkeypatch.delenv("OPENAI_API_KEY")
    server = fake_server(no_system_role="vllm")
    requests_file = inputs["results"].parent / "requests.jsonl"
    results = inputs["results"].parent / "results.jsonl"
    argv = submit_args(inputs, server, "--export", requests_file)
    del argv[argv.index("--base-url") : argv.index("--base-url") + 2]
    assert cli(capsys, *argv)[0] == 0
    run_dir = inputs["results"] / "b1"
    exported = []
    for _ in range(5):
        written = [json.loads(raw) for raw in requests_file.read_text().splitlines()]
        exported.append(written)
        with results.open("w") as out_file:
            for n, line in enumerate(written):
                status, body = _post(server.url + "/chat/completions", line["body"])
                response = {
                    "status_code": status,
                    "request_id": f"vllm-batch-{n}",
                    "body": body if status == 200 else None,
                }
                error = None if status == 200 else body["error"]
                out_file.write(
                    json.dumps(
                        {"id": f"vllm-{n}", "custom_id": line["custom_id"], "response": response, "error": error}
                    )
                    + "\n"
                )
        code, out = cli(capsys, "batch", "collect", run_dir, "--from-file", results, "--no-report")
        assert code == 0, out
        if read_manifest(run_dir).complete:
            break
        assert cli(capsys, "batch", "export", run_dir, requests_file)[0] == 0
    assert all(_opens_with_system(line) for line in exported[0])
    assert len(exported) > 2 and not any(_opens_with_system(line) for batch in exported[1:] for line in batch)
    assert {line["custom_id"] for line in exported[1]} >= {line["custom_id"] for line in exported[0]}
    assert verdicts(load_judgments(run_dir)) == live_verdicts(inputs, fake_server(no_system_role="vllm"))
    assert server.batches.headers == []


def test_kill_and_resume_after_folding_judges_everything_once(inputs, fake_server, capsys) -> None:
    """The folded submit and its collect each in a process of their own, the collect cut short half way and
    collected again: every item once, each folded line sent once, the live run's verdicts."""
    server = fake_server(no_system_role="vllm")
    run_dir, refused, _ = _first_batch_collected(inputs, server, capsys)
    env = {"OPENAI_API_KEY": KEY, "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    steps = [["submit", "--resume", run_dir], *[["status", run_dir]] * 3, ["collect", run_dir, "--no-report"]]
    for step in steps:
        argv = [sys.executable, "-m", "evaluator", "batch", *map(str, step)]
        done = subprocess.run(argv, capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
    complete = (run_dir / JUDGMENTS).read_bytes().splitlines(keepends=True)
    (run_dir / JUDGMENTS).write_bytes(b"".join(complete[: len(complete) // 2]) + complete[-1][:40])
    state = read_state(run_dir)
    for record in state.batches[1:]:
        record.collected = False
    state.reasks = []
    write_state(run_dir, state)
    drive(capsys, run_dir)
    keys = written_keys(run_dir)
    assert len(keys) == len(set(keys)) == read_manifest(run_dir).items_planned
    folded = [line for line in batch_lines(server) if not _opens_with_system({"body": line})]
    assert len({json.dumps(line, sort_keys=True) for line in folded}) == len(folded)
    assert verdicts(load_judgments(run_dir)) == live_verdicts(inputs, fake_server(no_system_role="vllm"))


def test_a_recorded_item_key_is_made_back_into_its_planned_request_and_a_stale_one_is_refused(
    inputs, fake_server, capsys, monkeypatch
) -> None:
    """A batch run keeps no table of its requests: each recorded key is made back into the request the plan
    has for it, and a key the plan no longer has stops the command with what to do."""
    import asyncio

    from evaluator.batch_run import open_run
    from evaluator.manifest import RunError

    monkeypatch.delenv("OPENAI_API_KEY")
    argv = submit_args(inputs, fake_server(), "--export", inputs["results"].parent / "requests.jsonl")
    del argv[argv.index("--base-url") : argv.index("--base-url") + 2]
    assert cli(capsys, *argv)[0] == 0
    run = open_run(inputs["results"] / "b1", offline=True)
    try:
        planned = [plan.request(c) for plan in run.plans for stage in plan.stages for c in stage]
        assert len(planned) == 2 * 4 * 3 and run.requests_for(r.item.key for r in planned) == planned
        stale = ["mini/s1/0/requested/0", "mini/s1/1/gone/0", "mini/s9/1/requested/0", "old/s1/1/requested/0"]
        for key in [*stale, "mini/s1/1/requested/1", "mini/s1/x/requested/0", "mini"]:
            with pytest.raises(RunError, match=f"item {key} of a recorded batch is not in the run's plan any more"):
                run.requests_for([key])
    finally:
        asyncio.run(run.aclose())
