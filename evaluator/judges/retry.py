"""One transport retry policy for judge calls: rate limits, dropped connections and 5xx are retried
with exponential backoff and jitter, honouring the server's Retry-After; client errors
(400/401/403/404), and 5xx that refuse the request's output format or system message, are not retried,
since repeating them only spends time. A request that timed out is resent at most TIMEOUT_RETRIES
times: a reply slower than the timeout usually means a busy server still generating it, and resending
only queues the same work again behind it (a connection that could not be made is retried like any
other failure: nothing was queued). The openai client's own retries are switched off so attempts do
not multiply."""

from __future__ import annotations

import email.utils
import time
from typing import Callable

import openai
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

RETRYABLE: tuple[type[BaseException], ...] = (
    openai.RateLimitError,
    openai.APITimeoutError,
    openai.APIConnectionError,
    openai.InternalServerError,
    openai.ConflictError,
)
TIMEOUT_RETRIES = 1
FORMAT_WORDS = ("response_format", "json_schema", "json_object", "structured output")
NOT_FORMAT_REFUSALS = (401, 403, 404, 429)
SYSTEM_ROLE_WORDS = (
    "system role not supported",  # Gemma's chat template, as vLLM (400), TGI (422) and llama.cpp (500) pass it on
    "system role is not supported",
    "does not support 'system'",  # OpenAI's o1-mini: "'messages[0].role' does not support 'system' with this model."
    "only user and assistant roles are supported",  # Mistral's first templates
    "roles must alternate user/assistant",  # Mistral and Gemma templates, which read a system message as a user turn
)
"""How endpoints word a chat template's refusal of the system message (vLLM's "System role not supported",
llama.cpp's "Jinja Exception: System role not supported", ...)."""
CONTEXT_WORDS = ("context length", "context window")
"""How endpoints word a request longer than the model's context ("This model's maximum context length is ...")."""


def refuses_output_format(exc: BaseException) -> bool:
    """An error reply that names the output format: the endpoint refuses the format, whatever its status
    (llama-cpp-python's server answers a json_schema request with HTTP 500), so resending cannot help."""
    if not isinstance(exc, openai.APIStatusError) or exc.status_code in NOT_FORMAT_REFUSALS:
        return False
    text = str(exc).lower()
    return any(word in text for word in FORMAT_WORDS)


def refuses_system_role(exc: BaseException) -> bool:
    """An error reply in which the model's chat template refuses a system message, whatever its status: the
    same request can never succeed, so it is not retried; the judge folds the instructions into the user
    message instead (see RequestShape.adapt)."""
    if not isinstance(exc, openai.APIStatusError) or exc.status_code in NOT_FORMAT_REFUSALS:
        return False
    text = str(exc).lower()
    return any(words in text for words in SYSTEM_ROLE_WORDS)


def overflows_context(exc: BaseException) -> bool:
    """A request its prompt and reply cap together make longer than the model's context. vLLM names the
    cap's parameter in this refusal ("'max_tokens' or 'max_completion_tokens' is too large: 464. This model's
    maximum context length is ..."), yet it is this request's own length that is refused, not the parameter."""
    return isinstance(exc, openai.APIStatusError) and any(words in str(exc).lower() for words in CONTEXT_WORDS)


def never_sent(exc: BaseException) -> bool:
    """A request that never reached the server: the connection was refused or not made in time. The
    aiohttp transport reports a refused connection as a connect timeout, so the cause decides, not the
    openai exception class."""
    cause = exc.__cause__
    return isinstance(exc, openai.APIConnectionError) and type(cause).__name__ in ("ConnectError", "ConnectTimeout")


def waited_in_vain(exc: BaseException) -> bool:
    """A request the server got but did not answer in time."""
    return isinstance(exc, openai.APITimeoutError) and not never_sent(exc)


def retryable(exc: BaseException) -> bool:
    return isinstance(exc, RETRYABLE) and not refuses_output_format(exc) and not refuses_system_role(exc)


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms`, then `Retry-After` seconds or date)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


class wait_retry_after(wait_base):
    """The server's Retry-After when it gives one (capped), else the fallback backoff."""

    def __init__(self, fallback: wait_base, cap: float) -> None:
        self.fallback, self.cap = fallback, cap

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        asked = retry_after_seconds(exc)
        return min(asked, self.cap) if asked is not None else self.fallback(retry_state)


class stop_after_timeouts(stop_base):
    """Stop once a request has timed out more than `retries` times, whatever else failed in between.
    It counts what it is shown, so each retry loop needs its own."""

    def __init__(self, retries: int) -> None:
        self.retries, self.seen = retries, 0

    def __call__(self, retry_state: RetryCallState) -> bool:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if exc is not None and waited_in_vain(exc):
            self.seen += 1
        return self.seen > self.retries


def transport_retrying(
    attempts: int, initial: float = 0.5, cap: float = 60.0, on_retry: Callable[[RetryCallState], None] | None = None
) -> AsyncRetrying:
    return AsyncRetrying(
        retry=retry_if_exception(retryable),
        wait=wait_retry_after(wait_exponential_jitter(multiplier=initial, max=cap, jitter=initial), cap),
        stop=stop_any(stop_after_attempt(attempts), stop_after_timeouts(TIMEOUT_RETRIES)),
        before_sleep=on_retry,
        reraise=True,
    )
