"""A small OpenAI-compatible chat-completions server: the stand-in for OpenAI, vLLM or Ollama in tests
and benchmarks.

The real `openai` client talks to it over HTTP on 127.0.0.1, so retries, fallbacks, parsing and
concurrency are exercised for real. Replies are valid instances of the JSON schema the request asks
for, derived from the messages (for a re-ask, from those before the first assistant message) and the
request's `seed`, so a faulty run can be compared item by item with a clean one, a re-ask gets the
answer its question got, and repeated samples of one item (each sent with its own seed) can differ.

    with FakeOpenAI(faults={"rate_limit": 0.1}) as server:
        client = OpenAI(base_url=server.url, api_key="sk-test", max_retries=0)

As a process, for benchmarks (prints the URL on the first line, serves until SIGTERM or SIGINT):

    python -m tests.fake_openai --latency 0.5 --fault rate_limit=0.1

`strict=True` (`--strict`) makes it a server that enforces the Chat Completions reference as OpenAI does:
unknown or mistyped parameters, values out of range, malformed messages and strict json_schema response
formats that break Structured Outputs' rules get OpenAI's 400s, naming the `param` (see strict_problem).

`no_system_role="vllm"` (`--no-system-role vllm`) serves a model whose chat template has no system role
(Gemma's): a request with a system message gets the answer vLLM gives, a 400 "System role not supported"
(and one whose turns do not alternate user, assistant, ..., user the template's "roles must alternate");
"llama.cpp" answers as llama-server does, a 500 naming the template's Jinja exception, and "openai" as
OpenAI answered for o1-mini, a 400 naming `messages[0].role`. `reasoning_tokens=N` (`--reasoning-tokens`)
counts N more completion tokens per reply, as a reasoning model spends them, within the request's cap.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import signal
import threading
import time
import zlib
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any, Literal, get_args

from aiohttp import web

Behaviour = Literal[
    "valid",
    "rate_limit",
    "server_error",
    "slow",
    "malformed",
    "out_of_range",
    "refusal",
    "no_json_schema",
    "unauthorized",
    "not_found",
    "length",
    "bad_request",
    "loose",
    "template_error",
    "context_overflow",
]
BEHAVIOURS: tuple[Behaviour, ...] = get_args(Behaviour)
MODEL = "fake-judge"
SystemRoleRefusal = Literal["vllm", "llama.cpp", "openai"]
ALTERNATE = "Conversation roles must alternate user/assistant/user/assistant/..."
REFUSAL = "I'm sorry, I can't help with that."
TEXT_PREFIX = "Here is my assessment:\n```json\n"
TEXT_SUFFIX = "\n```"

_SENTENCES = (
    "The therapist reflects the patient's feelings before moving on.",
    "The turn stays with what the patient just said.",
    "The therapist moves to a new task without checking in.",
    "The response acknowledges the request and adjusts the pace.",
    "The therapist offers a technique rather than exploring the concern.",
)
_FENCE = re.compile(r"```json[ \t]*\n(.*?)```", re.DOTALL)
_TURN_LABEL = re.compile(r"\[[^\]]*\][^:]*:")  # "[5] Therapist:"
_BLOCK = 256  # characters per cached-prefix block: 64 tokens at 4 characters a token
_HISTORY = 64  # earlier prompts whose prefixes count as cached
_SCORE_LOGPROB = -0.35


@dataclass
class Received:
    """One request as the server saw it; header names are lower-cased."""

    body: dict
    headers: dict[str, str]
    path: str


def _error(
    status: int,
    message: str,
    type_: str,
    param: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """An error in OpenAI's wire format, which the client maps to its exception classes by status."""
    payload = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return web.json_response(payload, status=status, headers=headers)


# --- where the schema is ---------------------------------------------------------------------------


def _text(message: Mapping[str, Any]) -> str:
    """A message's text, whether its content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _response_format_type(body: Mapping[str, Any]) -> str:
    response_format = body.get("response_format")
    return response_format.get("type", "text") if isinstance(response_format, dict) else "text"


def _response_schema(body: Mapping[str, Any]) -> dict | None:
    """The schema of a `json_schema` response format, if the request uses one."""
    if _response_format_type(body) != "json_schema":
        return None
    return body["response_format"].get("json_schema", {}).get("schema")


def _message_schema(texts: Sequence[str]) -> dict | None:
    """The last ```json fenced block in the messages that looks like a schema (has "properties")."""
    for text in reversed(texts):
        for block in reversed(_FENCE.findall(text)):
            try:
                schema = json.loads(block)
            except ValueError:
                continue
            if isinstance(schema, dict) and "properties" in schema:
                return schema
    return None


# --- an instance of the schema ---------------------------------------------------------------------


def _seed(messages: Sequence[Mapping[str, Any]], request_seed: Any = None) -> int:
    """A seed from the request's `seed` field and every message, its text and its other fields, stable
    across processes (unlike hash()). CRC-32 of the text is several times cheaper than a cryptographic
    hash of the messages as JSON. Without a `seed` field, the messages alone decide."""
    seed = 0 if request_seed is None else zlib.crc32(f"seed={request_seed!r}".encode())
    for message in messages:
        seed = zlib.crc32(repr(sorted((k, v) for k, v in message.items() if k != "content")).encode(), seed)
        seed = zlib.crc32(b"\x00" + _text(message).encode() + b"\x00", seed)
    return seed


def _quote(messages: Sequence[Mapping[str, Any]], rng: random.Random) -> str | None:
    """4-8 consecutive words, verbatim, from a "[n] Speaker: text" line of the last user message."""
    user = next((_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
    lines = [line for line in user.split("\n") if line.startswith("[")]  # str methods: a regex over
    if not lines:  # the whole prompt costs more
        return None
    first = rng.randrange(len(lines))
    for line in lines[first:] + lines[:first]:
        label = _TURN_LABEL.match(line)
        words = line[label.end() :].strip().split(" ") if label else []  # joined back with " ": verbatim
        if len(words) >= 4:
            break
    else:
        return None
    count = rng.randint(4, min(8, len(words)))
    start = rng.randrange(len(words) - count + 1)
    return " ".join(words[start : start + count])


@dataclass
class _Pick:
    """A value drawn from an enum or an integer range: where the score is, for faults and logprobs."""

    path: tuple
    value: Any
    allowed: list | range  # the enum's members, or the integer range
    enum: bool

    def alternatives(self) -> list:
        """Other allowed values, nearest first (numbers by distance, ties to the higher; labels in order)."""
        if self.enum:
            others = [v for v in self.allowed if v != self.value and v is not None]
        else:  # a range may be huge: its neighbours are enough
            others = [v for v in range(self.value - 10, self.value + 11) if v in self.allowed and v != self.value]
        if _is_number(self.value) and all(_is_number(v) for v in others):
            others.sort(key=lambda v: (abs(v - self.value), -v))
        return others

    def invalid(self) -> Any:
        """A value of the same kind that the schema does not allow."""
        if not _is_number(self.value):
            return "maybe" if "maybe" not in self.allowed else "maybe not"
        if 99 not in self.allowed:
            return 99
        return (
            self.allowed[-1] if isinstance(self.allowed, range) else max(v for v in self.allowed if _is_number(v))
        ) + 1


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Instance:
    """Builds a value valid against a JSON schema. Draws come from `rng` in schema order, so the same
    schema and seed always give the same value; enum and integer draws are noted in `picks`."""

    def __init__(self, root: dict, rng: random.Random, quote: str | None) -> None:
        self.root, self.rng, self.quote = root, rng, quote
        self.picks: list[_Pick] = []

    def build(self, schema: dict, path: tuple = ()) -> Any:
        schema = self._deref(schema)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self._enum(schema["enum"], path)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self.build(self._non_null(schema[key]), path)
        if "allOf" in schema:
            merged: dict = {}
            for part in schema["allOf"]:
                merged.update(self._deref(part))
            return self.build(merged, path)
        kind = _type(schema)
        if kind == "object":
            return {name: self.build(sub, (*path, name)) for name, sub in schema.get("properties", {}).items()}
        if kind == "array":
            return self._array(schema, path)
        if kind in ("integer", "number"):
            return self._number(schema, path, integer=kind == "integer")
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self._string(schema, path)

    def _deref(self, schema: dict) -> dict:
        """Follow local "$ref"s ("#/$defs/Name"); sibling keywords override the target's."""
        while "$ref" in schema:
            target: Any = self.root
            for part in schema["$ref"].removeprefix("#").strip("/").split("/"):
                if part:
                    target = target[part.replace("~1", "/").replace("~0", "~")]
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return schema

    def _non_null(self, branches: list[dict]) -> dict:
        return next((b for b in branches if _type(self._deref(b)) != "null"), {"type": "null"})

    def _enum(self, members: list, path: tuple) -> Any:
        value = self.rng.choice([m for m in members if m is not None] or members)
        self.picks.append(_Pick(path, value, list(members), enum=True))
        return value

    def _array(self, schema: dict, path: tuple) -> list:
        item = self._deref(schema.get("items", {}))
        if _type(item) == "string" and not {"enum", "const", "anyOf", "oneOf"} & item.keys():
            values: list = [self.quote] if self.quote else []
        else:
            values = [self.build(item, (*path, 0))]
        while len(values) < schema.get("minItems", 0):
            values.append(self.build(item, (*path, len(values))))
        return values[: schema["maxItems"]] if "maxItems" in schema else values

    def _number(self, schema: dict, path: tuple, *, integer: bool) -> int | float:
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        low = low if low is not None else (high - 10 if high is not None else 0)
        high = high if high is not None else low + 10
        if not integer:  # strictly inside, so exclusive bounds hold too
            return round(low + (high - low) * self.rng.randint(1, 9) / 10, 6)
        low = int(low) + 1 if "exclusiveMinimum" in schema and "minimum" not in schema else -int(-low // 1)
        high = int(high) - 1 if "exclusiveMaximum" in schema and "maximum" not in schema else int(high // 1)
        value = self.rng.randint(low, high)
        self.picks.append(_Pick(path, value, range(low, high + 1), enum=False))
        return value

    def _string(self, schema: dict, path: tuple) -> str:
        text = self.quote if self.quote and "evidence" in path else self.rng.choice(_SENTENCES)
        text = text[: schema["maxLength"]] if "maxLength" in schema else text
        return text.ljust(schema.get("minLength", 0), ".")


def _type(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind:
        return kind
    return "object" if "properties" in schema else "array" if "items" in schema else "string"


def _score(picks: Sequence[_Pick]) -> _Pick | None:
    """The score: the first enum in the reply, else the first integer."""
    return next((p for p in picks if p.enum), picks[0] if picks else None)


def _put(instance: Any, path: tuple, value: Any) -> Any:
    """`instance` with the value at `path` replaced."""
    if not path:
        return value
    target = instance
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return instance


# --- content as tokens -----------------------------------------------------------------------------

Token = tuple[str, bool]  # text, and whether it is the score value


def _tokens(value: Any, score_path: tuple | None, path: tuple = ()) -> Iterator[Token]:
    """`value` as JSON (json.dumps' default separators), one token per scalar or punctuation run."""
    if isinstance(value, dict):
        yield "{", False
        for i, (key, item) in enumerate(value.items()):
            yield (", " if i else "") + encode_basestring(key) + ": ", False
            yield from _tokens(item, score_path, (*path, key))
        yield "}", False
    elif isinstance(value, list):
        yield "[", False
        for i, item in enumerate(value):
            if i:
                yield ", ", False
            yield from _tokens(item, score_path, (*path, i))
        yield "]", False
    else:
        yield _scalar(value), path == score_path


def _scalar(value: Any) -> str:
    """json.dumps of one scalar, without its per-call overhead."""
    if isinstance(value, str):
        return encode_basestring(value)
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return repr(value)


def _json_tokens(
    schema: dict, messages: list[dict], *, break_score: bool, request_seed: Any = None
) -> tuple[list[Token], _Pick | None]:
    """A valid instance of `schema` seeded by the messages and the request's seed, as tokens; `break_score`
    puts a value the schema forbids in the score's place."""
    asked = next((i for i, m in enumerate(messages) if m.get("role") == "assistant"), len(messages))
    original = messages[:asked]  # a re-ask gets the answer the original question gets, as from a model at temperature 0
    rng = random.Random(_seed(original, request_seed))
    instance = _Instance(schema, rng, _quote(original, rng))
    value = instance.build(schema)
    score = _score(instance.picks)
    if break_score and score is not None:
        value = _put(value, score.path, score.invalid())
    return list(_tokens(value, score.path if score else None)), score


def _length(tokens: Sequence[Token]) -> int:
    return sum(len(text) for text, _ in tokens)


def _cut(tokens: Sequence[Token], keep: int) -> list[Token]:
    """The first `keep` characters of the tokens; a token cut in two is no longer the score."""
    out: list[Token] = []
    used = 0
    for text, is_score in tokens:
        if used + len(text) > keep:
            if keep > used:
                out.append((text[: keep - used], False))
            break
        out.append((text, is_score))
        used += len(text)
    return out


def _logprob_entry(token: str, logprob: float) -> dict:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}


def _logprobs(tokens: Sequence[Token], score: _Pick | None, top: int) -> dict:
    """Per-token logprobs: certain everywhere but the score, which has its alternatives nearest first."""
    entries = []
    for text, is_score in tokens:
        candidates = [_logprob_entry(text, _SCORE_LOGPROB if is_score else 0.0)]
        if is_score and score is not None:
            candidates += [
                _logprob_entry(_scalar(v), -round(1.9 + 0.7 * i + 0.2 * i * i, 2))
                for i, v in enumerate(score.alternatives()[: max(top - 1, 0)])
            ]
        entries.append({**candidates[0], "top_logprobs": candidates[:top]})
    return {"content": entries, "refusal": None}


# --- strict: the request as the API reference documents it -----------------------------------------
# What a server that enforces the Chat Completions reference refuses (FakeOpenAI(strict=True)): unknown or
# mistyped parameters, values out of range, malformed messages, and response formats whose schema breaks
# Structured Outputs' rules (every object closed and fully required, supported keywords only, limits).

Problem = tuple[str, str | None, str | None]  # message, param, code
_JSON_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "string": (lambda v: isinstance(v, str), "a string"),
    "number": (_is_number, "a decimal"),
    "integer": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "boolean": (lambda v: isinstance(v, bool), "a boolean"),
    "object": (lambda v: isinstance(v, dict), "an object"),
    "array": (lambda v: isinstance(v, list), "an array"),
}
PARAMETER_TYPES: dict[str, tuple[str, float | None, float | None]] = {  # type, minimum, maximum
    "model": ("string", None, None),
    "temperature": ("number", 0, 2),
    "top_p": ("number", 0, 1),
    "frequency_penalty": ("number", -2, 2),
    "presence_penalty": ("number", -2, 2),
    "seed": ("integer", None, None),
    "max_tokens": ("integer", 1, None),
    "max_completion_tokens": ("integer", 1, None),
    "n": ("integer", 1, 128),
    "logprobs": ("boolean", None, None),
    "top_logprobs": ("integer", 0, 20),
    "stream": ("boolean", None, None),
    "store": ("boolean", None, None),
    "parallel_tool_calls": ("boolean", None, None),
    "response_format": ("object", None, None),
    "metadata": ("object", None, None),
    "logit_bias": ("object", None, None),
    "user": ("string", None, None),
    "reasoning_effort": ("string", None, None),
    "service_tier": ("string", None, None),
}
MESSAGE_FIELDS = {
    "system": {"role", "content", "name"},
    "developer": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "refusal", "tool_calls", "function_call", "audio"},
    "tool": {"role", "content", "tool_call_id"},
}
SCHEMA_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
SCHEMA_KEYWORDS = {  # Structured Outputs' supported keywords: for every node, then by type
    "any": {"type", "description", "title", "enum", "const", "anyOf", "$ref", "$defs", "definitions"},
    "object": {"properties", "required", "additionalProperties"},
    "array": {"items", "minItems", "maxItems"},
    "string": {"pattern", "format"},
    "number": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"},
    "integer": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"},
    "boolean": set(),
    "null": set(),
}
SCHEMA_LIMITS = {"properties": 5000, "depth": 10, "enum values": 1000, "characters": 120_000}
"""Object properties in all, object nesting levels, enum values in all, and characters of every property
name, definition name, enum value and const value together: OpenAI's limits today (at launch they were 100
properties and 5 levels, which older deployments still enforce: FakeOpenAI(schema_limits=...))."""


@cache
def known_parameters() -> frozenset[str]:
    """The request parameters the reference documents, as the openai client types them (imported only by a
    strict server: the client's types take longer to import than the rest of this server)."""
    from openai.types.chat.completion_create_params import CompletionCreateParamsBase

    return frozenset({*CompletionCreateParamsBase.__optional_keys__, "stream"})


def _json_type(value: Any) -> str:
    """The JSON type of a value as OpenAI's messages name it: "a string", "an integer", ..."""
    kinds = ((bool, "a boolean"), (int, "an integer"), (float, "a decimal"), (str, "a string"), (list, "an array"))
    return next((name for kind, name in kinds if isinstance(value, kind)), "an object" if value is not None else "null")


def strict_problem(body: Mapping[str, Any], limits: Mapping[str, int] = SCHEMA_LIMITS) -> Problem | None:
    """The first thing in a chat request a strict server refuses, or None; `limits` as SCHEMA_LIMITS."""
    for name, value in body.items():
        if name not in known_parameters():
            return f"Unrecognized request argument supplied: {name}", name, "unknown_parameter"
        if name in PARAMETER_TYPES and value is not None:
            problem = _value_problem(name, value, *PARAMETER_TYPES[name])
            if problem is not None:
                return problem
    if "model" not in body:
        return "Missing required parameter: 'model'.", "model", "missing_required_parameter"
    if body.get("top_logprobs") is not None and body.get("logprobs") is not True:
        return "'top_logprobs' requires 'logprobs' to be true.", "top_logprobs", "invalid_value"
    for index, message in enumerate(body["messages"]):
        problem = _message_problem(message, f"messages[{index}]")
        if problem is not None:
            return problem
    return _response_format_problem(body.get("response_format"), limits)


def _value_problem(name: str, value: Any, kind: str, low: float | None, high: float | None) -> Problem | None:
    accepts, expected = _JSON_TYPES[kind]
    if not accepts(value):
        return (
            f"Invalid type for '{name}': expected {expected}, but got {_json_type(value)} instead.",
            name,
            "invalid_type",
        )
    unit = "decimal" if kind == "number" else "integer"
    if low is not None and value < low:
        message = f"Invalid '{name}': {unit} below minimum value. Expected a value >= {low:g}, but got {value} instead."
        return message, name, f"{unit}_below_min_value"
    if high is not None and value > high:
        message = (
            f"Invalid '{name}': {unit} above maximum value. Expected a value <= {high:g}, but got {value} instead."
        )
        return message, name, f"{unit}_above_max_value"
    return None


def _message_problem(message: dict, where: str) -> Problem | None:
    role = message.get("role")
    if role not in MESSAGE_FIELDS:
        supported = ", ".join(f"'{r}'" for r in MESSAGE_FIELDS)
        return f"Invalid value: {role!r}. Supported values are: {supported}.", f"{where}.role", "invalid_value"
    extra = sorted(set(message) - MESSAGE_FIELDS[role])
    if extra:
        return f"Unrecognized request argument supplied: {where}.{extra[0]}", f"{where}.{extra[0]}", "unknown_parameter"
    content = message.get("content")
    if content is None and not (role == "assistant" and ("tool_calls" in message or "function_call" in message)):
        return f"Missing required parameter: '{where}.content'.", f"{where}.content", "missing_required_parameter"
    parts_ok = isinstance(content, list) and all(
        isinstance(p, dict) and isinstance(p.get("type"), str) for p in content
    )
    if content is not None and not isinstance(content, str) and not parts_ok:
        message_text = (
            f"Invalid type for '{where}.content': expected one of a string or array of objects, "
            f"but got {_json_type(content)} instead."
        )
        return message_text, f"{where}.content", "invalid_type"
    return None


def _response_format_problem(response_format: Any, limits: Mapping[str, int]) -> Problem | None:
    if response_format is None:
        return None
    kind = response_format.get("type")
    if kind not in ("text", "json_object", "json_schema"):
        message = f"Invalid value: {kind!r}. Supported values are: 'text', 'json_object', and 'json_schema'."
        return message, "response_format.type", "invalid_value"
    if kind != "json_schema":
        return None
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict):
        param = "response_format.json_schema"
        return f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    name = spec.get("name")
    if not isinstance(name, str) or not SCHEMA_NAME.fullmatch(name):
        message = (
            "Invalid 'response_format.json_schema.name': string does not match pattern. "
            "Expected a string that matches the pattern '^[a-zA-Z0-9_-]{1,64}$'."
        )
        return message, "response_format.json_schema.name", "invalid_value"
    extra = sorted(set(spec) - {"name", "description", "schema", "strict"})
    if extra:
        param = f"response_format.json_schema.{extra[0]}"
        return f"Unrecognized request argument supplied: {param}", param, "unknown_parameter"
    schema = spec.get("schema")
    problem = "'schema' must be an object." if not isinstance(schema, dict) else None
    if problem is None and spec.get("strict") is True:
        problem = schema_problem(schema, limits)
    return (
        None
        if problem is None
        else (f"Invalid schema for response_format '{name}': {problem}", "response_format", None)
    )


def schema_problem(root: dict, limits: Mapping[str, int] = SCHEMA_LIMITS) -> str | None:
    """What Structured Outputs' strict mode refuses in a schema, worded as OpenAI words it, or None."""
    if root.get("type") != "object" or "anyOf" in root:
        return f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{root.get('type')}\"'."
    totals = {"properties": 0, "enum values": 0, "characters": 0}
    problem = _node_problem(root, (), totals)
    if problem is not None:
        return problem
    totals["depth"] = _depth(root, root, frozenset())
    for limit, most in {**SCHEMA_LIMITS, **limits}.items():
        if totals[limit] > most:
            return f"{totals[limit]} {'levels of nesting' if limit == 'depth' else limit} exceeds limit of {most}."
    return None


def _node_problem(node: Any, context: tuple, totals: dict[str, int]) -> str | None:
    """The first rule `node` or a node below it breaks; counts properties, enum values and characters."""
    where = f"In context={context!r}, "
    if not isinstance(node, dict):
        return f"{where}schema must be an object."
    kinds = node.get("type", [])
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if not kinds and not {"anyOf", "$ref", "enum", "const"} & node.keys():
        return f"{where}schema must have a 'type' key."
    allowed = SCHEMA_KEYWORDS["any"].union(*(SCHEMA_KEYWORDS.get(k, set()) for k in kinds))
    unknown = sorted(node.keys() - allowed)
    if unknown:
        return f"{where}'{unknown[0]}' is not permitted."
    values = node.get("enum", []) + ([node["const"]] if "const" in node else [])
    totals["enum values"] += len(node.get("enum", []))
    totals["characters"] += sum(len(v) for v in values if isinstance(v, str))
    children: list[tuple[tuple, Any]] = []
    if "object" in kinds:
        properties = node.get("properties", {})
        if node.get("additionalProperties") is not False:
            return f"{where}'additionalProperties' is required to be supplied and to be false."
        required = node.get("required")
        missing = [name for name in properties if not isinstance(required, list) or name not in required]
        if missing:
            return (
                f"{where}'required' is required to be supplied and to be an array including every key in "
                f"properties. Missing '{missing[0]}'."
            )
        extra = [name for name in required or [] if name not in properties]
        if extra:
            return f"{where}Extra required key '{extra[0]}' supplied."
        totals["properties"] += len(properties)
        totals["characters"] += sum(map(len, properties))
        children += [((*context, "properties", name), sub) for name, sub in properties.items()]
    if "array" in kinds:
        if "items" not in node:
            return f"{where}'items' is required to be supplied."
        children.append(((*context, "items"), node["items"]))
    children += [((*context, "anyOf", i), sub) for i, sub in enumerate(node.get("anyOf", []))]
    for key in ("$defs", "definitions"):
        totals["characters"] += sum(map(len, node.get(key, {})))
        children += [((*context, key, name), sub) for name, sub in node.get(key, {}).items()]
    for at, child in children:
        problem = _node_problem(child, at, totals)
        if problem is not None:
            return problem
    return None


def _depth(node: dict, root: dict, refs: frozenset[str]) -> int:
    """Object nesting levels below and at `node`, following local $refs (a recursive one only once)."""
    if "$ref" in node and node["$ref"] not in refs:
        target: Any = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return _depth(target, root, refs | {node["$ref"]})
    below = [*node.get("properties", {}).values(), *node.get("anyOf", [])]
    below += [node["items"]] if isinstance(node.get("items"), dict) else []
    deepest = max((_depth(sub, root, refs) for sub in below if isinstance(sub, dict)), default=0)
    kinds = node.get("type")
    return deepest + (kinds == "object" or (isinstance(kinds, list) and "object" in kinds))


# --- the server ------------------------------------------------------------------------------------


class FakeOpenAI:
    """The server. Which behaviour request n (0-based, arrival order) gets: `script[n]` while the script
    lasts, else `chooser(body, n)` if given, else a seeded draw from `faults`, falling back to "valid"."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        script: Sequence[Behaviour] = (),
        chooser: Callable[[dict, int], Behaviour] | None = None,
        faults: Mapping[Behaviour, float] | None = None,
        fault_seed: int = 0,
        retry_after: float = 0.01,
        supports_json_schema: bool = True,
        json_schema_refusal: int = 400,
        unsupported: Sequence[str] = (),
        slow_seconds: float = 0.5,
        record: bool = True,
        strict: bool = False,
        schema_limits: Mapping[str, int] | None = None,
        no_system_role: SystemRoleRefusal | None = None,
        reasoning_tokens: int = 0,
    ) -> None:
        faults = dict(faults or {})
        unknown = sorted({*script, *faults} - set(BEHAVIOURS))
        if unknown:
            raise ValueError(f"unknown behaviours {unknown}; known: {list(BEHAVIOURS)}")
        if sum(faults.values()) > 1 or any(p < 0 for p in faults.values()):
            raise ValueError(f"fault probabilities must be >= 0 and sum to at most 1, got {faults}")
        self.latency, self.script, self.chooser = latency, tuple(script), chooser
        self.faults, self._rng = faults, random.Random(fault_seed)
        self.retry_after, self.supports_json_schema = retry_after, supports_json_schema
        self.json_schema_refusal = json_schema_refusal  # 500 as llama-cpp-python's server answers, else 400
        self.slow_seconds, self.record = slow_seconds, record
        self.unsupported = tuple(unsupported)  # request parameters refused, as reasoning models refuse temperature
        self.strict = strict  # refuse what the API reference does not allow (strict_problem)
        self.schema_limits = {**SCHEMA_LIMITS, **(schema_limits or {})}  # lower: as older deployments had
        self.no_system_role = no_system_role  # whose refusal a system message gets, if any
        self.reasoning_tokens = reasoning_tokens
        self.served: list[dict] = []  # the usage of every completion sent, as a provider would bill it
        self.url = ""
        self.received: list[Received] = []
        self.open = self.most_open = 0  # chat requests being answered now, and the most at once
        self._count = 0
        self._recent: deque[bytes] = deque()  # the last prompts, oldest first
        self._sorted: list[bytes] = []  # the same, sorted
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        from tests.fake_batches import FakeBatches

        self.batches = FakeBatches(self)  # /v1/files and /v1/batches, answering lines as _chat does

    # lifecycle

    def start(self) -> FakeOpenAI:
        """Serve from a background thread with its own event loop, on a free port; returns once listening."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-openai", daemon=True)
        self._thread.start()
        try:
            self._runner = asyncio.run_coroutine_threadsafe(self._listen(0), self._loop).result(timeout=10)
        except BaseException:
            self._halt()
            raise
        return self

    def stop(self) -> None:
        """Close the listener and its connections, then end the thread; a no-op if not running."""
        if self._loop is None or self._thread is None or self._runner is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._halt()

    def _halt(self) -> None:
        """Stop the background loop and its thread."""
        assert self._loop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop = self._thread = self._runner = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _listen(self, port: int) -> web.AppRunner:
        app = web.Application(client_max_size=256 * 1024 * 1024)  # a batch file may be 200 MB
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self.batches.add_routes(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)  # no logging per request
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
        return runner

    async def serve_until_signalled(self, port: int = 0) -> None:
        """Serve in this process's loop, print the URL as the first stdout line, stop on SIGTERM/SIGINT."""
        runner = await self._listen(port)
        print(self.url, flush=True)
        stopping = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
        await stopping.wait()
        await runner.cleanup()

    # behaviour

    def choose(self, body: dict, n: int) -> Behaviour:
        """The behaviour for request n; past the script and without a chooser, this draws from `faults`."""
        if n < len(self.script):
            return self.script[n]
        if self.chooser is not None:
            return self.chooser(body, n)
        draw = self._rng.random()
        for behaviour, probability in self.faults.items():
            if draw < probability:
                return behaviour
            draw -= probability
        return "valid"

    # handlers

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "fake-openai"}]}
        )

    async def _chat(self, request: web.Request) -> web.Response:
        """The reply is built first and sent `latency` seconds after the request arrived, so the latency a
        client sees is the configured one however long building it took or how many arrived at once."""
        arrived = time.monotonic()
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            return await self._answer_chat(request, arrived)
        finally:
            self.open -= 1

    async def _answer_chat(self, request: web.Request, arrived: float) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            return _error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.", "invalid_request_error")
        if self.record:
            self.received.append(Received(body, {k.lower(): v for k, v in request.headers.items()}, request.path))
        n, self._count = self._count, self._count + 1
        behaviour = self.choose(body, n)
        invalid = self._invalid(body)  # a Response is an empty mapping, so falsy: compare with None
        response = invalid if invalid is not None else self._respond(body, behaviour, n)
        delay = self.latency + (self.slow_seconds if behaviour == "slow" and invalid is None else 0.0)
        if delay:
            await asyncio.sleep(arrived + delay - time.monotonic())
        return response

    def answer(self, body: dict, url: str) -> tuple[int, Any]:
        """A batch line answered as _chat answers a request (one count, script and faults with it): the
        status and the JSON body. Recorded with the path `batch:URL`."""
        if self.record:
            self.received.append(Received(body, {}, f"batch:{url}"))
        n, self._count = self._count, self._count + 1
        behaviour = self.choose(body, n)
        invalid = self._invalid(body)
        response = invalid if invalid is not None else self._respond(body, behaviour, n)
        assert isinstance(response.body, bytes)
        return response.status, json.loads(response.body)

    def _invalid(self, body: dict) -> web.Response | None:
        """The 400s a real server gives whatever else happens: these depend on the request, not on luck."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            return _error(400, "'messages' must be a non-empty array of objects.", "invalid_request_error", "messages")
        if body.get("stream"):
            return _error(400, "Streaming is not supported by this server.", "invalid_request_error", "stream")
        problem = strict_problem(body, self.schema_limits) if self.strict else None
        if problem is not None:
            return _error(400, problem[0], "invalid_request_error", problem[1], problem[2])
        if self.no_system_role is not None and any(m.get("role") == "system" for m in messages):
            return _system_role_refusal(self.no_system_role)
        roles = [m.get("role") for m in messages]
        if self.no_system_role is not None and roles != ["user", "assistant"] * (len(roles) // 2) + ["user"]:
            return _template_error(ALTERNATE)  # Gemma's template: user first, then turns alternate
        for name in self.unsupported:
            if name in body:
                return _error(
                    400,
                    f"Unsupported parameter: '{name}' is not supported with this model.",
                    "invalid_request_error",
                    name,
                    "unsupported_parameter",
                )
        kind = _response_format_type(body)
        if kind == "json_schema" and not self.supports_json_schema:
            return self._fault("no_json_schema", body)
        if kind == "json_object" and not any("json" in _text(m).lower() for m in messages):
            return _error(
                400,
                "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
                "invalid_request_error",
                "messages",
            )
        return None

    def _respond(self, body: dict, behaviour: Behaviour, n: int) -> web.Response:
        if behaviour in ("valid", "slow", "malformed", "out_of_range", "refusal", "length"):
            return web.json_response(self._completion(body, behaviour, n))
        if behaviour == "loose":
            return web.json_response(self._loose(self._completion(body, "valid", n)))
        return self._fault(behaviour, body)

    def _fault(self, behaviour: Behaviour, body: dict) -> web.Response:
        model = body.get("model", MODEL)
        if behaviour == "rate_limit":
            headers = {"Retry-After": str(self.retry_after), "retry-after-ms": f"{self.retry_after * 1000:g}"}
            return _error(
                429,
                f"Rate limit reached for {model}. Please try again in {self.retry_after}s.",
                "rate_limit_exceeded",
                code="rate_limit_exceeded",
                headers=headers,
            )
        if behaviour == "server_error":
            return _error(500, "The server had an error", "server_error")
        if behaviour == "no_json_schema" and self.json_schema_refusal >= 500:
            return _error(
                self.json_schema_refusal,
                'response_format type must be one of "text" or "json_object", but got: json_schema',
                "server_error",
                code=str(self.json_schema_refusal),
            )
        if behaviour == "no_json_schema":
            return _error(
                400,
                "response_format type 'json_schema' is not supported by this server",
                "invalid_request_error",
                "response_format",
            )
        if behaviour == "template_error":
            return _template_error(ALTERNATE)
        if behaviour == "context_overflow":
            return _context_overflow(body)
        if behaviour == "unauthorized":
            return _error(401, "Incorrect API key provided: sk-fa***", "invalid_request_error", code="invalid_api_key")
        if behaviour == "not_found":
            return _error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error",
                code="model_not_found",
            )
        return _error(
            400,
            "This model's maximum context length is 8192 tokens. Please reduce the length of the messages.",
            "invalid_request_error",
            "messages",
            "context_length_exceeded",
        )

    # completions

    def _completion(self, body: dict, behaviour: Behaviour, n: int) -> dict:
        messages = body["messages"]
        texts = [_text(m) for m in messages]
        tokens, score = self._reply(body, messages, texts, behaviour)
        content = None if behaviour == "refusal" else "".join(text for text, _ in tokens)
        top = body.get("top_logprobs") or 0
        logprobs = _logprobs(tokens, score, top) if body.get("logprobs") and content is not None else None
        prompt_tokens = max(1, sum(map(len, texts)) // 4)
        answer_tokens = max(1, len(content or REFUSAL) // 4)
        caps = [body.get(n) for n in ("max_completion_tokens", "max_tokens") if isinstance(body.get(n), int)]
        reasoning = max(0, min(self.reasoning_tokens, min(caps, default=self.reasoning_tokens) - answer_tokens))
        completion_tokens = answer_tokens + reasoning
        self.served.append({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens})
        return {
            "id": f"chatcmpl-fake{n:08d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", MODEL),
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": content,
                        "refusal": REFUSAL if behaviour == "refusal" else None,
                        "annotations": [],
                    },
                    "finish_reason": "length" if behaviour == "length" else "stop",
                    "logprobs": logprobs,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": self._cached_tokens("".join(texts))},
                "completion_tokens_details": {"reasoning_tokens": reasoning},
            },
        }

    @staticmethod
    def _loose(completion: dict) -> dict:
        """A valid reply in the loosest shape servers send: content as a list of text parts, no
        refusal or logprobs keys, token counts null or not numbers."""
        choice = completion["choices"][0]
        text = choice["message"]["content"]
        choice["message"] = {"role": "assistant", "content": [{"type": "text", "text": text}]}
        del choice["logprobs"]
        completion["usage"] = {"prompt_tokens": "n/a", "completion_tokens": None, "prompt_tokens_details": None}
        return completion

    def _reply(
        self, body: dict, messages: list[dict], texts: list[str], behaviour: Behaviour
    ) -> tuple[list[Token], _Pick | None]:
        """The reply's tokens and score, from the messages and the request's seed (plus the behaviour's damage)."""
        schema = _response_schema(body) or _message_schema(texts)
        tokens, score = (
            ([("OK", False)], None)
            if schema is None
            else _json_tokens(schema, messages, break_score=behaviour == "out_of_range", request_seed=body.get("seed"))
        )
        if behaviour == "malformed":
            tokens = _cut(tokens, max(_length(tokens) - 7, 1))
        if schema is not None and _response_format_type(body) == "text":
            tokens = [(TEXT_PREFIX, False), *tokens, (TEXT_SUFFIX, False)]
        if behaviour == "length":
            tokens = _cut(tokens, _length(tokens) // 2)
        return tokens, score

    def _cached_tokens(self, prompt: str) -> int:
        """Tokens of the prompt's longest prefix shared with one of the last 64 prompts, in blocks of 64
        tokens as a prefix cache counts them. In sorted order the prompt sharing the longest prefix is a
        neighbour, so only two comparisons are needed, each a binary search over bytes compared in C."""
        data = prompt.encode("utf-32-le")  # fixed width: byte offsets are character offsets times 4
        at = bisect_left(self._sorted, data)
        shared = max((_shared_blocks(data, other) for other in self._sorted[max(at - 1, 0) : at + 1]), default=0)
        self._sorted.insert(at, data)
        self._recent.append(data)
        if len(self._recent) > _HISTORY:
            del self._sorted[bisect_left(self._sorted, self._recent.popleft())]
        return shared * _BLOCK // 4


def _shared_blocks(a: bytes, b: bytes) -> int:
    """How many leading blocks of characters (4 bytes each in UTF-32) `a` and `b` share."""
    size = 4 * _BLOCK
    low, high = 0, min(len(a), len(b)) // size
    while low < high:
        middle = (low + high + 1) // 2
        if a[low * size : middle * size] == b[low * size : middle * size]:  # the first `low` are known equal
            low = middle
        else:
            high = middle - 1
    return low


def _system_role_refusal(server: SystemRoleRefusal) -> web.Response:
    """A system message refused by a chat template without a system role, as each server answers it."""
    if server == "openai":
        message = "Unsupported value: 'messages[0].role' does not support 'system' with this model."
        return _error(400, message, "invalid_request_error", "messages[0].role", "unsupported_value")
    if server == "llama.cpp":
        source = "{{ raise_exception('System role not supported') }}"
        message = (
            f"\n------------\nWhile executing CallExpression at line 1, column 94 in source:\n...{source}\n"
            "                ^\nError: Jinja Exception: System role not supported"
        )
        return web.json_response({"error": {"code": 500, "message": message, "type": "server_error"}}, status=500)
    return _template_error("System role not supported")


def _template_error(message: str) -> web.Response:
    """A chat template's exception as vLLM answers it: a 400 BadRequestError with the template's message."""
    error = {"message": message, "type": "BadRequestError", "param": None, "code": 400}
    return web.json_response({"error": error}, status=400)


def _context_overflow(body: dict, context: int = 8192) -> web.Response:
    """A prompt and reply cap longer than the model's context, as vLLM refuses it: naming `max_tokens`."""
    cap = body.get("max_completion_tokens") or body.get("max_tokens") or 1
    prompt = context - cap + 1
    message = (
        f"'max_tokens' or 'max_completion_tokens' is too large: {cap}. This model's maximum context length is "
        f"{context} tokens and your request has {prompt} input tokens ({cap} > {context} - {prompt}). "
        f"(parameter=max_tokens, value={cap})"
    )
    error = {"message": message, "type": "BadRequestError", "param": "max_tokens", "code": 400}
    return web.json_response({"error": error}, status=400)


def _fault_arg(text: str) -> tuple[Behaviour, float]:
    """`--fault NAME=P`."""
    name, _, probability = text.partition("=")
    if name not in BEHAVIOURS:
        raise argparse.ArgumentTypeError(f"unknown behaviour {name!r}; known: {', '.join(BEHAVIOURS)}")
    return name, float(probability)  # type: ignore[return-value]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fake_openai", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument(
        "--fault",
        type=_fault_arg,
        action="append",
        default=[],
        metavar="NAME=P",
        help="probability of a behaviour per request, e.g. rate_limit=0.1 (repeatable)",
    )
    parser.add_argument("--fault-seed", type=int, default=0)
    parser.add_argument("--retry-after", type=float, default=0.01)
    parser.add_argument("--slow-seconds", type=float, default=0.5)
    parser.add_argument("--no-json-schema", action="store_true", help="refuse response_format json_schema")
    parser.add_argument(
        "--json-schema-refusal", type=int, default=400, metavar="STATUS", help="status of that refusal (500: llama-cpp)"
    )
    parser.add_argument(
        "--strict", action="store_true", help="refuse requests the OpenAI API reference does not allow, with its 400s"
    )
    parser.add_argument(
        "--no-system-role",
        choices=get_args(SystemRoleRefusal),
        help="refuse a system message as this server does for a chat template without a system role",
    )
    parser.add_argument("--reasoning-tokens", type=int, default=0, help="reasoning tokens counted per reply")
    args = parser.parse_args(argv)
    server = FakeOpenAI(
        latency=args.latency,
        faults=dict(args.fault),
        fault_seed=args.fault_seed,
        retry_after=args.retry_after,
        slow_seconds=args.slow_seconds,
        supports_json_schema=not args.no_json_schema,
        json_schema_refusal=args.json_schema_refusal,
        record=False,
        strict=args.strict,
        no_system_role=args.no_system_role,
        reasoning_tokens=args.reasoning_tokens,
    )  # nobody reads it: no growth
    asyncio.run(server.serve_until_signalled(args.port))


if __name__ == "__main__":
    main()
