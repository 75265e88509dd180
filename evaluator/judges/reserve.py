"""What a call may cost before it is sent: what --max-cost reserves and a dry run counts. Apart from the
judges themselves, so that the LLM judge reserves by the request it will send (its shape) and the runner and
the dry run count by the same rule without loading the openai SDK."""

from __future__ import annotations

from evaluator.config import JudgeSettings
from evaluator.judges.base import JudgeCall
from evaluator.judges.pricing import estimate_prompt_tokens, token_counter
from evaluator.judges.verdicts import max_tokens_for
from evaluator.models import Usage

UNCAPPED_REPLY_TOKENS = 32_768
"""What --max-cost reserves for a reply sent with no cap (the default cap refused by a reasoning model, or
--param max_tokens=null): such a reply may spend thousands of reasoning tokens, and 32,768 is the output
limit of the common reasoning models' smaller tiers. A reply past it is still charged at its real usage."""


def estimate_call(
    call: JudgeCall, settings: JudgeSettings, output: str | None = None, default_cap: bool = True
) -> Usage:
    """Tokens a call may use, before it is sent, for budgets and dry runs: the completion is counted at the
    cap the call is sent with, so a budget is never exceeded by replies that stay within it, and at
    UNCAPPED_REPLY_TOKENS where it goes with none. `output` is the format in force (default: the chosen
    one), `default_cap` False once the endpoint refused the default cap (RequestShape.cap_refused)."""
    count, _ = token_counter()
    output = output or ("json_schema" if settings.output == "auto" else settings.output)
    cap = reply_cap(call, settings, output, default_cap)
    completion = cap if cap is not None else UNCAPPED_REPLY_TOKENS
    return Usage(prompt_tokens=estimate_prompt_tokens(call.messages, count), completion_tokens=completion)


def reply_cap(call: JudgeCall, settings: JudgeSettings, output: str, default: bool = True) -> int | None:
    """The cap a call's reply is sent with, under either name: max_tokens (see max_tokens_for), or a
    max_completion_tokens chosen by --param or the rubric's `parameters:` (--param wins), as reasoning models
    want it with max_tokens=null; the larger where both go, since an endpoint may honour either. None: the
    reply goes uncapped."""
    chosen = {**call.requests[0].rubric.parameters, **settings.parameters}
    return largest_cap(max_tokens_for(call, settings, output, default), chosen.get("max_completion_tokens"))


def largest_cap(*caps: object) -> int | None:
    """The largest of the reply caps given that are whole numbers (null, absent or mistyped ones do not cap)."""
    return max((cap for cap in caps if isinstance(cap, int) and not isinstance(cap, bool)), default=None)
