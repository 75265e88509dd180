"""Reply parsing: the last JSON object wins, types are strict, anything off the scale is a problem."""

from __future__ import annotations

import pytest

from evaluator.judges.verdicts import ReplyProblem, extract_json, parse_verdict, verdict_schema
from evaluator.models import Criterion

LIKERT = Criterion.model_validate(
    {
        "id": "c",
        "name": "n",
        "question": "q",
        "scale": {"type": "likert", "min": 1, "max": 5, "anchors": {1: "a", 5: "b"}},
    }
)
LABELS = Criterion.model_validate(
    {
        "id": "c",
        "name": "n",
        "question": "q",
        "scale": {
            "type": "categorical",
            "categories": [
                {"label": "shorter", "description": "s", "value": 0},
                {"label": "longer", "description": "l", "value": 2},
            ],
        },
    }
)
COUNT = Criterion.model_validate(
    {"id": "c", "name": "n", "question": "q", "scale": {"type": "count", "unit": "questions"}}
)


def _reply(score, applicable=True, **extra) -> dict:
    return {"rationale": "r", "evidence": ["a quote"], "applicable": applicable, "score": score, **extra}


def test_the_last_json_object_in_chatty_text_is_taken() -> None:
    text = 'Format: {"score": 1}. Thinking... final answer:\n{"rationale": "x", "score": 4}\nThanks!'
    assert extract_json(text) == {"rationale": "x", "score": 4}
    fenced = 'Example ```json\n{"score": 1}\n``` and mine:\n```json\n{"score": 5}\n```'
    assert extract_json(fenced) == {"score": 5}
    with pytest.raises(ReplyProblem, match="no JSON object"):
        extract_json("I think it is a 4.")


def test_scores_must_be_on_the_scale_and_of_the_right_type() -> None:
    assert parse_verdict(_reply(4), LIKERT).score == 4
    assert parse_verdict(_reply(4.0), LIKERT).score == 4
    for bad, message in [
        ("4", "whole number"),
        (6, r"one of \[1, 2, 3, 4, 5\], got 6"),
        (True, "whole number"),
        (3.5, "whole number"),
    ]:
        with pytest.raises(ReplyProblem, match=message):
            parse_verdict(_reply(bad), LIKERT)
    with pytest.raises(ReplyProblem, match="cannot be negative"):
        parse_verdict(_reply(-1), COUNT)
    assert parse_verdict(_reply(12), COUNT).score == 12
    with pytest.raises(ReplyProblem, match="more than any turn holds"):
        parse_verdict(_reply(10**16), COUNT)


def test_labels_map_to_their_values() -> None:
    verdict = parse_verdict(_reply("longer"), LABELS)
    assert (verdict.label, verdict.score) == ("longer", 2)
    with pytest.raises(ReplyProblem, match="one of \\['shorter', 'longer'\\]"):
        parse_verdict(_reply("similar"), LABELS)


def test_not_applicable_needs_no_score_but_applicable_does() -> None:
    verdict = parse_verdict(_reply(None, applicable=False), LIKERT)
    assert not verdict.applicable and verdict.score is None
    with pytest.raises(ReplyProblem, match="null although 'applicable' is true"):
        parse_verdict(_reply(None), LIKERT)
    with pytest.raises(ReplyProblem, match="missing field"):
        parse_verdict({"score": 3}, LIKERT)
    with pytest.raises(ReplyProblem, match="'applicable' must be true or false"):
        parse_verdict(_reply(3, applicable="yes"), LIKERT)


def test_schema_is_strict_and_puts_the_rationale_first() -> None:
    schema = verdict_schema(LIKERT)
    assert list(schema["properties"]) == ["rationale", "evidence", "applicable", "score"]
    assert schema["additionalProperties"] is False and schema["required"] == list(schema["properties"])
    assert schema["properties"]["score"]["anyOf"] == [{"type": "integer", "enum": [1, 2, 3, 4, 5]}, {"type": "null"}]
    assert verdict_schema(LABELS)["properties"]["score"]["anyOf"][0] == {
        "type": "string",
        "enum": ["shorter", "longer"],
    }
