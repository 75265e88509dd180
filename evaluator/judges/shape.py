"""What an endpoint has shown it accepts, and the request bodies made to fit it.

Endpoints differ in what they take: some refuse strict JSON schema (or a schema too large for their
strict mode), the default reply cap (reasoning models want max_completion_tokens), a seed, or a system
message (chat templates without a system role: Gemma's, Mistral's first ones). The judge
learns this from refusals, once, and every later body is built to fit; a parameter the user chose and
the endpoint refuses is never dropped quietly but stops the run with what to change.
"""

from __future__ import annotations

import json
from typing import Any, Callable, NoReturn

import openai

from evaluator.config import JudgeSettings, OutputMode
from evaluator.judges.base import JudgeCall, JudgeFatalError
from evaluator.judges.replies import Layout
from evaluator.judges.reserve import largest_cap
from evaluator.judges.retry import overflows_context, refuses_output_format, refuses_system_role
from evaluator.judges.verdicts import max_tokens_for, response_format

REFUSED_PARAMETER_HINT = (
    "change it with --temperature, --seed, --max-tokens or --param NAME=VALUE (or the rubric's `parameters:`); "
    "NAME=null leaves it out of the request"
)
REFUSED_PARAMETER_HINTS = {
    "response_format": "use --output-format auto to step down to what the endpoint accepts, or choose json_object or text",
    "max_tokens": (
        "change it with --max-tokens or --param max_tokens=N, or leave it out with --param max_tokens=null; an "
        "endpoint that wants the cap as max_completion_tokens (reasoning models) takes "
        "--param max_completion_tokens=N --param max_tokens=null"
    ),
}
DEFAULT_SEED = JudgeSettings.seed
"""A seed the user did not choose: an endpoint that refuses seeds gets requests without one."""
SCHEMA_REFUSED = "invalid schema"
"""How endpoints begin the refusal of a reply schema itself ("Invalid schema for response_format 'x': In
context=..."), as opposed to a refusal of the json_schema format."""
FALLBACKS: dict[str, OutputMode] = {"json_schema": "json_object", "json_object": "text"}
SYSTEM_ROLE_HINT = (
    "serve the model with a chat template that takes a system message, or at least alternating user and "
    "assistant turns (vLLM: --chat-template FILE; llama-server: --jinja --chat-template-file FILE), or choose "
    "another model"
)


class RequestShape:
    """The request body as this endpoint takes it: the output format in force (auto mode steps it down
    as formats are refused), and whether the default reply cap, the default seed, the system role or a
    strict schema of some layout was refused."""

    def __init__(self, settings: JudgeSettings, model: str, redact: Callable[[str], str]) -> None:
        self.settings, self.model, self._redact = settings, model, redact
        self.output: OutputMode = "json_schema" if settings.output == "auto" else settings.output
        self.cap_refused = False
        self.seed_refused = False
        self.system_folded = False
        """The endpoint refused a system message: the instructions go folded into the first user message."""
        self._loose: set[tuple[Any, ...]] = set()
        """Layouts whose strict schema the endpoint refused: they go with strict false."""

    def body(
        self, call: JudgeCall, conversation: list[dict[str, Any]], layout: Layout, sample: int, output: OutputMode
    ) -> dict[str, Any]:
        s = self.settings
        messages = conversation
        if output != "json_schema":
            schema_text = json.dumps(layout.schema, indent=1)
            system = dict(messages[0])
            system["content"] += f"\n\nThe JSON object must match this JSON schema:\n```json\n{schema_text}\n```"
            messages = [system, *messages[1:]]
        if self.system_folded:
            messages = fold_system(messages)
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": s.temperature}
        if s.seed is not None and not self.seed_refused:
            body["seed"] = s.seed + sample
        body["max_tokens"] = max_tokens_for(call, s, output, default=not self.cap_refused)
        if output == "json_schema":
            name = f"{call.mode.replace('-', '_')}_verdict"
            body["response_format"] = response_format(name, layout.schema, self.strict(call, layout))
        elif output == "json_object":
            body["response_format"] = {"type": "json_object"}
        if s.logprobs and call.mode == "per-criterion":
            body["logprobs"] = True
            body["top_logprobs"] = s.top_logprobs
        body.update(call.requests[0].rubric.parameters)
        body.update(s.parameters)
        return {name: value for name, value in body.items() if value is not None}  # null: do not send

    def strict(self, call: JudgeCall, layout: Layout) -> bool:
        """Whether a call's schema goes as strict: unless it is too large for strict mode, or was refused."""
        return layout.strict and (not self._loose or Layout.key(call) not in self._loose)

    def parameters(
        self, call: JudgeCall, layout: Layout, output: OutputMode, max_tokens: int | None, system_role: bool = True
    ) -> dict[str, Any]:
        """The parameters a request went out with, for its judgments; `strict: false` only where its schema
        went without strict, `system_role: false` only where its instructions went folded into the user
        message."""
        s = self.settings
        parameters = {
            "temperature": s.temperature,
            "seed": None if self.seed_refused else s.seed,
            **s.parameters,
            "max_tokens": max_tokens,
            "output": output,
        }
        if output == "json_schema" and not self.strict(call, layout):
            parameters["strict"] = False
        if not system_role:
            parameters["system_role"] = False
        return parameters

    def adapt(self, exc: openai.APIStatusError, call: JudgeCall, body: dict[str, Any], output: OutputMode) -> bool:
        """True when the next request can avoid what the endpoint refused: a strict schema (sent again
        without strict, keeping json_schema: the format works, this schema is beyond the endpoint's strict
        mode), an output format (auto mode steps down, once per mode, only from the mode in force), the
        default reply cap (left out: reasoning models refuse max_tokens, and their max_completion_tokens
        counts reasoning too, so the verdict budget would cut every reply off) or the default seed (left
        out: it only asks for best-effort determinism). A parameter chosen by the user and refused stops
        the run; so does the default temperature 0, since leaving it out would sample every verdict at the
        endpoint's own temperature (--param temperature=null does that when asked). A refused system message
        folds the instructions into the first user message from then on; refused so too, the run stops."""
        if refuses_system_role(exc):
            return self._system_role_refused(exc, body)
        if self._strict_schema_refused(exc, call, body):
            return True
        if "response_format" in body and refuses_output_format(exc):
            if self.settings.output == "auto" and output in FALLBACKS:
                if self.output == output:
                    self.output = FALLBACKS[output]
                return True
            self._refused_parameter(exc, "response_format")
        if not isinstance(exc, (openai.BadRequestError, openai.UnprocessableEntityError)) or overflows_context(exc):
            return False  # a request too long for the model's context fails alone, whichever parameter it names
        if exc.param == "max_tokens" and max_tokens_for(call, self.settings, output, default=False) is None:
            self.cap_refused = True
            return True
        if exc.param == "seed" and self.seed_is_default(call):
            self.seed_refused = True
            return True
        if isinstance(exc.param, str) and exc.param in body and exc.param != "messages":
            self._refused_parameter(exc, exc.param)
        return False

    def _strict_schema_refused(self, exc: openai.APIStatusError, call: JudgeCall, body: dict[str, Any]) -> bool:
        """A strict schema the endpoint refused as a schema: noted, so the call's layout goes without strict.
        Refused again without strict, the refusal is read as any other (auto mode steps down)."""
        schema = body.get("response_format", {}).get("json_schema", {})
        refused = isinstance(exc, (openai.BadRequestError, openai.UnprocessableEntityError))
        if not refused or not schema.get("strict") or SCHEMA_REFUSED not in exc.message.lower():
            return False
        self._loose.add(Layout.key(call))
        return True

    def _system_role_refused(self, exc: openai.APIStatusError, body: dict[str, Any]) -> bool:
        """A conversation the endpoint's chat template refused: sent again folded if it had a system message
        (a call built before another call's refusal was noted has one too); refused folded, the run stops."""
        if any(message["role"] == "system" for message in body["messages"]):
            self.system_folded = True
            return True
        answer = " ".join(self._redact(exc.message).split())
        raise JudgeFatalError(
            f"the judge endpoint refused the conversation even with the instructions folded into the first user "
            f"message (it had refused a system message before): {answer}; {SYSTEM_ROLE_HINT}"
        ) from None

    def seed_is_default(self, call: JudgeCall) -> bool:
        """Whether the call's seed is one the user did not choose, and so may be left out when refused."""
        s = self.settings
        chosen = ("seed" in s.parameters) or ("seed" in call.requests[0].rubric.parameters)
        return not chosen and s.seed == DEFAULT_SEED

    def _refused_parameter(self, exc: openai.APIStatusError, name: str) -> NoReturn:
        raise JudgeFatalError(
            f"the judge endpoint refused the parameter {name!r} that every call sends: "
            f"{self._redact(exc.message)}; {REFUSED_PARAMETER_HINTS.get(name, REFUSED_PARAMETER_HINT)}"
        ) from None


def fold_system(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation without its system message, for a chat template that has no system role: the
    instructions open the first user message, delimited from it, so what calls share still comes first in
    the prompt (prefix caching) and re-asks keep alternating user and assistant turns."""
    if not messages or messages[0]["role"] != "system":
        return messages
    system, rest = messages[0], messages[1:]
    instructions = f"<instructions>\n{system['content']}\n</instructions>"
    if rest and rest[0]["role"] == "user":
        return [{"role": "user", "content": f"{instructions}\n\n{rest[0]['content']}"}, *rest[1:]]
    return [{"role": "user", "content": instructions}, *rest]


def sent_cap(body: dict[str, Any]) -> int | None:
    """The most reply tokens a request body allows, under either name of the cap (max_tokens, or
    max_completion_tokens as reasoning models want it); None when it sends neither."""
    return largest_cap(body.get("max_tokens"), body.get("max_completion_tokens"))
