"""What a judge's reply must look like: the JSON schema sent to the endpoint, and the parser that
checks every reply against the criterion's scale.

The schema puts the rationale before the verdict so the model reasons before it decides. A reply is
accepted only if it names a value the scale allows; anything else is a `ReplyProblem` that the judge
re-asks about and, when attempts run out, records as unscored. A parse failure is never a grade.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

from evaluator.config import JudgeSettings
from evaluator.judges.base import JudgeCall
from evaluator.models import CategoricalScale, CountScale, Criterion

# A count scale without a max still has a plausible bound: no turn holds a thousand questions, and a
# runaway number from a confused judge must be re-asked, not averaged into a summary.
COUNT_CEILING = 1000
REPLY_FIELDS = ("rationale", "evidence", "applicable", "score")
VERDICT_TOKENS = 400
"""Reply tokens per verdict: a rationale of a few sentences and a few short quotes take 150-250, the JSON
around them a few dozen; the rest is headroom, since a verdict cut off is a verdict lost."""
REPLY_OVERHEAD_TOKENS = 64
TEXT_PREAMBLE_TOKENS = 256
"""In plain-text mode a model may write a few lines before its JSON block."""
STRICT_LIMITS = {"properties": 5000, "depth": 10, "enum values": 1000, "characters": 120_000}
"""Structured Outputs' documented limits on a strict schema: object properties in all, levels of object
nesting, enum values in all, and characters of property names and enum values together."""


class ReplyProblem(ValueError):
    """A reply that cannot be used; the message is sent back to the model when it is re-asked."""


@dataclass(frozen=True)
class Verdict:
    applicable: bool
    score: float | None
    label: str | None
    rationale: str
    evidence: tuple[str, ...]


def score_schema(criterion: Criterion, ranges: bool = False) -> dict[str, Any]:
    """The allowed scores: an enum, which every structured-output backend honours; with `ranges`, an integer
    scale as minimum..maximum instead (its values are consecutive), which spends none of the enum values
    a strict schema may hold in all (STRICT_LIMITS)."""
    scale = criterion.scale
    if isinstance(scale, CategoricalScale):
        return {"type": "string", "enum": scale.allowed()}
    allowed = scale.allowed()
    if allowed is None:
        return {"type": "integer"}
    if ranges:
        return {"type": "integer", "minimum": allowed[0], "maximum": allowed[-1]}
    return {"type": "integer", "enum": allowed}


def verdict_schema(criterion: Criterion, ranges: bool = False) -> dict[str, Any]:
    """A strict-mode schema: every property required, no extra ones, null only where the scale allows."""
    return {
        "type": "object",
        "properties": {
            "rationale": {"type": "string"},
            "evidence": {"type": "array", "items": {"type": "string"}},
            "applicable": {"type": "boolean"},
            "score": {"anyOf": [score_schema(criterion, ranges), {"type": "null"}]},
        },
        "required": list(REPLY_FIELDS),
        "additionalProperties": False,
    }


def over_strict_limits(schema: dict[str, Any]) -> list[str]:
    """Which of Structured Outputs' documented limits on a strict schema `schema` exceeds (see STRICT_LIMITS);
    a grouped call over a long session can exceed them, and OpenAI refuses such a schema under strict."""
    size = dict.fromkeys(STRICT_LIMITS, 0)

    def walk(node: dict[str, Any], depth: int) -> None:
        properties = node.get("properties", {})
        depth += node.get("type") == "object"
        size["depth"] = max(size["depth"], depth)
        size["properties"] += len(properties)
        size["enum values"] += len(node.get("enum", ()))
        size["characters"] += sum(map(len, properties)) + sum(
            len(v) for v in node.get("enum", ()) if isinstance(v, str)
        )
        for child in (*properties.values(), *node.get("anyOf", ()), *([node["items"]] if "items" in node else [])):
            walk(child, depth)

    walk(schema, 0)
    return [limit for limit, most in STRICT_LIMITS.items() if size[limit] > most]


def group_schema(keys: list[str], schemas: list[dict[str, Any]]) -> dict[str, Any]:
    """One object holding a verdict per key (criterion id, or turn then criterion), for grouped calls."""
    return {
        "type": "object",
        "properties": dict(zip(keys, schemas)),
        "required": keys,
        "additionalProperties": False,
    }


def reply_token_budget(verdicts: int, output: str) -> int:
    """A cap on a reply's tokens sized to what it must hold. Without one a local server generates until its
    context is full when a model loses its way, which takes minutes and ends in a reply cut off anyway."""
    return REPLY_OVERHEAD_TOKENS + verdicts * VERDICT_TOKENS + (TEXT_PREAMBLE_TOKENS if output == "text" else 0)


def response_format(name: str, schema: dict[str, Any], strict: bool = True) -> dict[str, Any]:
    """`strict: false` where the schema exceeds what strict mode takes: the endpoint then follows it without
    enforcing it, and the reply is validated here as always."""
    return {"type": "json_schema", "json_schema": {"name": name, "strict": strict, "schema": schema}}


_FENCE = re.compile(r"```(?:json)?\s*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_json(text: str) -> Any:
    """The reply's JSON object: the whole text, else the last fenced block, else the last object in
    the text that parses. Last, because models restate the format before their final answer."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    for block in reversed(_FENCE.findall(text)):
        try:
            return json.loads(block)
        except json.JSONDecodeError:
            continue
    decoder = json.JSONDecoder()
    found: Any = None
    position = text.find("{")
    while position != -1:
        try:
            found, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            position = text.find("{", position + 1)
            continue
        position = text.find("{", end)
    if found is None:
        raise ReplyProblem("the reply contains no JSON object")
    return found


def parse_verdict(data: Any, criterion: Criterion) -> Verdict:
    """Check one verdict object against the criterion's scale; strict about types, so "3" is not 3."""
    if not isinstance(data, dict):
        raise ReplyProblem(f"expected a JSON object, got {type(data).__name__}")
    missing = [f for f in REPLY_FIELDS if f not in data]
    if missing:
        raise ReplyProblem(f"missing field(s) {missing}")
    rationale, evidence, applicable, score = (data[f] for f in REPLY_FIELDS)
    if not isinstance(rationale, str):
        raise ReplyProblem("'rationale' must be a string")
    if not isinstance(evidence, list) or not all(isinstance(q, str) for q in evidence):
        raise ReplyProblem("'evidence' must be a list of strings")
    if not isinstance(applicable, bool):
        raise ReplyProblem("'applicable' must be true or false")
    quotes = tuple(q for q in evidence if q.strip())
    if not applicable:
        return Verdict(False, None, None, rationale, quotes)
    if score is None:
        raise ReplyProblem("'score' is null although 'applicable' is true")
    value, label = _on_scale(score, criterion)
    return Verdict(True, value, label, rationale, quotes)


def _on_scale(score: Any, criterion: Criterion) -> tuple[float | None, str | None]:
    scale = criterion.scale
    if isinstance(scale, CategoricalScale):
        if not isinstance(score, str) or score not in scale.allowed():
            raise ReplyProblem(f"'score' must be one of {scale.allowed()}, got {score!r}")
        return scale.value_of(score), score
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not float(score).is_integer():
        raise ReplyProblem(f"'score' must be a whole number, got {score!r}")
    allowed = scale.allowed()
    if isinstance(scale, CountScale) and allowed is None:
        if score < 0:
            raise ReplyProblem(f"'score' counts {scale.unit} and cannot be negative, got {score!r}")
        if score > COUNT_CEILING:
            raise ReplyProblem(
                f"'score' counts {scale.unit} in one turn; {score!r} is more than any turn holds (at most {COUNT_CEILING})"
            )
    elif int(score) not in (allowed or []):
        raise ReplyProblem(f"'score' must be one of {allowed}, got {score!r}")
    return float(score), None


def max_tokens_for(call: JudgeCall, settings: JudgeSettings, output: str, default: bool = True) -> int | None:
    """The reply cap a call is sent with: --param max_tokens, else the rubric's `parameters`, else
    --max-tokens, else (when `default`) a budget sized to the verdicts the reply holds. A null leaves it out,
    and so does a chosen `max_completion_tokens` (the cap under its newer name, which reasoning models want):
    the default is not sent beside it."""
    chosen = (settings.parameters, call.requests[0].rubric.parameters)
    for parameters in chosen:
        if "max_tokens" in parameters:
            return parameters["max_tokens"]
    if settings.max_tokens is not None:
        return settings.max_tokens
    if any(parameters.get("max_completion_tokens") is not None for parameters in chosen):
        return None
    return reply_token_budget(len(call.requests), output) if default else None
