"""Samples fold into one verdict per item, with the spread a reader needs to trust it."""

from __future__ import annotations

import pytest

from evaluator.aggregate import iter_aggregates
from evaluator.models import Judgment, Rubric

RUBRIC = Rubric.model_validate(
    {
        "id": "r",
        "title": "R",
        "criteria": [
            {"id": "yes_no", "name": "n", "question": "q", "scale": {"type": "binary"}},
            {
                "id": "likert",
                "name": "n",
                "question": "q",
                "scale": {"type": "likert", "min": 1, "max": 5, "anchors": {1: "low", 5: "high"}},
            },
            {
                "id": "labels",
                "name": "n",
                "question": "q",
                "scale": {
                    "type": "categorical",
                    "categories": [{"label": "a", "description": "a"}, {"label": "b", "description": "b"}],
                },
            },
        ],
    }
)


def _samples(criterion: str, verdicts: list) -> list[Judgment]:
    judgments = []
    for sample, verdict in enumerate(verdicts):
        fields: dict = {"status": "ok"}
        if verdict is None:
            fields = {"status": "unscored", "unscored_reason": "no valid reply after 3 attempt(s): refused"}
        elif isinstance(verdict, str):
            fields["label"] = verdict
        else:
            fields["score"] = verdict
        judgments.append(
            Judgment(
                key=f"t/3/{criterion}/{sample}",
                rubric_id="r",
                rubric_version=1,
                rubric_hash="h",
                transcript_id="t",
                turn_index=3,
                criterion_id=criterion,
                sample=sample,
                judge="openai",
                **fields,
            )
        )
    return judgments


def _one(criterion: str, verdicts: list, method: str = "auto"):
    (aggregate,) = iter_aggregates(_samples(criterion, verdicts), {"r": RUBRIC}, method)  # type: ignore[arg-type]
    return aggregate


def test_mean_and_spread_for_scores() -> None:
    agg = _one("likert", [2, 4, 3])
    assert (agg.key, agg.method, agg.score, agg.samples, agg.scored) == ("r/t/3/likert", "mean", 3, 3, 3)
    assert agg.spread == pytest.approx(0.8165, abs=1e-4)
    assert _one("likert", [1, 5, 4], "median").score == 4


def test_majority_for_yes_no_and_labels_with_the_share_that_disagrees() -> None:
    agg = _one("yes_no", [1, 0, 1])
    assert (agg.method, agg.score, agg.verdict) == ("majority", 1, 1)
    assert agg.spread == pytest.approx(1 / 3)
    labels = _one("labels", ["b", "b", "a"], "mean")
    assert (labels.method, labels.label) == ("majority", "b")


def test_unscored_samples_are_left_out_and_an_item_with_none_scored_stays_unscored() -> None:
    agg = _one("likert", [None, 2, 4])
    assert (agg.scored, agg.score) == (2, 3)
    none = _one("likert", [None, None])
    assert none.status == "unscored" and none.score is None and "refused" in none.unscored_reason


def test_items_are_folded_as_their_samples_complete_in_the_order_they_first_came() -> None:
    """Streaming: an item is given out once its samples are all in and every item before it is, so
    only open items are held, and the order is that of folding the whole list at once (no `samples`)."""
    first, second = _samples("likert", [2, 4]), _samples("yes_no", [1, 1])
    stream = [first[0], second[0], second[1], first[1]]
    given: list[str] = []
    for aggregate in iter_aggregates(iter(stream), {"r": RUBRIC}, "auto", samples=2):
        given.append(aggregate.key)
    assert (
        given == [a.key for a in iter_aggregates(stream, {"r": RUBRIC}, "auto")] == ["r/t/3/likert", "r/t/3/yes_no"]
    )
    folded = iter_aggregates(iter(first + second), {"r": RUBRIC}, "auto", samples=2)
    assert next(folded).score == 3  # given out before the second item's judgments are read
