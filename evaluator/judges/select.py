"""Choose and configure the judge for a run: an LLM when one is configured, else the offline rules
judge, said once. Settings come from flags first, then the environment."""

from __future__ import annotations

from rich.console import Console

from evaluator.config import DEFAULT_MODEL, JudgeSettings
from evaluator.judges.base import Judge, JudgeCall
from evaluator.judges.pricing import (
    DEFAULT_PRICES,
    Price,
    estimate_prompt_tokens,
    load_prices,
    price_for,
    token_counter,
)
from evaluator.judges.rules import RulesJudge
from evaluator.judges.verdicts import max_tokens_for, reply_token_budget
from evaluator.models import Usage

__all__ = ["estimate_call", "judge_price", "make_judge"]

OFFLINE_NOTICE = (
    "No LLM judge configured (set OPENAI_API_KEY, or pass --base-url/--model): using the offline rules judge. "
    "Criteria without a rule check are recorded as unscored."
)


def make_judge(settings: JudgeSettings, console: Console) -> Judge:
    if not settings.uses_llm():
        if settings.kind == "auto":
            console.print(f"[yellow]{OFFLINE_NOTICE}[/yellow]", highlight=False)
        return RulesJudge()
    from evaluator.judges.openai import OpenAIJudge

    return OpenAIJudge(settings)


def judge_price(settings: JudgeSettings) -> Price | None:
    """The price of the configured model, from --prices or the defaults; None for rules or unknown models."""
    if not settings.uses_llm():
        return None
    table = dict(DEFAULT_PRICES)
    if settings.prices_file is not None:
        table.update(load_prices(settings.prices_file))
    return price_for(settings.model or DEFAULT_MODEL, table)


def estimate_call(call: JudgeCall, settings: JudgeSettings) -> Usage:
    """Tokens a call may use, before it is sent, for budgets and dry runs: the completion is counted at the
    cap the call is sent with, so a budget is never exceeded by replies that stay within it."""
    count, _ = token_counter()
    output = "json_schema" if settings.output == "auto" else settings.output
    cap = reply_cap(call, settings, output)
    completion = cap if cap is not None else reply_token_budget(len(call.requests), output)
    return Usage(prompt_tokens=estimate_prompt_tokens(call.messages, count), completion_tokens=completion)


def reply_cap(call: JudgeCall, settings: JudgeSettings, output: str) -> int | None:
    """The cap a call's reply is sent with, under either name: max_tokens (see max_tokens_for), or a
    max_completion_tokens chosen by --param or the rubric's `parameters:` (--param wins), as reasoning models
    want it with max_tokens=null; the larger where both go, since an endpoint may honour either."""
    chosen = {**call.requests[0].rubric.parameters, **settings.parameters}
    caps = (max_tokens_for(call, settings, output), chosen.get("max_completion_tokens"))
    return max((cap for cap in caps if isinstance(cap, int) and not isinstance(cap, bool)), default=None)
