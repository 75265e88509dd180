"""The LLM judge over real HTTP against a scripted OpenAI-compatible server on 127.0.0.1.

Nothing patches the openai client: every reply, fault and retry crosses a socket.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from pathlib import Path

import pytest

from evaluator.config import JudgeSettings
from evaluator.judges.base import JudgeCall, JudgeFatalError
from evaluator.judges.openai import OpenAIJudge
from evaluator.models import Item, Transcript, Turn
from evaluator.plan import JudgeRequest
from evaluator.prompts import PromptRenderer
from evaluator.rubrics import load_rubric
from evaluator.runner import make_call

KEY = "sk-test-0123456789abcdefghijklmnop"
RUBRIC = """\
id: mini
title: Mini rubric
criteria:
  - id: acknowledges
    name: Acknowledges the request
    question: Does the therapist acknowledge the request to slow down?
    scale: {type: binary, yes: it does, no: it does not}
  - id: responsiveness
    name: Responds to the request
    question: How well does the therapist honour the request?
    scale:
      type: likert
      min: 1
      max: 5
      anchors: {1: ignores it, 3: acknowledges only, 5: clearly slows down}
  - id: length
    name: Relative length
    question: Is the turn shorter or longer than the patient's?
    scale:
      type: categorical
      categories:
        - {label: shorter, description: shorter}
        - {label: longer, description: longer}
"""

TRANSCRIPT = Transcript(
    id="mini-session",
    source="mini.txt",
    turns=[
        Turn(index=0, speaker="patient", label="Patient", text="I feel overwhelmed. Can we slow down?"),
        Turn(
            index=1, speaker="therapist", label="Therapist", text="Of course. Let's slow right down and take a breath."
        ),
        Turn(index=2, speaker="patient", label="Patient", text="Thanks, that helps a little."),
        Turn(index=3, speaker="therapist", label="Therapist", text="Would you like to pause here for a moment?"),
    ],
)


@pytest.fixture
def rubric(write):
    return load_rubric(write("mini.yaml", RUBRIC))


def _settings(server, **overrides) -> JudgeSettings:
    settings = {
        "kind": "openai",
        "model": "fake-judge",
        "base_url": server.url,
        "cache_path": None,
        "transport_attempts": 4,
        **overrides,
    }
    return JudgeSettings(**settings)


def _call(rubric, criterion_ids=("responsiveness",), turn=1, mode="per-criterion") -> JudgeCall:
    requests = [
        JudgeRequest(
            Item(rubric_id=rubric.id, transcript_id=TRANSCRIPT.id, turn_index=turn, criterion_id=c),
            rubric,
            rubric.criterion(c),
            TRANSCRIPT,
            TRANSCRIPT.turns[turn],
        )
        for c in criterion_ids
    ]
    return make_call(PromptRenderer(), requests, mode)


async def _judge(server, call: JudgeCall, monkeypatch: pytest.MonkeyPatch | None = None, **settings):
    judge = OpenAIJudge(_settings(server, **settings))
    try:
        return await judge.judge(call)
    finally:
        await judge.aclose()


async def test_valid_reply_is_a_grade_on_the_scale_with_checked_evidence(fake_server, rubric, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server = fake_server()
    (judgment,) = await _judge(server, _call(rubric))
    assert judgment.status == "ok" and judgment.score in {1, 2, 3, 4, 5}
    assert judgment.attempts == 1 and judgment.transport_retries == 0
    assert judgment.usage.prompt_tokens > 0 and judgment.model == "fake-judge"
    assert judgment.evidence and all(e.found for e in judgment.evidence)
    (received,) = server.received
    body = received.body
    assert received.headers["authorization"] == f"Bearer {KEY}"
    assert (body["model"], body["temperature"], body["seed"]) == ("fake-judge", 0.0, 0)
    schema = body["response_format"]["json_schema"]
    assert body["response_format"]["type"] == "json_schema" and schema["strict"] is True
    assert list(schema["schema"]["properties"]) == ["rationale", "evidence", "applicable", "score"]
    assert schema["schema"]["properties"]["score"]["anyOf"][0]["enum"] == [1, 2, 3, 4, 5]
    assert body["messages"][1]["content"].endswith("How well does the therapist honour the request?")


async def test_categorical_scale_records_the_label(fake_server, rubric) -> None:
    (judgment,) = await _judge(fake_server(), _call(rubric, ("length",)))
    assert judgment.status == "ok" and judgment.label in {"shorter", "longer"} and judgment.score is None


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        (["out_of_range"] * 3, "'score' must be one of [1, 2, 3, 4, 5], got 99"),
        (["malformed"] * 3, "no JSON object"),
        (["refusal"] * 3, "the judge refused: I'm sorry, I can't help with that."),
        (["length"] * 3, "cut off (finish_reason=length)"),
    ],
)
async def test_a_bad_reply_is_never_a_grade(fake_server, rubric, script, reason) -> None:
    server = fake_server(script=script)
    (judgment,) = await _judge(server, _call(rubric))
    assert judgment.status == "unscored" and judgment.score is None
    assert judgment.attempts == 3 and len(server.received) == 3
    assert reason in judgment.unscored_reason and "after 3 attempt(s)" in judgment.unscored_reason


async def test_a_loosely_shaped_reply_still_gives_its_verdict(fake_server, rubric) -> None:
    """Content sent as text parts and token counts that are not numbers: the verdict stands, the
    counts read as zero."""
    strict = await _judge(fake_server(script=["valid"]), _call(rubric))
    (judgment,) = await _judge(fake_server(script=["loose"]), _call(rubric))
    assert judgment.status == "ok" and judgment.score == strict[0].score and judgment.attempts == 1
    assert judgment.usage.prompt_tokens == 0 and judgment.usage.completion_tokens == 0


async def test_a_bad_reply_is_re_asked_with_what_was_wrong(fake_server, rubric) -> None:
    server = fake_server(script=["out_of_range"])
    (judgment,) = await _judge(server, _call(rubric))
    assert judgment.status == "ok" and judgment.attempts == 2
    second = server.received[1].body["messages"]
    assert second[-2]["role"] == "assistant" and '"score": 99' in second[-2]["content"]
    assert second[-1]["role"] == "user" and "must be one of [1, 2, 3, 4, 5], got 99" in second[-1]["content"]


@pytest.mark.parametrize("fault", ["rate_limit", "server_error"])
async def test_transport_faults_are_retried_without_counting_as_attempts(fake_server, rubric, fault) -> None:
    server = fake_server(script=[fault, fault])
    (judgment,) = await _judge(server, _call(rubric), backoff_s=0.01)
    assert judgment.status == "ok" and judgment.attempts == 1 and judgment.transport_retries == 2
    assert len(server.received) == 3


async def test_transport_faults_that_never_end_are_an_error_not_a_grade(fake_server, rubric) -> None:
    server = fake_server(script=["server_error"] * 10)
    (judgment,) = await _judge(server, _call(rubric), transport_attempts=3, backoff_s=0.01)
    assert judgment.status == "error" and "InternalServerError" in judgment.error and judgment.score is None
    assert judgment.transport_retries == 2
    assert len(server.received) == 3


async def test_a_client_error_fails_fast(fake_server, rubric) -> None:
    server = fake_server(script=["bad_request"])
    (judgment,) = await _judge(server, _call(rubric))
    assert judgment.status == "error" and "maximum context length" in judgment.error
    assert len(server.received) == 1


@pytest.mark.parametrize(
    ("fault", "hint"),
    [("unauthorized", "check the API key in OPENAI_API_KEY"), ("not_found", "check --model and --base-url")],
)
async def test_auth_and_model_errors_stop_with_what_to_fix(fake_server, rubric, monkeypatch, fault, hint) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server = fake_server(script=[fault])
    with pytest.raises(JudgeFatalError) as caught:
        await _judge(server, _call(rubric))
    assert hint in str(caught.value) and KEY not in str(caught.value)
    assert len(server.received) == 1


async def test_a_refused_parameter_stops_the_run_with_what_to_change(fake_server, rubric) -> None:
    """A reasoning model refuses temperature on every call: one request, then a stop that says how."""
    server = fake_server(unsupported=["temperature"])
    with pytest.raises(JudgeFatalError, match="refused the parameter 'temperature'.*--temperature.*NAME=null"):
        await _judge(server, _call(rubric))
    assert len(server.received) == 1


async def test_a_chosen_output_format_the_endpoint_refuses_stops_with_the_alternatives(fake_server, rubric) -> None:
    server = fake_server(supports_json_schema=False)
    with pytest.raises(JudgeFatalError, match="'response_format'.*--output-format auto"):
        await _judge(server, _call(rubric), output="json_schema")
    assert len(server.received) == 1


async def test_a_null_parameter_is_left_out_of_the_request(fake_server, rubric) -> None:
    server = fake_server(unsupported=["temperature", "seed"])
    (judgment,) = await _judge(server, _call(rubric), parameters={"temperature": None, "seed": None})
    assert judgment.status == "ok"
    assert "temperature" not in server.received[0].body and "seed" not in server.received[0].body


async def test_falls_back_to_json_mode_when_json_schema_is_refused(fake_server, rubric) -> None:
    server = fake_server(supports_json_schema=False)
    judge = OpenAIJudge(_settings(server))
    try:
        first = await judge.judge(_call(rubric))
        second = await judge.judge(_call(rubric, turn=3))
    finally:
        await judge.aclose()
    assert [j.status for j in first + second] == ["ok", "ok"]
    kinds = [r.body.get("response_format", {}).get("type") for r in server.received]
    assert kinds == ["json_schema", "json_object", "json_object"]
    assert "must match this JSON schema" in server.received[1].body["messages"][0]["content"]
    assert first[0].parameters["output"] == "json_object"


async def test_plain_text_mode_extracts_the_fenced_json(fake_server, rubric) -> None:
    server = fake_server()
    (judgment,) = await _judge(server, _call(rubric), output="text")
    assert judgment.status == "ok"
    assert "response_format" not in server.received[0].body
    assert "```json" in server.received[0].body["messages"][0]["content"]


async def test_per_turn_mode_judges_every_criterion_in_one_call(fake_server, rubric) -> None:
    server = fake_server()
    call = _call(rubric, ("acknowledges", "responsiveness", "length"), mode="per-turn")
    judgments = await _judge(server, call)
    assert [j.criterion_id for j in judgments] == ["acknowledges", "responsiveness", "length"]
    assert all(j.status == "ok" for j in judgments) and len(server.received) == 1
    properties = server.received[0].body["response_format"]["json_schema"]["schema"]["properties"]
    assert list(properties) == ["acknowledges", "responsiveness", "length"]
    assert judgments[0].usage.prompt_tokens > 0 and judgments[1].usage.prompt_tokens == 0


async def test_a_grouped_reply_keeps_its_valid_parts(fake_server, rubric) -> None:
    """out_of_range breaks the first enum only: that criterion is re-asked, the others are kept."""
    server = fake_server(script=["out_of_range"] * 3)
    call = _call(rubric, ("responsiveness", "acknowledges"), mode="per-turn")
    judgments = await _judge(server, call)
    assert [j.status for j in judgments] == ["unscored", "ok"]
    assert "responsiveness: 'score' must be one of" in judgments[0].unscored_reason


async def test_logprobs_give_a_weighted_score(fake_server, rubric) -> None:
    server = fake_server()
    (judgment,) = await _judge(server, _call(rubric), logprobs=True)
    assert server.received[0].body["logprobs"] is True and server.received[0].body["top_logprobs"] == 5
    assert judgment.weighted_score is not None and 1 <= judgment.weighted_score <= 5
    assert abs(judgment.weighted_score - judgment.score) < 1.5


async def test_samples_use_distinct_seeds(fake_server, rubric) -> None:
    server = fake_server()
    call = _call(rubric)
    second = JudgeCall(
        tuple(
            JudgeRequest(r.item.model_copy(update={"sample": 1}), r.rubric, r.criterion, r.transcript, r.turn)
            for r in call.requests
        ),
        call.mode,
        call.messages,
        call.template_hash,
        call.prompt_hash,
    )
    await _judge(server, call)
    await _judge(server, second)
    assert [r.body["seed"] for r in server.received] == [0, 1]


async def test_the_cache_answers_an_unchanged_call_without_a_request(fake_server, rubric, tmp_path: Path) -> None:
    server = fake_server()
    cache = tmp_path / "cache.sqlite"
    (first,) = await _judge(server, _call(rubric), cache_path=cache)
    (again,) = await _judge(server, _call(rubric), cache_path=cache)
    assert len(server.received) == 1
    assert (again.score, again.rationale) == (first.score, first.rationale)
    assert again.from_cache and again.usage.prompt_tokens == 0
    await _judge(server, _call(rubric), cache_path=cache, temperature=0.5)
    assert len(server.received) == 2


def test_describe_never_holds_the_key(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    judge = OpenAIJudge(JudgeSettings(kind="openai", base_url="http://user:pw@127.0.0.1:9/v1", cache_path=None))
    described = json.dumps(judge.describe())
    assert KEY not in described and "pw" not in described and "127.0.0.1:9" in described


# --- cassettes: the wire format, pinned --------------------------------------------------------------

CASSETTE_URL = "http://127.0.0.1:9/v1"  # replay needs no server: nothing listens on the discard port


@pytest.fixture
def endpoint(request: pytest.FixtureRequest, fake_server) -> str:
    """A server to record from under --record-mode=once|new_episodes|all, else no server (replay only)."""
    if request.config.getoption("--record-mode") in ("none", None):
        return CASSETTE_URL
    return fake_server().url


@pytest.mark.vcr
async def test_cassette_pins_the_per_criterion_request(endpoint, rubric, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    judge = OpenAIJudge(
        JudgeSettings(kind="openai", model="fake-judge", base_url=endpoint, cache_path=None, transport_attempts=1)
    )
    try:
        judgments = await judge.judge(_call(rubric, ("responsiveness",)))
        judgments += await judge.judge(_call(rubric, ("acknowledges", "length"), turn=3, mode="per-turn"))
    finally:
        await judge.aclose()
    assert [j.status for j in judgments] == ["ok", "ok", "ok"]
    assert judgments[0].score in {1, 2, 3, 4, 5} and judgments[2].label in {"shorter", "longer"}


def test_no_cassette_holds_a_key_or_auth_header(repo: Path) -> None:
    cassettes = list((repo / "tests" / "cassettes").rglob("*.yaml"))
    assert cassettes, "cassettes are committed and replayed in CI"
    for cassette in cassettes:
        text = cassette.read_text()
        assert KEY not in text and "Bearer" not in text and "authorization" not in text.lower(), cassette


async def test_a_slow_reply_times_out_and_is_retried(fake_server, rubric) -> None:
    server = fake_server(script=["slow"], slow_seconds=2.0)
    (judgment,) = await _judge(server, _call(rubric), timeout_s=0.3)
    assert judgment.status == "ok" and judgment.transport_retries == 1
    assert len(server.received) == 2


async def test_cached_prompt_tokens_reported_by_the_endpoint_are_recorded(fake_server, rubric) -> None:
    """Calls of one criterion share the system prompt, so the endpoint's prefix cache serves it."""
    server = fake_server()
    judge = OpenAIJudge(_settings(server))
    try:
        (first,) = await judge.judge(_call(rubric, turn=1))
        (second,) = await judge.judge(_call(rubric, turn=3))
    finally:
        await judge.aclose()
    assert first.usage.cached_tokens == 0
    assert 0 < second.usage.cached_tokens < second.usage.prompt_tokens


# --- real endpoints: what local OpenAI-compatible servers do ----------------------------------------

MI_RUBRIC = Path(__file__).resolve().parent.parent / "rubrics" / "mi_relational.yaml"


def _kinds(server) -> list[str]:
    return [r.body.get("response_format", {}).get("type", "text") for r in server.received]


@pytest.mark.parametrize(("concurrency", "status"), [(8, 400), (64, 400), (8, 500), (64, 500)])
def test_a_refused_json_schema_settles_on_json_mode_once_at_any_concurrency(
    tmp_path, fake_server, concurrency, status
) -> None:
    """Many calls in flight, each refused, used to step the format down once per refusal (to plain
    text); the refusal comes as a 400, or as llama-cpp-python's 500, which is not retried. Calls do not
    wait for a first reply, so each call in flight is refused once at most."""
    from evaluator.config import RunConfig
    from evaluator.runner import run
    from evaluator.store import load_judgments
    from tests.conftest import IGNORING_SEED, SLOWING_SEED

    server = fake_server(supports_json_schema=False, json_schema_refusal=status, latency=0.02)
    result = run(
        RunConfig(
            transcripts=[IGNORING_SEED, SLOWING_SEED],
            rubrics=[MI_RUBRIC],
            output=tmp_path / "results",
            judge=_settings(server),
            concurrency=concurrency,
            show_progress=False,
        )
    )
    judgments = load_judgments(result.run_dir)
    assert len(judgments) == 100 and {j.status for j in judgments} == {"ok"}
    assert {j.parameters["output"] for j in judgments} == {"json_object"}
    refused = _kinds(server).count("json_schema")
    assert 1 <= refused <= concurrency and "text" not in _kinds(server)
    assert len(server.received) == 100 + refused
    assert sum(j.transport_retries for j in judgments) == refused  # each refused request, sent again as json_object


async def test_calls_in_flight_when_the_format_is_refused_step_it_down_once(fake_server, rubric) -> None:
    server = fake_server(supports_json_schema=False, latency=0.02)
    calls = [
        _sample_call(_call(rubric, (c,), turn=t), n)
        for n in range(8)
        for t in (1, 3)
        for c in ("length", "acknowledges")
    ]
    judge = OpenAIJudge(_settings(server))
    try:
        results = await asyncio.gather(*(judge.judge(call) for call in calls))
    finally:
        await judge.aclose()
    assert [j.parameters["output"] for (j,) in results] == ["json_object"] * len(calls)
    refused = _kinds(server).count("json_schema")
    assert 1 <= refused <= len(calls) and "text" not in _kinds(server)
    assert len(server.received) == len(calls) + refused


def _sample_call(call: JudgeCall, sample: int) -> JudgeCall:
    requests = tuple(
        JudgeRequest(r.item.model_copy(update={"sample": sample}), r.rubric, r.criterion, r.transcript, r.turn)
        for r in call.requests
    )
    return JudgeCall(requests, call.mode, call.messages, call.template_hash, call.prompt_hash)


async def test_verdicts_of_a_grouped_call_survive_a_failed_re_ask(fake_server, rubric) -> None:
    """The first reply holds one good verdict of two; the re-ask for the other never gets through."""
    server = fake_server(script=["out_of_range", "server_error", "server_error"])
    call = _call(rubric, ("responsiveness", "acknowledges"), mode="per-turn")
    first, second = await _judge(server, call, transport_attempts=2, backoff_s=0.01)
    assert second.status == "ok" and second.score in {0, 1} and second.rationale
    assert first.status == "error" and "InternalServerError" in first.error and first.score is None
    assert len(server.received) == 3 and first.attempts == 2 and first.transport_retries == 1


async def test_replies_are_capped_by_a_budget_sized_to_the_verdicts(fake_server, rubric) -> None:
    from evaluator.judges.reserve import estimate_call
    from evaluator.judges.verdicts import reply_token_budget

    server = fake_server()
    one = _call(rubric)
    three = _call(rubric, ("acknowledges", "responsiveness", "length"), mode="per-turn")
    (single,) = await _judge(server, one)
    grouped = await _judge(server, three)
    caps = [r.body["max_tokens"] for r in server.received]
    assert caps == [reply_token_budget(1, "json_schema"), reply_token_budget(3, "json_schema")]
    assert caps[0] < caps[1]
    assert single.parameters["max_tokens"] == caps[0] and grouped[2].parameters["max_tokens"] == caps[1]
    settings = _settings(server)
    assert [estimate_call(c, settings).completion_tokens for c in (one, three)] == caps


@pytest.mark.parametrize(
    ("settings", "rubric_parameters", "sent"),
    [
        ({"max_tokens": 50}, "", 50),
        ({"max_tokens": 50}, "parameters: {max_tokens: 70}\n", 70),
        ({"parameters": {"max_tokens": 90}}, "parameters: {max_tokens: 70}\n", 90),
        ({"max_tokens": 50, "parameters": {"max_tokens": None}}, "", None),
        ({}, "parameters: {max_tokens: null}\n", None),
    ],
)
async def test_the_reply_cap_is_overridden_or_left_out_as_asked(
    fake_server, write, settings, rubric_parameters, sent
) -> None:
    from evaluator.judges.reserve import estimate_call

    custom = load_rubric(write("capped.yaml", RUBRIC.replace("criteria:\n", rubric_parameters + "criteria:\n")))
    server = fake_server()
    call = _call(custom)
    (judgment,) = await _judge(server, call, **settings)
    assert server.received[0].body.get("max_tokens", None) == sent and ("max_tokens" in server.received[0].body) == (
        sent is not None
    )
    assert judgment.status == "ok" and judgment.parameters["max_tokens"] == sent
    if sent is not None:
        assert estimate_call(call, _settings(server, **settings)).completion_tokens == sent


async def test_a_refused_default_cap_is_left_out_but_a_chosen_one_stops_the_run(fake_server, rubric) -> None:
    """Reasoning models refuse max_tokens: the default cap is dropped, a cap the user asked for is not."""
    server = fake_server(unsupported=["max_tokens"])
    (judgment,) = await _judge(server, _call(rubric))
    assert judgment.status == "ok" and judgment.parameters["max_tokens"] is None
    assert ["max_tokens" in r.body for r in server.received] == [True, False]
    with pytest.raises(JudgeFatalError, match="refused the parameter 'max_tokens'.*--max-tokens"):
        await _judge(fake_server(unsupported=["max_tokens"]), _call(rubric), max_tokens=64)


async def test_a_re_ask_after_a_reply_without_text_never_sends_an_empty_assistant_turn(fake_server, rubric) -> None:
    """A refusal has no content: the re-ask's assistant turn says so in words, and turns still alternate."""
    server = fake_server(script=["refusal"])
    (judgment,) = await _judge(server, _call(rubric))
    assert judgment.status == "ok" and judgment.attempts == 2
    reask = server.received[1].body["messages"]
    assert [m["role"] for m in reask] == ["system", "user", "assistant", "user"]
    assert reask[2]["content"] == "(no text)" and "the judge refused" in reask[3]["content"]


@pytest.mark.parametrize("settings", [{}, {"max_tokens": 300}])
async def test_a_call_too_long_for_the_context_fails_alone_and_the_cap_stays(fake_server, rubric, settings) -> None:
    """vLLM names max_tokens when a prompt and its cap overflow the model's context: that call is an error
    saying so, and the cap, default or chosen, still goes with every other call; the run goes on."""
    server = fake_server(script=["context_overflow"])
    judge = OpenAIJudge(_settings(server, **settings))
    try:
        (long,) = await judge.judge(_call(rubric))
        (short,) = await judge.judge(_call(rubric, turn=3))
    finally:
        await judge.aclose()
    assert long.status == "error" and "maximum context length is 8192 tokens" in long.error
    assert short.status == "ok" and short.parameters["max_tokens"] == server.received[1].body["max_tokens"]
    assert all("max_tokens" in r.body for r in server.received) and len(server.received) == 2


async def test_recorded_transport_retries_account_for_every_request(fake_server, rubric) -> None:
    """Faults of every kind, re-asks, a format step-down and retries that run out, 48 calls in flight:
    each request the server saw is either a reply asked for (an attempt) or a repeat (a transport retry)."""
    faults = {"rate_limit": 0.3, "server_error": 0.3, "out_of_range": 0.1, "malformed": 0.05}
    server = fake_server(supports_json_schema=False, faults=faults, fault_seed=3)
    calls = [
        _sample_call(_call(rubric, (c,), turn=t), n)
        for n in range(12)
        for t in (1, 3)
        for c in ("length", "acknowledges")
    ]
    judge = OpenAIJudge(_settings(server, transport_attempts=3, backoff_s=0.001))
    try:
        results = await asyncio.gather(*(judge.judge(call) for call in calls))
    finally:
        await judge.aclose()
    judgments = [j for result in results for j in result]
    assert {"ok", "error"} <= {j.status for j in judgments}, "the faults reached both outcomes"
    assert len(server.received) == sum(j.attempts + j.transport_retries for j in judgments)


@pytest.mark.parametrize(
    ("script", "attempts", "retries"),
    [
        (["out_of_range", "rate_limit", "valid"], 2, 1),
        (["rate_limit", "malformed", "server_error", "server_error", "valid"], 2, 3),
    ],
)
async def test_a_re_ask_that_is_retried_counts_its_repeats(fake_server, rubric, script, attempts, retries) -> None:
    server = fake_server(script=script)
    (judgment,) = await _judge(server, _call(rubric), backoff_s=0.001)
    assert judgment.status == "ok" and (judgment.attempts, judgment.transport_retries) == (attempts, retries)
    assert len(server.received) == len(script)


async def test_transport_retries_that_run_out_are_still_counted(fake_server, rubric) -> None:
    server = fake_server(script=["rate_limit"] * 4)
    (judgment,) = await _judge(server, _call(rubric), transport_attempts=4)
    assert judgment.status == "error" and judgment.transport_retries == 3 and len(server.received) == 4


async def test_a_reply_slower_than_the_timeout_is_sent_at_most_twice(fake_server, rubric) -> None:
    """However many retries are allowed: resending a slow request only queues it again on the server."""
    server = fake_server(script=["slow"] * 10, slow_seconds=1.0)
    (judgment,) = await _judge(server, _call(rubric), timeout_s=0.2, transport_attempts=6, backoff_s=0.01)
    assert judgment.status == "error" and "APITimeoutError" in judgment.error
    assert len(server.received) == 2 and judgment.transport_retries == 1


def test_run_help_states_the_retry_and_timeout_policy(capsys: pytest.CaptureFixture[str]) -> None:
    from evaluator.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "timed-out request is sent again at most once" in help_text
    assert "5 requests in a row that get no answer at all stop the run" in help_text


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


async def test_an_endpoint_refusing_connections_stops_the_judge_naming_it(rubric) -> None:
    url = _closed_port_url()
    judge = OpenAIJudge(
        JudgeSettings(
            kind="openai", model="fake-judge", base_url=url, cache_path=None, transport_attempts=2, backoff_s=0.001
        )
    )
    try:
        with pytest.raises(JudgeFatalError, match=f"endpoint {re.escape(url)} gave no answer 5 times in a row"):
            await judge.judge(_call(rubric))
        with pytest.raises(JudgeFatalError, match="check that the server is running"):
            await judge.judge(_call(rubric, turn=3))
    finally:
        await judge.aclose()


def test_a_down_endpoint_stops_the_run_and_resume_completes_it(
    tmp_path, fake_server, no_llm_env, capsys: pytest.CaptureFixture[str]
) -> None:
    from evaluator.cli import main
    from evaluator.store import load_judgments
    from tests.conftest import SLOWING_SEED

    url = _closed_port_url()
    common = ["--model", "fake-judge", "--no-cache", "--no-progress", "-o", str(tmp_path / "results")]
    args = ["run", str(SLOWING_SEED), "-r", str(MI_RUBRIC), "--run-id", "down", "--retries", "1", *common]
    assert main([*args, "--base-url", url]) != 0
    error = " ".join(capsys.readouterr().err.split())
    assert f"the judge endpoint {url} gave no answer" in error and "--resume" in error
    run_dir = tmp_path / "results" / "down"
    assert all(j.status != "error" for j in load_judgments(run_dir))
    server = fake_server()
    assert main(["run", "--resume", str(run_dir), "--base-url", server.url, *common]) == 0
    judgments = load_judgments(run_dir)
    lines = [json.loads(line)["key"] for line in (run_dir / "judgments.jsonl").read_text().splitlines()]
    assert len(lines) == len(set(lines)) == len(judgments) == 50
    assert {j.status for j in judgments} == {"ok"}


def test_evidence_quoted_with_the_speaker_labels_the_prompt_shows_is_found() -> None:
    from evaluator.judges.base import check_evidence

    session = Transcript(
        id="labelled",
        source="labelled.txt",
        turns=[
            Turn(index=0, speaker="patient", label="Client", text="Can we take it slow today?"),
            Turn(index=1, speaker="therapist", label="Counselor", text="Yes, let's go gently."),
            Turn(index=2, speaker="patient", label="Client", text="Thank you."),
        ],
    )
    quotes = [
        "Counselor: Yes, let's go gently.",
        "Therapist: Yes, let's go gently.",
        "[1] Therapist: Yes, let's go gently.",
        "patient: Can we take it slow today?",
        "Yes, let's go gently. Client: Thank you.",
        "[1] Therapist: Yes, let's go gently.\n\n[2] Patient: Thank you.",
        "Therapist: Yes, let's rush ahead.",
        "Supervisor: Yes, let's go gently.",
        "Therapist:",
    ]
    found = [e.found for e in check_evidence(quotes, session)]
    assert found == [True, True, True, True, True, True, False, False, False]


async def test_the_judge_reserves_an_uncapped_reply_at_the_ceiling_once_the_default_cap_is_refused(
    fake_server, rubric
) -> None:
    """--max-cost reserves what the judge will send: the default cap until the endpoint refuses it, then the
    uncapped ceiling, asked for before the request that goes uncapped."""
    from evaluator.judges.reserve import UNCAPPED_REPLY_TOKENS

    server = fake_server(unsupported=["max_tokens"])
    judge = OpenAIJudge(_settings(server))
    asked: list[int] = []
    try:
        call = _call(rubric)
        first = judge.estimate(call).completion_tokens
        (judgment,) = await judge.judge(call, None, lambda usage: asked.append(usage.completion_tokens) or True)
        assert judgment.status == "ok" and "max_tokens" not in server.received[-1].body
        assert judge.estimate(call).completion_tokens == UNCAPPED_REPLY_TOKENS > first
        assert asked == [UNCAPPED_REPLY_TOKENS - first]  # the top-up for the uncapped request
    finally:
        await judge.aclose()


async def test_a_reask_the_budget_refuses_is_not_sent_and_its_item_is_not_judged(fake_server, rubric) -> None:
    """An invalid reply is re-asked only when the run's budget covers the re-ask; refused, the call ends and
    its item is recorded as no judgment (an error --resume asks again), carrying what the call spent."""
    from evaluator.judges.openai import OVER_BUDGET

    server = fake_server(script=["malformed"] * 3)
    judge = OpenAIJudge(_settings(server, content_attempts=3))
    asked = []
    try:
        call = _call(rubric)
        (judgment,) = await judge.judge(call, None, lambda usage: asked.append(usage) is not None)
    finally:
        await judge.aclose()
    assert len(server.received) == 1 and len(asked) == 1
    assert asked[0].prompt_tokens > judge.estimate(call).prompt_tokens  # the re-ask carries the bad reply
    assert judgment.status == "error" and judgment.error == OVER_BUDGET and judgment.score is None
    assert judgment.attempts == 1 and judgment.usage.completion_tokens > 0
