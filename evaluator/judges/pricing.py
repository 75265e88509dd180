"""Tokens into money, and token estimates before a run.

Prices are USD per million tokens (input, cached input, output). The defaults cover common OpenAI
models at their published list prices when this table was written; prices change, so a run can load
its own table (`--prices FILE`, YAML or JSON: `model: {input: 2.5, cached_input: 1.25, output: 10}`).
A model not in the table (a local vLLM or Ollama model) has no price: its cost is reported as unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from evaluator.errors import EvaluatorError
from evaluator.files import MAX_CONFIG_BYTES, InputFileError, load_yaml, read_text
from evaluator.judges.base import JudgeCall, Reask
from evaluator.models import Judgment, Message, Usage


@dataclass(frozen=True)
class Price:
    input: float
    cached_input: float
    output: float

    def cost(self, usage: Usage) -> float:
        uncached = max(0, usage.prompt_tokens - usage.cached_tokens)
        return (
            uncached * self.input + usage.cached_tokens * self.cached_input + usage.completion_tokens * self.output
        ) / 1e6


DEFAULT_PRICES: Mapping[str, Price] = {
    "gpt-4o": Price(2.50, 1.25, 10.00),
    "gpt-4o-mini": Price(0.15, 0.075, 0.60),
    "gpt-4.1": Price(2.00, 0.50, 8.00),
    "gpt-4.1-mini": Price(0.40, 0.10, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.025, 0.40),
    "o4-mini": Price(1.10, 0.275, 4.40),
    "gpt-5": Price(1.25, 0.125, 10.00),
    "gpt-5-mini": Price(0.25, 0.025, 2.00),
    "gpt-5-nano": Price(0.05, 0.005, 0.40),
}


class PriceError(EvaluatorError, ValueError):
    """A price file that cannot be used."""


def load_prices(path: Path) -> dict[str, Price]:
    try:
        data = load_yaml(path, read_text(path, MAX_CONFIG_BYTES))
    except InputFileError as exc:
        raise PriceError(f"{path}: cannot read the price table: {exc.detail}") from None
    if not isinstance(data, dict):
        raise PriceError(f"{path}: expected a mapping of model -> {{input, cached_input, output}}")
    prices = {}
    for model, entry in data.items():
        try:
            prices[str(model)] = Price(
                input=float(entry["input"]),
                cached_input=float(entry.get("cached_input", entry["input"])),
                output=float(entry["output"]),
            )
        except (TypeError, KeyError, ValueError) as exc:
            raise PriceError(
                f"{path}: model {model!r}: needs numeric input and output prices per million tokens ({exc})"
            ) from None
    return prices


def price_for(model: str | None, table: Mapping[str, Price]) -> Price | None:
    """Exact name first, then the longest known prefix, so dated snapshots (gpt-4o-2024-08-06) are priced."""
    if model is None:
        return None
    if model in table:
        return table[model]
    matches = [name for name in table if model.startswith(name + "-")]
    return table[max(matches, key=len)] if matches else None


@lru_cache(maxsize=1)
def _encoder() -> Callable[[str], int] | None:
    """tiktoken's o200k encoding when it can be loaded (it downloads its table once); None offline."""
    try:
        import tiktoken

        encoding = tiktoken.get_encoding("o200k_base")
    except Exception:  # noqa: BLE001 - any failure to fetch the table means: estimate by characters
        return None
    return lambda text: len(encoding.encode(text))


def token_counter() -> tuple[Callable[[str], int], str]:
    """A token counter and how it counts, for the dry-run report."""
    encoder = _encoder()
    if encoder is not None:
        return encoder, "tiktoken o200k_base"
    return (
        lambda text: max(1, len(text) // 4)
    ), "about 4 characters a token (tiktoken's table is not available offline)"


def estimate_prompt_tokens(messages: Sequence[Message], count: Callable[[str], int]) -> int:
    """Message text plus the few tokens of framing the chat format adds per message."""
    return sum(count(m.content) + 4 for m in messages) + 3


def describe_price(price: Price | None) -> dict[str, Any] | None:
    return None if price is None else {"input": price.input, "cached_input": price.cached_input, "output": price.output}


class Budget:
    """Stops a run cleanly before it would exceed `--max-cost`.

    Each call reserves its estimated cost before it is sent (so concurrent calls cannot together
    overshoot) and settles to the real cost from the reply's usage. Once a reservation would cross
    the limit, no further call starts; calls in flight finish and are kept. A request beyond a call's
    reservation (a re-ask after an invalid reply, or a reply a refusal left uncapped) is reserved
    through `hook` before it is sent; one that would not fit stops the run, and the judge records the
    call's requests without a verdict as errors (no judgment) that --resume judges.
    """

    def __init__(self, limit: float | None, price: Price | None, estimate: Callable[[JudgeCall], Usage]) -> None:
        self.limit, self.price, self.estimate = limit, price, estimate
        self.spent = 0.0
        self.reserved = 0.0
        self.exhausted = False
        self._held: dict[int, float] = {}

    def reserve(self, call: JudgeCall) -> bool:
        if self.exhausted:
            return False
        if self.limit is None or self.price is None:
            return True
        return self._hold(call, self.price.cost(self.estimate(call)), self.limit)

    def hook(self, call: JudgeCall) -> Reask | None:
        """What the judge asks before a request beyond the call's reservation; None when nothing is limited."""
        limit, price = self.limit, self.price
        if limit is None or price is None:
            return None
        return lambda usage: self._hold(call, price.cost(usage), limit)

    def _hold(self, call: JudgeCall, cost: float, limit: float) -> bool:
        if self.spent + self.reserved + cost > limit:
            self.exhausted = True
            return False
        self.reserved += cost
        self._held[id(call)] = self._held.get(id(call), 0.0) + cost
        return True

    def settle(self, call: JudgeCall, judgments: Sequence[Judgment]) -> None:
        self.reserved -= self._held.pop(id(call), 0.0)
        if self.price is not None:
            self.spent += sum(self.price.cost(j.usage) for j in judgments)


BATCH_DISCOUNT = 0.5
"""Batch queues (OpenAI's Batch API and the providers that copy it) charge half the synchronous price."""


def batch_price(price: Price | None) -> Price | None:
    """The price of a request sent through a provider's batch queue."""
    if price is None:
        return None
    return Price(price.input * BATCH_DISCOUNT, price.cached_input * BATCH_DISCOUNT, price.output * BATCH_DISCOUNT)
