"""Render the messages a judge receives, from sandboxed Jinja templates.

A template is one file with a `system` and a `user` block. Transcript text only ever enters as a
variable's value, never as template source, so `{{ ... }}` or `{% ... %}` written by a patient reaches
the judge verbatim and cannot change the template. The sandbox and StrictUndefined turn a template
typo into an error before any call is made, instead of a silently empty prompt.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, meta
from jinja2.sandbox import SandboxedEnvironment

from evaluator.models import Criterion, Message, Rubric, Transcript, Turn
from evaluator.rubrics import scale_summary

BLOCKS = ("system", "user")
DEFAULT_TEMPLATE = "per_criterion.j2"


class PromptError(ValueError):
    """A template that cannot be rendered; names the template and what to fix."""


def bundled_prompts_dir() -> Path:
    """prompts/ of a source checkout, or the copy packed into the wheel."""
    packed = Path(str(resources.files("evaluator"))) / "_bundled" / "prompts"
    return packed if packed.is_dir() else Path(__file__).resolve().parent.parent / "prompts"


@dataclass(frozen=True)
class Rendered:
    messages: tuple[Message, ...]
    template_hash: str
    prompt_hash: str


class PromptRenderer:
    """One Jinja environment per template folder; templates compile once and are reused for every item."""

    def __init__(self, prompts_dir: Path | None = None) -> None:
        self.prompts_dir = prompts_dir or bundled_prompts_dir()

    @lru_cache(maxsize=None)
    def _environment(self, rubric_dir: Path) -> SandboxedEnvironment:
        return SandboxedEnvironment(
            loader=FileSystemLoader([str(rubric_dir), str(self.prompts_dir)]),
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def template_name(self, rubric: Rubric) -> str:
        return rubric.template or DEFAULT_TEMPLATE

    @lru_cache(maxsize=None)
    def template_hash(self, rubric_dir: Path, name: str) -> str:
        """Hash of the template and every template it includes, so any edit to the prompt shows."""
        env = self._environment(rubric_dir)
        pending, seen, sources = [name], set(), []
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            try:
                source, _, _ = env.loader.get_source(env, current)  # type: ignore[union-attr]
            except TemplateError as exc:
                raise PromptError(f"template {current!r} not found in {rubric_dir} or {self.prompts_dir}: {exc}") from None
            sources.append(f"{current}\n{source}")
            pending += [t for t in meta.find_referenced_templates(env.parse(source)) if t]
        return hashlib.sha256("\n\0".join(sorted(sources)).encode()).hexdigest()[:16]

    def template_hash_for(self, rubric: Rubric) -> str:
        return self.template_hash(self._rubric_dir(rubric), self.template_name(rubric))

    def _rubric_dir(self, rubric: Rubric) -> Path:
        return Path(rubric.source).parent if rubric.source else self.prompts_dir

    def render(self, rubric: Rubric, criterion: Criterion, transcript: Transcript, turn: Turn) -> Rendered:
        rubric_dir = self._rubric_dir(rubric)
        name = self.template_name(rubric)
        env = self._environment(rubric_dir)
        try:
            template = env.get_template(name)
            missing = [b for b in BLOCKS if b not in template.blocks]
            if missing:
                raise PromptError(
                    f"template {name!r} must define {{% block system %}} and {{% block user %}}; missing: {missing}"
                )
            context = template.new_context(template_variables(rubric, criterion, transcript, turn))
            contents = {b: "".join(template.blocks[b](context)).strip() for b in BLOCKS}
        except PromptError:
            raise
        except TemplateError as exc:
            where = f", line {exc.lineno}" if getattr(exc, "lineno", None) else ""
            raise PromptError(f"template {name!r}{where}: {exc.message or exc}") from None
        messages = tuple(Message(role=b, content=contents[b]) for b in BLOCKS)  # type: ignore[arg-type]
        prompt_hash = hashlib.sha256("\0".join(m.content for m in messages).encode()).hexdigest()[:16]
        return Rendered(messages, self.template_hash(rubric_dir, name), prompt_hash)


def context_window(rubric: Rubric, transcript: Transcript, turn: Turn) -> tuple[list[Turn], list[Turn]]:
    """The turns the judge sees before and after the rated one; by default nothing after it, so no
    rating leaks from the patient's later reaction unless the rubric asks for it."""
    before = rubric.context.before
    start = 0 if before is None else max(0, turn.index - before)
    after = transcript.turns[turn.index + 1 : turn.index + 1 + rubric.context.after]
    return transcript.turns[start : turn.index], after


def template_variables(rubric: Rubric, criterion: Criterion, transcript: Transcript, turn: Turn) -> dict[str, Any]:
    """The variables every template may use (documented in the README)."""
    before, after = context_window(rubric, transcript, turn)
    criterion_vars = criterion.model_dump(mode="json", by_alias=True)
    criterion_vars["scale_summary"] = scale_summary(criterion)
    return {
        "rubric": rubric.model_dump(mode="json", by_alias=True, exclude={"criteria"}),
        "criterion": criterion_vars,
        "criteria": [c.model_dump(mode="json", by_alias=True) for c in rubric.criteria],
        "scale": criterion_vars["scale"],
        "examples": criterion_vars["examples"],
        "transcript": {"id": transcript.id, "metadata": transcript.metadata},
        "turns": [t.model_dump(mode="json") for t in transcript.turns],
        "context_before": [t.model_dump(mode="json") for t in before],
        "turn": turn.model_dump(mode="json"),
        "context_after": [t.model_dump(mode="json") for t in after],
    }
