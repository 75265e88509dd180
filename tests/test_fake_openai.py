"""The fake OpenAI server, seen through the real openai client over HTTP: what every judge test relies on."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any, Literal
from weakref import WeakKeyDictionary

import openai
import pytest
from pydantic import BaseModel, ConfigDict, Field

from tests.conftest import IGNORING_SEED, REPO
from tests.fake_openai import TEXT_PREFIX, TEXT_SUFFIX, Behaviour, FakeOpenAI


class Verdict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Literal["pushes_on", "slows_down", "unclear"]
    strength: int = Field(ge=1, le=3)


class Judgment(BaseModel):
    """Strict-mode shaped (no defaults, no extra keys): an enum, $defs, anyOf-null and an evidence list."""

    model_config = ConfigDict(extra="forbid")

    rationale: str
    evidence: list[str]
    applicable: bool
    score: Literal[1, 2, 3, 4, 5] | None
    verdict: Verdict
    second_opinion: Verdict | None


SCHEMA = Judgment.model_json_schema()
STRICT = {"type": "json_schema", "json_schema": {"name": "judgment", "strict": True, "schema": SCHEMA}}
YES_NO = {
    "type": "object",
    "properties": {"rationale": {"type": "string"}, "verdict": {"enum": ["yes", "no"]}},
    "required": ["rationale", "verdict"],
    "additionalProperties": False,
}
SYSTEM = "You are an experienced clinical supervisor rating one therapist turn. " * 40


def _conversation(rated: int) -> str:
    """A user message as our prompts render it: numbered "[i] Speaker: text" turns, then the question."""
    lines = [line for line in IGNORING_SEED.read_text(encoding="utf-8").splitlines() if line.strip()]
    turns = "\n\n".join(f"[{i}] {line}" for i, line in enumerate(lines[: rated + 1]))
    return f"Conversation so far:\n\n{turns}\n\nQuestion about turn [{rated}]: does the therapist slow down?"


def _messages(rated: int = 3, system: str = SYSTEM) -> list[dict]:
    return [{"role": "system", "content": system}, {"role": "user", "content": _conversation(rated)}]


def _fenced(schema: dict) -> str:
    return f"Answer in JSON matching this schema:\n```json\n{json.dumps(schema)}\n```\n"


def _errors(value: Any, schema: dict, root: dict, at: str = "$") -> list[str]:
    """Where `value` breaks `schema` (the keywords our schemas use; jsonschema is not installed)."""
    while "$ref" in schema:
        target = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    errors = []
    if "enum" in schema and not any(value == m and type(value) is type(m) for m in schema["enum"]):
        errors.append(f"{at}: {value!r} not in {schema['enum']}")
    if "anyOf" in schema and all(_errors(value, branch, root, at) for branch in schema["anyOf"]):
        errors.append(f"{at}: {value!r} matches no anyOf branch")
    kinds = {
        "object": dict,
        "array": list,
        "string": str,
        "boolean": bool,
        "null": type(None),
        "integer": int,
        "number": (int, float),
    }
    kind = schema.get("type")
    if kind and not (isinstance(value, kinds[kind]) and (kind == "boolean" or not isinstance(value, bool))):
        errors.append(f"{at}: {value!r} is not {kind}")
    if isinstance(value, int | float) and not schema.get("minimum", value) <= value <= schema.get("maximum", value):
        errors.append(f"{at}: {value!r} out of range")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        errors += [f"{at}: missing {name}" for name in schema.get("required", []) if name not in value]
        if schema.get("additionalProperties") is False:
            errors += [f"{at}: extra {name}" for name in value if name not in properties]
        errors += [
            e
            for name, sub in properties.items()
            if name in value
            for e in _errors(value[name], sub, root, f"{at}.{name}")
        ]
    if isinstance(value, list) and "items" in schema:
        errors += [e for i, item in enumerate(value) for e in _errors(item, schema["items"], root, f"{at}[{i}]")]
    return errors


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


_CLIENTS: WeakKeyDictionary[FakeOpenAI, openai.OpenAI] = WeakKeyDictionary()


def _client(server: FakeOpenAI) -> openai.OpenAI:
    """One client per server, as the judge keeps one: building a client costs about 50 ms."""
    if server not in _CLIENTS:
        _CLIENTS[server] = openai.OpenAI(base_url=server.url, api_key="sk-test", max_retries=0)
    return _CLIENTS[server]


def _ask(server: FakeOpenAI, messages: list[dict] | None = None, **kwargs: Any):
    kwargs.setdefault("response_format", STRICT)
    return _client(server).chat.completions.create(model="judge-model", messages=messages or _messages(), **kwargs)


# --- valid replies ---------------------------------------------------------------------------------


def test_valid_reply_follows_the_strict_schema_in_property_order(server: FakeOpenAI) -> None:
    reply = _ask(server)
    choice = reply.choices[0]
    assert (reply.object, reply.model, choice.finish_reason) == ("chat.completion", "judge-model", "stop")
    assert choice.message.refusal is None and choice.logprobs is None
    value = json.loads(choice.message.content)
    assert _errors(value, SCHEMA, SCHEMA) == []
    assert list(value) == list(SCHEMA["properties"])
    assert Judgment.model_validate_json(choice.message.content, strict=True)
    text = sum(len(m["content"]) for m in _messages())
    assert reply.usage.prompt_tokens == text // 4
    assert reply.usage.completion_tokens == len(choice.message.content) // 4
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_same_messages_give_the_same_reply_whatever_happened_before() -> None:
    """A clean run and a faulty run (retried until valid) agree item by item."""
    faults = {"rate_limit": 0.3, "server_error": 0.2, "malformed": 0.2}
    with FakeOpenAI() as clean, FakeOpenAI(faults=faults, fault_seed=3) as faulty:
        expected = {rated: _ask(clean, _messages(rated)).choices[0].message.content for rated in range(1, 12, 2)}
        seen = {}
        for rated in reversed(expected):
            for _ in range(30):
                try:
                    content = _ask(faulty, _messages(rated)).choices[0].message.content
                except (openai.RateLimitError, openai.InternalServerError):
                    continue
                if content.endswith("}"):
                    seen[rated] = content
                    break
        assert len(faulty.received) > len(expected)  # faults did happen
    assert seen == expected
    assert len(set(expected.values())) > 1


def test_a_re_ask_gets_the_answer_to_the_original_question(server: FakeOpenAI) -> None:
    """Like a model at temperature 0: the messages before the first assistant message decide the reply."""
    first = _ask(server, _messages(3)).choices[0].message.content
    re_ask = [
        *_messages(3),
        {"role": "assistant", "content": "not json"},
        {"role": "user", "content": "That was not valid JSON. Answer again."},
    ]
    assert _ask(server, re_ask).choices[0].message.content == first


def test_the_request_seed_varies_the_reply_and_a_re_ask_with_it_gets_the_same_answer(server: FakeOpenAI) -> None:
    """Repeated samples of one item are sent with seeds 0, 1, 2: like a model sampling at those seeds,
    each seed may give another answer, while the same seed (a re-ask included) gives the same one."""
    re_ask = [{"role": "assistant", "content": "not json"}, {"role": "user", "content": "Not valid JSON. Again."}]
    differing = 0
    for rated in range(1, 12, 2):
        by_seed = {seed: _ask(server, _messages(rated), seed=seed).choices[0].message.content for seed in (0, 1, 2)}
        assert _ask(server, _messages(rated), seed=1).choices[0].message.content == by_seed[1]
        assert _ask(server, [*_messages(rated), *re_ask], seed=2).choices[0].message.content == by_seed[2]
        differing += len(set(by_seed.values())) > 1
        unseeded = _ask(server, _messages(rated)).choices[0].message.content
        assert _ask(server, _messages(rated)).choices[0].message.content == unseeded  # the messages alone decide
    assert differing >= 4  # of 6 items: the seed is part of what decides the reply


def test_evidence_is_quoted_verbatim_from_a_numbered_turn(server: FakeOpenAI) -> None:
    for rated in range(1, 16, 2):
        user = _conversation(rated)
        (quote,) = json.loads(_ask(server, _messages(rated)).choices[0].message.content)["evidence"]
        assert 4 <= len(quote.split()) <= 8
        assert any(quote in line.partition(": ")[2] for line in user.splitlines() if line.startswith("["))
    plain = [{"role": "user", "content": "Patient: no numbered turns here at all, none whatsoever."}]
    assert json.loads(_ask(server, plain).choices[0].message.content)["evidence"] == []


def test_json_object_mode_follows_the_last_fenced_schema(server: FakeOpenAI) -> None:
    old = {"type": "object", "properties": {"old": {"type": "string"}}}
    example = '```json\n{"rationale": "an example reply, not a schema", "verdict": "no"}\n```'
    messages = [
        {"role": "system", "content": _fenced(old)},
        {"role": "user", "content": _fenced(YES_NO) + example + "\n" + _conversation(3)},
    ]
    value = json.loads(_ask(server, messages, response_format={"type": "json_object"}).choices[0].message.content)
    assert _errors(value, YES_NO, YES_NO) == []


def test_json_object_mode_needs_the_word_json(server: FakeOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="must contain the word 'json'"):
        _ask(server, [{"role": "user", "content": "Rate the turn."}], response_format={"type": "json_object"})


def test_plain_text_mode_wraps_the_reply_in_a_fence(server: FakeOpenAI) -> None:
    messages = [{"role": "user", "content": _fenced(SCHEMA) + _conversation(5)}]
    content = _ask(server, messages, response_format=openai.NOT_GIVEN).choices[0].message.content
    assert content.startswith(TEXT_PREFIX) and content.endswith(TEXT_SUFFIX)
    value = json.loads(content.removeprefix(TEXT_PREFIX).removesuffix(TEXT_SUFFIX))
    assert _errors(value, SCHEMA, SCHEMA) == []


def test_no_schema_gives_a_plain_answer(server: FakeOpenAI) -> None:
    reply = _ask(server, [{"role": "user", "content": "Hello"}], response_format=openai.NOT_GIVEN)
    assert reply.choices[0].message.content == "OK"


# --- faults ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "error", "status"),
    [
        ("server_error", openai.InternalServerError, 500),
        ("unauthorized", openai.AuthenticationError, 401),
        ("not_found", openai.NotFoundError, 404),
        ("bad_request", openai.BadRequestError, 400),
        ("no_json_schema", openai.BadRequestError, 400),
        ("rate_limit", openai.RateLimitError, 429),
    ],
)
def test_error_behaviours_raise_the_clients_exceptions(behaviour: Behaviour, error: type, status: int) -> None:
    with FakeOpenAI(script=[behaviour], retry_after=0.25) as fake, pytest.raises(error) as caught:
        _ask(fake)
    assert caught.value.status_code == status
    assert caught.value.body["message"]
    if behaviour == "rate_limit":
        assert caught.value.response.headers["retry-after"] == "0.25"
        assert caught.value.response.headers["retry-after-ms"] == "250"
        assert caught.value.type == "rate_limit_exceeded"
    if behaviour == "no_json_schema":
        assert caught.value.param == "response_format"


def test_a_server_without_json_schema_refuses_it_but_serves_json_object() -> None:
    with FakeOpenAI(supports_json_schema=False) as fake:
        for _ in range(2):
            with pytest.raises(openai.BadRequestError, match="'json_schema' is not supported"):
                _ask(fake)
        messages = [{"role": "user", "content": _fenced(SCHEMA) + _conversation(3)}]
        content = _ask(fake, messages, response_format={"type": "json_object"}).choices[0].message.content
    assert _errors(json.loads(content), SCHEMA, SCHEMA) == []


def test_content_faults_damage_the_valid_reply() -> None:
    script: list[Behaviour] = ["valid", "malformed", "out_of_range", "length", "refusal"]
    with FakeOpenAI(script=script) as fake:
        valid, malformed, out_of_range, length, refusal = (_ask(fake).choices[0] for _ in script)
    content = valid.message.content
    assert malformed.message.content == content[:-7]
    with pytest.raises(ValueError):
        json.loads(malformed.message.content)
    broken = json.loads(out_of_range.message.content)
    assert broken["score"] == 99 and {**broken, "score": json.loads(content)["score"]} == json.loads(content)
    assert (length.message.content, length.finish_reason) == (content[: len(content) // 2], "length")
    assert refusal.message.content is None and refusal.finish_reason == "stop"
    assert refusal.message.refusal == "I'm sorry, I can't help with that."


def test_out_of_range_breaks_a_string_enum() -> None:
    with FakeOpenAI(script=["out_of_range"]) as fake:
        reply = _ask(fake, [{"role": "user", "content": _fenced(YES_NO)}], response_format={"type": "json_object"})
    assert json.loads(reply.choices[0].message.content)["verdict"] == "maybe"


def test_slow_adds_its_delay_then_answers() -> None:
    with FakeOpenAI(script=["slow"], slow_seconds=0.3) as fake:
        started = time.perf_counter()
        content = _ask(fake).choices[0].message.content
        assert time.perf_counter() - started >= 0.3
    assert _errors(json.loads(content), SCHEMA, SCHEMA) == []


def test_script_comes_first_then_the_chooser_then_faults() -> None:
    calls: list[int] = []

    def chooser(body: dict, n: int) -> Behaviour:
        calls.append(n)
        return "server_error" if n == 1 else "valid"

    with FakeOpenAI(script=["rate_limit"], chooser=chooser, faults={"bad_request": 1.0}) as fake:
        with pytest.raises(openai.RateLimitError):
            _ask(fake)
        with pytest.raises(openai.InternalServerError):
            _ask(fake)
        assert _ask(fake).choices[0].message.content
    assert calls == [1, 2]
    with FakeOpenAI(script=["valid"], faults={"not_found": 1.0}) as fake:
        assert _ask(fake).choices[0].message.content
        with pytest.raises(openai.NotFoundError):
            _ask(fake)


def test_fault_draws_honour_the_rates_and_repeat_with_the_seed() -> None:
    faults: dict[Behaviour, float] = {"rate_limit": 0.1, "server_error": 0.05, "malformed": 0.02}

    def draws(seed: int) -> Counter[str]:
        fake = FakeOpenAI(faults=faults, fault_seed=seed)
        return Counter(fake.choose({}, n) for n in range(2000))

    counts = draws(7)
    assert counts == draws(7)
    assert counts != draws(8)
    for behaviour, rate in faults.items():
        assert abs(counts[behaviour] / 2000 - rate) < 0.03, (behaviour, counts)
    assert counts["valid"] == 2000 - sum(counts[b] for b in faults)


def test_unknown_behaviours_and_impossible_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown behaviours"):
        FakeOpenAI(script=["flaky"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="sum to at most 1"):
        FakeOpenAI(faults={"rate_limit": 0.7, "server_error": 0.6})


# --- logprobs, usage, recording --------------------------------------------------------------------


def test_logprobs_give_alternatives_for_the_score_token(server: FakeOpenAI) -> None:
    reply = _ask(server, logprobs=True, top_logprobs=3)
    content = reply.choices[0].message.content
    entries = reply.choices[0].logprobs.content
    assert "".join(e.token for e in entries) == content
    score = json.loads(content)["score"]
    at = next(i for i, e in enumerate(entries) if e.token.endswith('"score": ')) + 1
    top = entries[at].top_logprobs
    assert entries[at].token == top[0].token == json.dumps(score)
    assert len(top) == 3 and [t.logprob for t in top] == sorted((t.logprob for t in top), reverse=True)
    alternatives = [int(t.token) for t in top[1:]]
    assert set(alternatives) <= {1, 2, 3, 4, 5} - {score}
    assert abs(alternatives[0] - score) == 1
    assert entries[at].bytes == list(entries[at].token.encode())


def test_a_shared_long_prefix_is_reported_as_cached(server: FakeOpenAI) -> None:
    first, second = (_ask(server, _messages(rated)).usage for rated in (3, 5))
    assert first.prompt_tokens_details.cached_tokens == 0
    cached = second.prompt_tokens_details.cached_tokens
    assert cached % 64 == 0 and len(SYSTEM) // 4 - 64 <= cached <= second.prompt_tokens


def test_requests_are_recorded_in_order(server: FakeOpenAI) -> None:
    _ask(server, _messages(1))
    _ask(server, _messages(2))
    assert [r.body["messages"] for r in server.received] == [_messages(1), _messages(2)]
    assert server.received[0].headers["authorization"] == "Bearer sk-test"
    assert server.received[0].path == "/v1/chat/completions"
    with FakeOpenAI(record=False) as quiet:
        _ask(quiet)
        assert quiet.received == []


def test_models_lists_the_fake_judge(server: FakeOpenAI) -> None:
    assert [m.id for m in _client(server).models.list()] == ["fake-judge"]


def test_a_body_that_is_not_json_is_refused(server: FakeOpenAI) -> None:
    request = urllib.request.Request(f"{server.url}/chat/completions", data=b"not json", method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 400
    assert json.loads(caught.value.read())["error"]["type"] == "invalid_request_error"


# --- concurrency and the process -------------------------------------------------------------------


async def test_concurrent_requests_overlap() -> None:
    with FakeOpenAI(latency=0.2) as fake:
        client = openai.AsyncOpenAI(base_url=fake.url, api_key="sk-test", max_retries=0)
        started = time.perf_counter()
        replies = await asyncio.gather(
            *(
                client.chat.completions.create(model="m", messages=_messages(rated % 20), response_format=STRICT)
                for rated in range(64)
            )
        )
        elapsed = time.perf_counter() - started
        await client.close()
    assert elapsed < 5
    assert all(_errors(json.loads(r.choices[0].message.content), SCHEMA, SCHEMA) == [] for r in replies)


def test_runs_as_a_process_and_prints_its_url() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_openai", "--latency", "0", "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        client = openai.OpenAI(base_url=url, api_key="sk-test", max_retries=0)
        reply = client.chat.completions.create(model="m", messages=_messages(), response_format=STRICT)
        assert _errors(json.loads(reply.choices[0].message.content), SCHEMA, SCHEMA) == []
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        process.stdout.close()


# --- strict: the API reference enforced --------------------------------------------------------------


def _object(properties: dict) -> dict:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def _nested(levels: int) -> dict:
    schema = _object({"leaf": {"type": "string"}})
    for _ in range(levels - 1):
        schema = _object({"inner": schema})
    return schema


def _with_schema(schema: dict, name: str = "judgment") -> dict:
    return {"response_format": {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}}


_OPEN = {**_object({"verdict": {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}})}
_HALF_REQUIRED = {**_object({"a": {"type": "string"}, "b": {"type": "string"}}), "required": ["a"]}
_ROOT_ANY_OF = {"anyOf": [_object({"a": {"type": "string"}}), {"type": "null"}]}
REFUSED = [  # (what changes in a valid request, param, code, words of the message)
    ({"temperature": 3}, "temperature", "decimal_above_max_value", "Expected a value <= 2, but got 3"),
    ({"temperature": "0"}, "temperature", "invalid_type", "expected a decimal, but got a string"),
    ({"seed": 1.5}, "seed", "invalid_type", "expected an integer, but got a decimal"),
    ({"max_tokens": 0}, "max_tokens", "integer_below_min_value", "Expected a value >= 1"),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs", "integer_above_max_value", "<= 20"),
    ({"logprobs": False}, "top_logprobs", "invalid_value", "requires 'logprobs' to be true"),
    ({"logprobs": "yes"}, "logprobs", "invalid_type", "expected a boolean"),
    ({"frobnicate": 1}, "frobnicate", "unknown_parameter", "Unrecognized request argument supplied: frobnicate"),
    ({"messages": [{"role": "judge", "content": "x"}]}, "messages[0].role", "invalid_value", "'judge'"),
    ({"messages": [{"role": "user", "content": "x", "turn": 1}]}, "messages[0].turn", "unknown_parameter", "turn"),
    ({"messages": [{"role": "user"}]}, "messages[0].content", "missing_required_parameter", "content"),
    ({"messages": [{"role": "user", "content": 7}]}, "messages[0].content", "invalid_type", "but got an integer"),
    ({"response_format": {"type": "yaml"}}, "response_format.type", "invalid_value", "'json_schema'"),
    (_with_schema(SCHEMA, "per criterion"), "response_format.json_schema.name", "invalid_value", "pattern"),
    (_with_schema(SCHEMA, "x" * 65), "response_format.json_schema.name", "invalid_value", "pattern"),
    (
        _with_schema(_OPEN),
        "response_format",
        None,
        "Invalid schema for response_format 'judgment': In context=('properties', 'verdict'), "
        "'additionalProperties' is required to be supplied and to be false.",
    ),
    (_with_schema(_HALF_REQUIRED), "response_format", None, "including every key in properties. Missing 'b'."),
    (_with_schema(_ROOT_ANY_OF), "response_format", None, "must be a JSON Schema of 'type: \"object\"'"),
    (_with_schema(_object({"a": {"type": "string", "minLength": 1}})), "response_format", None, "'minLength' is not"),
    (_with_schema(_object({"a": {"type": "string", "default": ""}})), "response_format", None, "'default' is not"),
    (_with_schema(_object({"a": {"type": "array"}})), "response_format", None, "'items' is required"),
    (_with_schema(_nested(11)), "response_format", None, "11 levels of nesting exceeds limit of 10"),
    (_with_schema(_object({"a": {"enum": list(range(1001))}})), "response_format", None, "1001 enum values exceeds"),
]


@pytest.fixture(scope="module")
def strict_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(strict=True) as fake:
        yield fake


def _post(server: FakeOpenAI, body: dict) -> Any:
    return _client(server).post("/chat/completions", body=body, cast_to=object)


def _valid_body(**changes: Any) -> dict:
    body = {"model": "judge-model", "messages": _messages(), "response_format": STRICT, "temperature": 0, "seed": 0}
    return {**body, "max_tokens": 400, "logprobs": True, "top_logprobs": 5, **changes}


@pytest.mark.parametrize(("change", "param", "code", "words"), REFUSED)
def test_a_strict_server_refuses_what_the_reference_does_not_allow_naming_the_param(
    strict_server: FakeOpenAI, server: FakeOpenAI, change: dict, param: str, code: str | None, words: str
) -> None:
    body = _valid_body(**change)
    with pytest.raises(openai.BadRequestError) as caught:
        _post(strict_server, body)
    error = caught.value.body
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert words in error["message"]
    _post(server, body)  # the default server is as lenient as before


def test_a_strict_server_answers_a_valid_request_as_the_default_one_does(strict_server: FakeOpenAI) -> None:
    """Every keyword strict mode supports, $defs and $ref, anyOf with null, 10 levels: all accepted."""
    reply = _post(strict_server, _valid_body())
    assert _errors(json.loads(reply["choices"][0]["message"]["content"]), SCHEMA, SCHEMA) == []
    deep = _nested(10)
    deep["properties"]["n"] = {"type": ["integer", "null"], "minimum": 0, "maximum": 9, "description": "a count"}
    deep["required"].append("n")
    _post(strict_server, _valid_body(**_with_schema(deep), logprobs=False, top_logprobs=None))


def test_a_schema_sent_without_strict_is_not_held_to_strict_rules(strict_server: FakeOpenAI) -> None:
    loose = _with_schema(_OPEN)
    loose["response_format"]["json_schema"]["strict"] = False
    _post(strict_server, _valid_body(**loose))


def test_runs_strict_as_a_process() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_openai", "--strict"], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        url = process.stdout.readline().strip()
        client = openai.OpenAI(base_url=url, api_key="sk-test", max_retries=0)
        with pytest.raises(openai.BadRequestError) as caught:
            client.post("/chat/completions", body=_valid_body(temperature=2.5), cast_to=object)
        assert caught.value.param == "temperature"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        process.stdout.close()
