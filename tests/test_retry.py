"""Retry-After is read the ways servers send it."""

from __future__ import annotations

import email.utils
import time

import httpx2
import openai

from evaluator.retry import retry_after_seconds


def _rate_limited(headers: dict[str, str]) -> openai.RateLimitError:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx2.Response(429, headers=headers, request=request)
    return openai.RateLimitError("slow down", response=response, body=None)


def test_milliseconds_win_then_seconds_then_an_http_date() -> None:
    assert retry_after_seconds(_rate_limited({"retry-after-ms": "250", "retry-after": "9"})) == 0.25
    assert retry_after_seconds(_rate_limited({"retry-after": "2"})) == 2.0
    in_ten = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8 <= retry_after_seconds(_rate_limited({"retry-after": in_ten})) <= 10
    assert retry_after_seconds(_rate_limited({})) is None
    assert retry_after_seconds(openai.APIConnectionError(request=httpx2.Request("GET", "http://x"))) is None
