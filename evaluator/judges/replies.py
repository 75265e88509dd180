"""What the LLM judge reads from a chat completion: the reply parsed leniently (local servers omit or
add fields), the layout that says where each request's verdict sits in a grouped reply, and the
probability-weighted score from the logprobs where the endpoint returns them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from evaluator.judges.base import JudgeCall
from evaluator.judges.verdicts import (
    ReplyProblem,
    Verdict,
    group_schema,
    over_strict_limits,
    parse_verdict,
    verdict_schema,
)
from evaluator.models import CategoricalScale, Usage
from evaluator.plan import JudgeRequest


@dataclass(frozen=True)
class Reply:
    """What the judge reads from a chat completion, parsed leniently from the raw JSON: local servers
    omit or add fields, and only these matter."""

    content: str
    refusal: str | None
    finish_reason: str | None
    usage: Usage
    logprobs: tuple[tuple[str, tuple[tuple[str, float], ...]], ...]

    @classmethod
    def parse(cls, raw: str) -> Reply:
        try:
            data = orjson.loads(raw)
            choice = data["choices"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            raise ReplyProblem("the endpoint's reply is not a chat completion (no choices[0])") from None
        choice = _mapping(choice)
        message = _mapping(choice.get("message"))
        content = message.get("content")
        if isinstance(content, list):  # content parts, as some servers send them
            content = "".join(str(_mapping(part).get("text") or "") for part in content)
        if content is not None and not isinstance(content, str):
            raise ReplyProblem(f"the reply's message content is {type(content).__name__}, not text")
        usage = _mapping(data.get("usage"))
        refusal = message.get("refusal")
        return cls(
            content=content or "",
            refusal=str(refusal) if refusal else None,
            finish_reason=choice.get("finish_reason"),
            usage=Usage.model_construct(
                prompt_tokens=_count(usage.get("prompt_tokens")),
                cached_tokens=_count(_mapping(usage.get("prompt_tokens_details")).get("cached_tokens")),
                completion_tokens=_count(usage.get("completion_tokens")),
            ),
            logprobs=_logprobs(_mapping(choice.get("logprobs")).get("content")),
        )


def _mapping(value: Any) -> dict[str, Any]:
    """A reply field that should be an object; anything else reads as empty."""
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int:
    """A token count as reported; what is not a number counts as 0 rather than failing the verdict."""
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError, OverflowError):
        return 0


def _logprobs(tokens: Any) -> tuple[tuple[str, tuple[tuple[str, float], ...]], ...]:
    """Each output token with its top alternatives; malformed entries are skipped."""
    result = []
    for token in tokens if isinstance(tokens, list) else []:
        token = _mapping(token)
        alternatives = []
        alternatives_given = token.get("top_logprobs")
        for alternative in alternatives_given if isinstance(alternatives_given, list) else []:
            alternative = _mapping(alternative)
            try:
                alternatives.append((str(alternative.get("token", "")), float(alternative.get("logprob", -99))))
            except (TypeError, ValueError):
                continue
        result.append((str(token.get("token", "")), tuple(alternatives)))
    return tuple(result)


@dataclass(frozen=True)
class Layout:
    """How a call's reply is shaped: the schema, where each request's verdict sits in the reply, and whether
    the schema is within what strict structured output takes (STRICT_LIMITS)."""

    schema: dict[str, Any]
    paths: tuple[tuple[str, ...], ...]
    strict: bool = True

    @classmethod
    def of(cls, call: JudgeCall) -> Layout:
        """Scores as enums; a grouped call whose enums together exceed the strict limit (a long session in
        one call) gives its integer scales as ranges, and a schema still too large for strict mode goes
        without it."""
        schema, paths = _shape(call, ranges=False)
        over = over_strict_limits(schema)
        if "enum values" in over:
            schema, paths = _shape(call, ranges=True)
            over = over_strict_limits(schema)
        return cls(schema, paths, strict=not over)

    @staticmethod
    def key(call: JudgeCall) -> tuple[Any, ...]:
        """What a layout depends on: the mode, the criteria, and in per-transcript mode the turns."""
        turns = call.mode == "per-transcript"
        return (call.mode, *((r.rubric.hash, r.criterion.id, r.turn.index if turns else 0) for r in call.requests))

    def verdicts(self, data: Any, requests: tuple[JudgeRequest, ...]) -> list[Verdict | ReplyProblem]:
        """Each request's verdict, or the problem with it, so a grouped reply keeps its good parts."""
        results: list[Verdict | ReplyProblem] = []
        for path, request in zip(self.paths, requests):
            node = data
            try:
                for key in path:
                    if not isinstance(node, dict) or key not in node:
                        raise ReplyProblem(f"missing {'.'.join(path)}")
                    node = node[key]
                results.append(parse_verdict(node, request.criterion))
            except ReplyProblem as problem:
                where = ".".join(path)
                results.append(ReplyProblem(f"{where}: {problem}") if where else problem)
        return results


def _shape(call: JudgeCall, ranges: bool) -> tuple[dict[str, Any], tuple[tuple[str, ...], ...]]:
    """A call's reply schema and the path to each request's verdict in it."""
    requests = call.requests
    if call.mode == "per-criterion":
        return verdict_schema(requests[0].criterion, ranges), ((),)
    if call.mode == "per-turn":
        keys = [r.criterion.id for r in requests]
        return group_schema(keys, [verdict_schema(r.criterion, ranges) for r in requests]), tuple((k,) for k in keys)
    by_turn: dict[str, list[JudgeRequest]] = {}
    for r in requests:
        by_turn.setdefault(f"turn_{r.turn.index}", []).append(r)
    turn_schemas = [
        group_schema([r.criterion.id for r in rs], [verdict_schema(r.criterion, ranges) for r in rs])
        for rs in by_turn.values()
    ]
    paths = tuple((f"turn_{r.turn.index}", r.criterion.id) for r in requests)
    return group_schema(list(by_turn), turn_schemas), paths


def weighted_score(reply: Reply, request: JudgeRequest, verdict: Verdict) -> float | None:
    """The probability-weighted score from the top logprobs of the score token, where the endpoint
    returns them: a finer signal than the argmax, and a view of the judge's uncertainty."""
    scale = request.criterion.scale
    if isinstance(scale, CategoricalScale) or verdict.score is None:
        return None
    allowed = scale.allowed()
    written = str(int(verdict.score))
    text = ""
    for token, alternatives in reply.logprobs:
        before = text
        text += token
        if token.strip() == written and before.rstrip().endswith(":") and '"score"' in before[-40:]:
            weights: dict[int, float] = {}
            for candidate, logprob in alternatives:
                candidate = candidate.strip()
                if candidate.lstrip("-").isdigit() and (allowed is None or int(candidate) in allowed):
                    weights[int(candidate)] = weights.get(int(candidate), 0.0) + math.exp(logprob)
            total = sum(weights.values())
            return sum(v * p for v, p in weights.items()) / total if total else None
    return None
