"""Choose and configure the judge for a run: an LLM when one is configured, else the offline rules
judge, said once. Settings come from flags first, then the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rich.console import Console

from evaluator.cache import DEFAULT_CACHE
from evaluator.cost import DEFAULT_PRICES, Price, estimate_prompt_tokens, load_prices, price_for, token_counter
from evaluator.judges.base import Judge, JudgeCall, JudgeConfigError
from evaluator.judges.rules import RulesJudge
from evaluator.models import Usage

__all__ = ["JudgeConfigError", "JudgeSettings", "estimate_call", "judge_price", "make_judge"]

JudgeKind = Literal["auto", "rules", "openai"]
OutputMode = Literal["auto", "json_schema", "json_object", "text"]


@dataclass
class JudgeSettings:
    """Everything that configures a judge. The API key itself is never stored here, only the name of
    the environment variable that holds it, so no settings object can leak it."""

    kind: JudgeKind = "auto"
    model: str | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.0
    seed: int | None = 0
    max_tokens: int | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    output: OutputMode = "auto"
    content_attempts: int = 3
    transport_attempts: int = 6
    timeout_s: float = 120.0
    logprobs: bool = False
    top_logprobs: int = 5
    rpm: float | None = None
    tpm: float | None = None
    cache_path: Path | None = DEFAULT_CACHE
    prices_file: Path | None = None
    http_client: Any = None
    """A custom httpx2.AsyncClient (proxies, a private CA, an in-process transport); default: aiohttp."""

    def resolved_base_url(self) -> str | None:
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or None

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None

    def llm_configured(self) -> bool:
        """An LLM is configured when a model, a base URL or a key is given, by flag or environment."""
        return bool(self.model or self.resolved_base_url() or self.api_key())

    def uses_llm(self) -> bool:
        return self.kind == "openai" or (self.kind == "auto" and self.llm_configured())


OFFLINE_NOTICE = (
    "No LLM judge configured (set OPENAI_API_KEY, or pass --base-url/--model): using the offline rules judge. "
    "Criteria without a rule check are recorded as unscored."
)
DEFAULT_MODEL = "gpt-4o-mini"


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
    """Tokens a call is expected to use, before it is sent: for budgets and dry runs."""
    count, _ = token_counter()
    completion = settings.max_tokens or 150 * len(call.requests)
    return Usage(prompt_tokens=estimate_prompt_tokens(call.messages, count), completion_tokens=completion)
