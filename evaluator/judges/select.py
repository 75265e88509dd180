"""Choose and configure the judge for a run: an LLM when one is configured, else the offline rules
judge, said once. Settings come from flags first, then the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rich.console import Console

from evaluator.judges.base import Judge, JudgeCall, JudgeConfigError
from evaluator.judges.cache import DEFAULT_CACHE
from evaluator.judges.pricing import (
    DEFAULT_PRICES,
    Price,
    estimate_prompt_tokens,
    load_prices,
    price_for,
    token_counter,
)
from evaluator.judges.rules import RulesJudge
from evaluator.judges.verdicts import reply_token_budget
from evaluator.models import Usage
from evaluator.redact import Redactor, api_key_env_problem

__all__ = ["JudgeConfigError", "JudgeSettings", "estimate_call", "judge_price", "make_judge", "max_tokens_for"]

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
    backoff_s: float = 0.5
    """The first wait before a transport retry; later waits double, up to a minute."""
    logprobs: bool = False
    top_logprobs: int = 5
    rpm: float | None = None
    tpm: float | None = None
    cache_path: Path | None = DEFAULT_CACHE
    prices_file: Path | None = None
    http_client: Any = None
    """A custom httpx2.AsyncClient (proxies, a private CA, an in-process transport); default: aiohttp."""

    def __post_init__(self) -> None:
        problem = api_key_env_problem(self.api_key_env)
        if problem is not None:
            raise JudgeConfigError(problem)

    def resolved_base_url(self) -> str | None:
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or None

    def redactor(self) -> Redactor:
        """Masks this configuration's secrets (the key, credentials in the base URL) in any text."""
        return Redactor.for_endpoint(self.api_key(), self.resolved_base_url())

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


def max_tokens_for(call: JudgeCall, settings: JudgeSettings, output: str, default: bool = True) -> int | None:
    """The reply cap a call is sent with: --param max_tokens, else the rubric's `parameters`, else
    --max-tokens, else (when `default`) a budget sized to the verdicts the reply holds. A null leaves it out."""
    for parameters in (settings.parameters, call.requests[0].rubric.parameters):
        if "max_tokens" in parameters:
            return parameters["max_tokens"]
    if settings.max_tokens is not None:
        return settings.max_tokens
    return reply_token_budget(len(call.requests), output) if default else None


def estimate_call(call: JudgeCall, settings: JudgeSettings) -> Usage:
    """Tokens a call may use, before it is sent, for budgets and dry runs: the completion is counted at the
    cap the call is sent with, so a budget is never exceeded by replies that stay within it."""
    count, _ = token_counter()
    output = "json_schema" if settings.output == "auto" else settings.output
    cap = max_tokens_for(call, settings, output)
    completion = cap if isinstance(cap, int) else reply_token_budget(len(call.requests), output)
    return Usage(prompt_tokens=estimate_prompt_tokens(call.messages, count), completion_tokens=completion)
