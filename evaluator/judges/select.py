"""Choose the judge for a run: an LLM when one is configured, else the offline rules judge, said once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from rich.console import Console

from evaluator.judges.base import Judge
from evaluator.judges.rules import RulesJudge

JudgeKind = Literal["auto", "rules", "openai"]


class JudgeConfigError(ValueError):
    """A judge configuration that cannot work; says what to set."""


@dataclass
class JudgeSettings:
    kind: JudgeKind = "auto"
    model: str | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"

    def llm_configured(self) -> bool:
        """An LLM is configured when a model, a base URL or a key is given, by flag or environment."""
        return bool(self.model or self.base_url or os.environ.get("OPENAI_BASE_URL") or os.environ.get(self.api_key_env))


OFFLINE_NOTICE = (
    "No LLM judge configured (set OPENAI_API_KEY, or pass --base-url/--model): using the offline rules judge. "
    "Criteria without a rule check are recorded as unscored."
)


def make_judge(settings: JudgeSettings, console: Console) -> Judge:
    if settings.kind == "rules" or (settings.kind == "auto" and not settings.llm_configured()):
        if settings.kind == "auto":
            console.print(f"[yellow]{OFFLINE_NOTICE}[/yellow]", highlight=False)
        return RulesJudge()
    raise JudgeConfigError(
        "the LLM judge is not available in this version of therapist-evaluator; run with --judge rules"
    )
