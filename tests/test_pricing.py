"""Prices, estimates and the budget that stops a run before it overspends."""

from __future__ import annotations

import pytest

from evaluator.judges.base import JudgeCall
from evaluator.judges.pricing import DEFAULT_PRICES, Budget, Price, PriceError, load_prices, price_for
from evaluator.models import Judgment, Usage


def test_cached_tokens_are_charged_at_the_cached_price() -> None:
    price = Price(input=2.0, cached_input=1.0, output=10.0)
    assert price.cost(
        Usage(prompt_tokens=1_000_000, cached_tokens=500_000, completion_tokens=100_000)
    ) == pytest.approx(2.5)


def test_dated_snapshots_take_their_family_price() -> None:
    assert price_for("gpt-4o-2024-08-06", DEFAULT_PRICES) == DEFAULT_PRICES["gpt-4o"]
    assert price_for("gpt-4o-mini-2024-07-18", DEFAULT_PRICES) == DEFAULT_PRICES["gpt-4o-mini"]
    assert price_for("llama3.1", DEFAULT_PRICES) is None


def test_price_files_are_checked(write) -> None:
    assert load_prices(write("p.yaml", "mine: {input: 1, output: 3}\n"))["mine"] == Price(1.0, 1.0, 3.0)
    with pytest.raises(PriceError, match="model 'mine': needs numeric input and output"):
        load_prices(write("bad.yaml", "mine: {input: 1}\n"))


def _judgment(prompt: int, completion: int) -> Judgment:
    return Judgment(
        key="t/1/c/0",
        rubric_id="r",
        rubric_version=1,
        rubric_hash="h",
        transcript_id="t",
        turn_index=1,
        criterion_id="c",
        status="ok",
        score=1,
        judge="openai",
        usage=Usage(prompt_tokens=prompt, completion_tokens=completion),
    )


def test_budget_reserves_before_and_settles_after() -> None:
    price = Price(input=1e6, cached_input=1e6, output=1e6)  # one dollar a token, to make the sums plain
    budget = Budget(10.0, price, lambda call: Usage(prompt_tokens=3, completion_tokens=1))
    first, second, third = JudgeCall(()), JudgeCall(()), JudgeCall(())
    assert budget.reserve(first) and budget.reserve(second)
    assert not budget.reserve(third) and budget.exhausted
    budget.settle(first, [_judgment(2, 1)])
    assert budget.spent == 3.0 and budget.reserved == 4.0
    assert Budget(None, price, lambda call: Usage()).reserve(third)
