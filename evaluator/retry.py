"""One transport retry policy for judge calls: rate limits, timeouts, dropped connections and 5xx are
retried with exponential backoff and jitter, honouring the server's Retry-After; client errors
(400/401/403/404) are not retried, since repeating them only spends time. The openai client's own
retries are switched off so attempts do not multiply."""

from __future__ import annotations

import email.utils
import time
from typing import Callable

import openai
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter
from tenacity.wait import wait_base

RETRYABLE: tuple[type[BaseException], ...] = (
    openai.RateLimitError,
    openai.APITimeoutError,
    openai.APIConnectionError,
    openai.InternalServerError,
    openai.ConflictError,
)


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


def transport_retrying(
    attempts: int, initial: float = 0.5, cap: float = 60.0, on_retry: Callable[[RetryCallState], None] | None = None
) -> AsyncRetrying:
    return AsyncRetrying(
        retry=retry_if_exception_type(RETRYABLE),
        wait=wait_retry_after(wait_exponential_jitter(multiplier=initial, max=cap, jitter=initial), cap),
        stop=stop_after_attempt(attempts),
        before_sleep=on_retry,
        reraise=True,
    )
