"""Choose and configure the judge for a run: an LLM when one is configured, else the offline rules
judge, said once. Settings come from flags first, then the environment."""

from __future__ import annotations

from rich.console import Console

from evaluator.config import DEFAULT_MODEL, JudgeSettings
from evaluator.judges.base import Judge
from evaluator.judges.pricing import DEFAULT_PRICES, Price, load_prices, price_for
from evaluator.judges.rules import RulesJudge

__all__ = ["judge_price", "make_judge"]

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
