"""What configures a run and its judge, validated in one place: the command line takes its defaults and
choices from here, so `evaluator run` and `evaluator.run()` cannot drift apart. Importing it builds no
pydantic model (they take most of a --help's time): the models and the reader load with the first RunConfig.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Sequence, get_args

from evaluator.errors import EvaluatorError
from evaluator.redact import Redactor, api_key_env_problem

if TYPE_CHECKING:
    from evaluator.models import AggregateMethod, JudgeMode, Subset
    from evaluator.reading import ReadOptions

DEFAULT_CACHE = Path(".cache") / "responses.sqlite"
DEFAULT_MODEL = "gpt-4o-mini"


class JudgeConfigError(EvaluatorError, ValueError):
    """A judge configuration that cannot work; says what to set."""


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


def _default_read_options() -> ReadOptions:
    from evaluator.reading import ReadOptions  # here, not at the top: it imports the pydantic models

    return ReadOptions()


@dataclass
class RunConfig:
    transcripts: Sequence[Path] = (Path("transcripts"),)
    rubrics: Sequence[Path] = (Path("rubrics"),)
    output: Path = Path("results")
    judge: JudgeSettings = field(default_factory=JudgeSettings)
    read_options: ReadOptions = field(default_factory=_default_read_options)
    prompts_dir: Path | None = None
    mode: JudgeMode = "per-criterion"
    concurrency: int = 8
    samples: int = 1
    aggregate: AggregateMethod = "auto"
    max_cost: float | None = None
    run_id: str | None = None
    resume: Path | None = None
    retry_failed: bool = False
    command: Sequence[str] = ()
    show_progress: bool = True
    subset: Subset | None = None
    """Judge only part of the plan (see evaluator.plan.select_plans); recorded in the manifest."""
    write_report: bool = True
    """Write report.html beside summary.md (summary.md is always written)."""
    unblind: bool = False
    """Let judge prompts carry transcript ids, file names and metadata; recorded in the manifest."""

    def __post_init__(self) -> None:
        # Either switch unblinds: the reader marks each transcript, so every path that renders a prompt honours it.
        if self.unblind != self.read_options.unblind:
            self.unblind = True
            self.read_options = replace(self.read_options, unblind=True)
        metadata = self.read_options.metadata
        if metadata.path_pattern and not metadata.roots:  # paths are read below the folders named
            self.read_options = replace(self.read_options, metadata=replace(metadata, roots=tuple(self.transcripts)))


JUDGE_KINDS: tuple[JudgeKind, ...] = get_args(JudgeKind)
OUTPUT_MODES: tuple[OutputMode, ...] = get_args(OutputMode)
MODES: tuple[JudgeMode, ...] = ("per-criterion", "per-turn", "per-transcript")
"""models.JudgeMode's values, spelled out so the parser's choices need no pydantic (a test keeps them equal)."""
AGGREGATE_METHODS: tuple[AggregateMethod, ...] = ("auto", "mean", "median", "majority")
"""models.AggregateMethod's values, likewise."""
