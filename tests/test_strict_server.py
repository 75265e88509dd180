"""The LLM judge against a server that enforces the OpenAI Chat Completions reference to the letter
(tests/fake_openai.py with strict=True): every body the judge sends, live or in a batch file, in every
mode, scale, stage and option, is accepted with its json_schema response format in force; what such a
server refuses of a default the judge adapts to, and what it refuses of a user's choice stops the run."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from evaluator.config import JudgeSettings, RunConfig
from evaluator.judges.base import JudgeFatalError
from evaluator.models import Judgment
from evaluator.rubrics import load_rubrics
from evaluator.runner import run
from evaluator.store import load_judgments
from tests.conftest import REPO
from tests.fake_openai import FakeOpenAI, strict_problem
from tests.test_batch import cli, drive
from tests.test_judge_openai import _call, _judge, rubric  # noqa: F401 (rubric: a fixture)

RUBRICS = REPO / "rubrics"  # binary, likert, count and categorical scales, and criteria judged in a later stage
TRANSCRIPTS = REPO / "transcripts"
SCALES = {c.id: c.scale.type for r in load_rubrics([RUBRICS]) for c in r.criteria}
STAGED = {c.id for r in load_rubrics([RUBRICS]) for c in r.criteria if c.applies_when and c.applies_when.criterion}
MODEL = "gpt-4o-mini"


def _run(
    server: FakeOpenAI,
    tmp_path: Path,
    mode: str = "per-criterion",
    samples: int = 1,
    transcripts: Path = TRANSCRIPTS,
    rubrics: Path = RUBRICS,
    **judge: object,
) -> list[Judgment]:
    settings = JudgeSettings(kind="openai", model=MODEL, base_url=server.url, cache_path=None, **judge)  # type: ignore[arg-type]
    config = RunConfig(
        transcripts=[transcripts],
        rubrics=[rubrics],
        output=tmp_path / "results",
        judge=settings,
        mode=mode,  # type: ignore[arg-type]
        samples=samples,
        show_progress=False,
    )
    result = run(config)
    assert result.ok, result.manifest.counts
    return load_judgments(result.run_dir)


def _judged(judgments: list[Judgment]) -> list[Judgment]:
    """Judgments an LLM call gave (the rest the planner decided: not applicable without a call)."""
    assert all(j.status == "not_applicable" for j in judgments if not j.attempts)
    return [j for j in judgments if j.attempts]


def _accepted_with_json_schema(server: FakeOpenAI, judgments: list[Judgment], strict: bool = True) -> None:
    """Every request the strict server saw it accepted at once with a json_schema response format, and every
    judged item has its verdict: a refusal would show as a repeat here, a step-down as another format."""
    bodies = [r.body for r in server.received]
    assert bodies and [strict_problem(b) for b in bodies] == [None] * len(bodies)
    assert Counter(b["response_format"]["type"] for b in bodies) == {"json_schema": len(bodies)}
    assert {b["response_format"]["json_schema"]["strict"] for b in bodies} == {strict}
    judged = _judged(judgments)
    assert judged and {j.status for j in judged} == {"ok"}
    assert {j.parameters["output"] for j in judged} == {"json_schema"}
    assert {j.attempts for j in judged} == {1} and {j.transport_retries for j in judged} == {0}


@pytest.mark.parametrize("mode", ["per-criterion", "per-turn", "per-transcript"])
def test_every_mode_scale_and_stage_is_accepted_with_json_schema(fake_server, tmp_path, mode) -> None:
    server = fake_server(strict=True)
    judgments = _run(server, tmp_path, mode)
    _accepted_with_json_schema(server, judgments)
    judged = {j.criterion_id for j in _judged(judgments)}
    assert {SCALES[c] for c in judged} == {"binary", "likert", "count", "categorical"}
    assert judged & STAGED  # a criterion asked only after its prerequisite's verdict


def test_logprobs_samples_and_a_chosen_seed_are_accepted(fake_server, tmp_path) -> None:
    server = fake_server(strict=True)
    judgments = _run(server, tmp_path, samples=2, seed=7, logprobs=True)
    _accepted_with_json_schema(server, judgments)
    assert {r.body["seed"] for r in server.received} == {7, 8}
    assert {(r.body["logprobs"], r.body["top_logprobs"]) for r in server.received} == {(True, 5)}
    assert any(j.weighted_score is not None for j in judgments)


def test_re_asks_after_bad_replies_are_accepted(fake_server, tmp_path) -> None:
    """An out-of-range, a refused and a cut JSON reply: each re-ask carries the reply and what was wrong."""
    server = fake_server(strict=True, script=["out_of_range", "refusal", "malformed"])
    judgments = _run(server, tmp_path, rubrics=RUBRICS / "act_fidelity.yaml")
    assert [strict_problem(r.body) for r in server.received] == [None] * len(server.received)
    assert {r.body["response_format"]["type"] for r in server.received} == {"json_schema"}
    assert {m["role"] for r in server.received for m in r.body["messages"]} == {"system", "user", "assistant"}
    assert {j.status for j in _judged(judgments)} == {"ok"} and max(j.attempts for j in judgments) > 1


@pytest.mark.parametrize("output", ["json_object", "text"])
def test_a_chosen_output_format_is_accepted(fake_server, tmp_path, output) -> None:
    server = fake_server(strict=True)
    judgments = _run(server, tmp_path, "per-turn", rubrics=RUBRICS / "pacing.yaml", output=output)
    assert [strict_problem(r.body) for r in server.received] == [None] * len(server.received)
    assert {j.status for j in _judged(judgments)} == {"ok"}
    assert {j.parameters["output"] for j in _judged(judgments)} == {output}


@pytest.mark.parametrize("mode", ["per-criterion", "per-transcript"])
def test_batch_request_lines_are_accepted_with_json_schema(fake_server, tmp_path, capsys, monkeypatch, mode) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-strict-test-0123456789")
    server = fake_server(strict=True)
    options = ["--samples", "2", "--logprobs"] if mode == "per-criterion" else []
    code, out = cli(
        capsys,
        *("batch", "submit", TRANSCRIPTS, "-r", RUBRICS, "-o", tmp_path, "--model", MODEL, "--base-url", server.url),
        *("--no-cache", "--run-id", "b1", "--mode", mode, *options),
    )
    assert code == 0, out
    drive(capsys, tmp_path / "b1")
    assert all(r.path.startswith("batch:") for r in server.received)
    _accepted_with_json_schema(server, load_judgments(tmp_path / "b1"))


def _long_session(path: Path, therapist_turns: int) -> Path:
    lines = [
        f"Patient: This is the {n}th thing I say, and it is hard.\nTherapist: I hear you; tell me more about {n}.\n"
        for n in range(therapist_turns)
    ]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_a_long_session_in_one_call_stays_strict_with_its_scores_as_ranges(fake_server, tmp_path) -> None:
    """130 turns x 2 likert criteria hold 1,300 enum values, past strict mode's 1,000: integer scales go as
    minimum..maximum instead, and the schema stays strict."""
    server = fake_server(strict=True)
    session = _long_session(tmp_path / "long.txt", 130)
    judgments = _run(server, tmp_path, "per-transcript", transcripts=session, rubrics=RUBRICS / "mi_relational.yaml")
    _accepted_with_json_schema(server, judgments)
    (body,) = [r.body for r in server.received]
    verdict = body["response_format"]["json_schema"]["schema"]["properties"]["turn_1"]["properties"]["empathy"]
    assert verdict["properties"]["score"]["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": 5}
    assert len(_judged(judgments)) == 260


def test_a_schema_too_large_for_strict_mode_goes_without_strict_and_keeps_json_schema(fake_server, tmp_path) -> None:
    """420 turns x 3 criteria: 6,720 object properties, past strict mode's 5,000."""
    server = fake_server(strict=True)
    session = _long_session(tmp_path / "long.txt", 420)
    judgments = _run(server, tmp_path, "per-transcript", transcripts=session, rubrics=RUBRICS / "act_fidelity.yaml")
    _accepted_with_json_schema(server, judgments, strict=False)
    assert len(_judged(judgments)) == 1260
    assert {j.parameters.get("strict") for j in judgments} == {False}


def test_a_refused_strict_schema_is_sent_again_without_strict_not_stepped_down(fake_server, tmp_path) -> None:
    """A deployment with strict mode's launch limits (100 properties) refuses a whole session's schema: that
    call goes again with strict false, and so does the other session's call of the same schema (refused too
    if it was already on the wire); json_schema stays in force, and calls whose schema fits stay strict."""
    server = fake_server(strict=True, schema_limits={"properties": 100, "depth": 5})
    judgments = _run(server, tmp_path, "per-transcript", rubrics=RUBRICS / "act_fidelity.yaml")
    bodies = [r.body for r in server.received]
    strict = [b["response_format"]["json_schema"]["strict"] for b in bodies]
    assert strict.count(False) == 2 and 1 <= strict.count(True) <= 2 and len(strict) == 2 + strict.count(True)
    assert {b["response_format"]["type"] for b in bodies} == {"json_schema"}
    judged = _judged(judgments)
    assert {j.status for j in judged} == {"ok"} and {j.parameters.get("strict") for j in judged} == {False}
    server = fake_server(strict=True, schema_limits={"properties": 100, "depth": 5})
    _accepted_with_json_schema(server, _run(server, tmp_path / "small", rubrics=RUBRICS / "act_fidelity.yaml"))


# --- parameters a strict server refuses by name ------------------------------------------------------


async def test_a_refused_default_seed_is_left_out_and_recorded(fake_server, rubric) -> None:  # noqa: F811
    server = fake_server(strict=True, unsupported=["seed"])
    (judgment,) = await _judge(server, _call(rubric))
    assert judgment.status == "ok" and judgment.parameters["seed"] is None
    assert ["seed" in r.body for r in server.received] == [True, False]


@pytest.mark.parametrize("chosen", [{"seed": 7}, {"parameters": {"seed": 0}}])
async def test_a_chosen_seed_the_server_refuses_stops_the_run(fake_server, rubric, chosen) -> None:  # noqa: F811
    server = fake_server(strict=True, unsupported=["seed"])
    with pytest.raises(JudgeFatalError, match="refused the parameter 'seed'.*--seed"):
        await _judge(server, _call(rubric), **chosen)
    assert len(server.received) == 1


async def test_a_chosen_max_completion_tokens_replaces_the_default_cap(fake_server, rubric) -> None:  # noqa: F811
    """A reasoning model wants its cap as max_completion_tokens: chosen, it goes alone, and is accepted."""
    server = fake_server(strict=True, unsupported=["max_tokens"])
    (judgment,) = await _judge(server, _call(rubric), parameters={"max_completion_tokens": 2000})
    (body,) = [r.body for r in server.received]
    assert "max_tokens" not in body and body["max_completion_tokens"] == 2000
    assert judgment.status == "ok" and judgment.parameters["max_completion_tokens"] == 2000


async def test_a_chosen_cap_refused_by_name_stops_with_its_new_name(fake_server, rubric) -> None:  # noqa: F811
    server = fake_server(strict=True, unsupported=["max_tokens"])
    with pytest.raises(JudgeFatalError, match="'max_tokens'.*--param max_completion_tokens=N --param max_tokens=null"):
        await _judge(server, _call(rubric), max_tokens=300)


# --- chat templates without a system role ------------------------------------------------------------


def _split_folded(server: FakeOpenAI, since: int = 0) -> tuple[list[dict], list[dict]]:
    """The bodies the server received (from request `since` on) that had a system message, and the rest."""
    bodies = [r.body for r in server.received[since:]]
    return [b for b in bodies if b["messages"][0]["role"] == "system"], [
        b for b in bodies if b["messages"][0]["role"] != "system"
    ]


def _folded(body: dict) -> bool:
    """A request whose instructions open its first user message, with no system message, turns alternating."""
    roles = [m["role"] for m in body["messages"]]
    first = body["messages"][0]["content"]
    return roles == ["user", "assistant"] * (len(roles) // 2) + ["user"] and first.startswith("<instructions>\n")


@pytest.mark.parametrize(
    ("server_kind", "mode", "output"),
    [("vllm", "per-criterion", "auto"), ("llama.cpp", "per-turn", "json_object"), ("openai", "per-transcript", "auto")],
)
def test_a_refused_system_role_is_folded_into_the_user_message_once_for_the_run(
    fake_server, tmp_path, server_kind, mode, output
) -> None:
    """vLLM's 400, llama-server's 500 (not retried) or OpenAI's named param: the requests on the wire when the
    first refusal comes are refused, and they and every later one go with the instructions in the first user
    message; each judgment records it."""
    server = fake_server(strict=True, no_system_role=server_kind)
    judgments = _run(server, tmp_path, mode, rubrics=RUBRICS / "act_fidelity.yaml", output=output)
    refused, bodies = _split_folded(server)
    assert 1 <= len(refused) <= RunConfig().concurrency and bodies and all(_folded(b) for b in bodies)
    assert [strict_problem(b) for b in bodies] == [None] * len(bodies)
    system, user = refused[0]["messages"]
    assert f"<instructions>\n{system['content']}\n</instructions>\n\n{user['content']}" in [
        b["messages"][0]["content"] for b in bodies
    ]
    judged = _judged(judgments)
    assert {j.status for j in judged} == {"ok"} and {j.parameters.get("system_role") for j in judged} == {False}
    assert {j.parameters["output"] for j in judged} == {"json_schema" if output == "auto" else output}
    assert 1 in {j.transport_retries for j in judged} <= {0, 1}  # a refused request, sent again folded


async def test_re_asks_after_a_fold_keep_alternating_turns(fake_server, rubric) -> None:  # noqa: F811
    server = fake_server(strict=True, no_system_role="vllm", script=["valid", "out_of_range", "refusal"])
    (judgment,) = await _judge(server, _call(rubric))
    refused, bodies = _split_folded(server)
    assert len(refused) == 1 and all(_folded(b) for b in bodies) and [len(b["messages"]) for b in bodies] == [1, 3, 5]
    assert judgment.status == "ok" and judgment.attempts == 3


@pytest.mark.parametrize("cached", [True, False])
def test_a_resumed_run_folds_again_and_its_cache_serves_the_folded_replies(fake_server, tmp_path, cached) -> None:
    """The resumed run learns the refusal anew (a refused request or a few); with the cache, what the first run
    was answered folded is served from it, recorded as folded, the same verdicts; without it, sent folded."""
    cache = tmp_path / "cache.sqlite" if cached else None
    settings = {"kind": "openai", "model": MODEL, "cache_path": cache}
    server = fake_server(no_system_role="vllm")
    config = RunConfig(
        transcripts=[TRANSCRIPTS],
        rubrics=[RUBRICS / "act_fidelity.yaml"],
        output=tmp_path / "results",
        judge=JudgeSettings(base_url=server.url, **settings),  # type: ignore[arg-type]
        run_id="folded",
        show_progress=False,
    )
    complete = load_judgments(run(config).run_dir)
    path = tmp_path / "results" / "folded" / "judgments.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[: len(lines) // 2]))
    missing = len([j for j in complete[len(lines) // 2 :] if j.attempts])
    sent = len(server.received)
    resumed = RunConfig(
        output=tmp_path / "results",
        judge=JudgeSettings(base_url=server.url, **settings),  # type: ignore[arg-type]
        resume=tmp_path / "results" / "folded",
        show_progress=False,
    )
    result = run(resumed)
    assert result.ok and result.manifest.complete
    after = load_judgments(result.run_dir)
    assert sorted((j.key, j.status, j.score, j.label) for j in after) == sorted(
        (j.key, j.status, j.score, j.label) for j in complete
    )
    assert {j.parameters.get("system_role") for j in _judged(after)} == {False}
    refused, bodies = _split_folded(server, since=sent)
    assert 1 <= len(refused) <= RunConfig().concurrency and all(_folded(b) for b in bodies)
    assert len(bodies) == (0 if cached else missing)


async def test_a_fold_refused_too_stops_the_run_with_the_endpoints_answer(fake_server, rubric) -> None:  # noqa: F811
    server = fake_server(no_system_role="vllm", script=["valid", "template_error"])
    with pytest.raises(
        JudgeFatalError, match=r"even with the instructions folded.*roles must alternate.*chat-template"
    ):
        await _judge(server, _call(rubric))
    assert len(server.received) == 2 and _folded(server.received[1].body)
