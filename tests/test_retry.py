"""Retry-After is read the ways servers send it."""

from __future__ import annotations

import email.utils
import time

import httpx2
import openai

from evaluator.judges.retry import refuses_output_format, refuses_system_role, retry_after_seconds, retryable


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


def _status_error(cls: type[openai.APIStatusError], status: int, message: str) -> openai.APIStatusError:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx2.Response(status, request=request)
    return cls(message, response=response, body={"message": message})


def test_a_server_error_naming_the_output_format_is_a_refusal_and_not_retried() -> None:
    """llama-cpp-python's server answers a json_schema request with HTTP 500."""
    refusal = _status_error(
        openai.InternalServerError, 500, 'response_format type must be one of "text" or "json_object", got json_schema'
    )
    outage = _status_error(openai.InternalServerError, 500, "The server had an error")
    limited = _status_error(openai.RateLimitError, 429, "Rate limit for json_schema requests reached")
    assert refuses_output_format(refusal) and not retryable(refusal)
    assert not refuses_output_format(outage) and retryable(outage)
    assert not refuses_output_format(limited) and retryable(limited)


def test_a_chat_template_refusing_the_system_role_is_recognised_whatever_the_status() -> None:
    """As vLLM (400), TGI (422), llama-server (500, the template's Jinja exception) and OpenAI's o1-mini word it;
    a 500 of that kind is not retried, since the same request can never succeed."""
    refusals = [
        _status_error(openai.BadRequestError, 400, "System role not supported"),
        _status_error(openai.UnprocessableEntityError, 422, "Template error: System role not supported"),
        _status_error(
            openai.InternalServerError,
            500,
            "While executing CallExpression\nError: Jinja Exception: System role not supported",
        ),
        _status_error(
            openai.BadRequestError,
            400,
            "Unsupported value: 'messages[0].role' does not support 'system' with this model.",
        ),
        _status_error(
            openai.BadRequestError, 400, "Conversation roles must alternate user/assistant/user/assistant/..."
        ),
    ]
    assert all(refuses_system_role(r) for r in refusals)
    assert not retryable(refusals[2])
    others = [
        _status_error(openai.InternalServerError, 500, "The server had an error"),
        _status_error(openai.RateLimitError, 429, "System role not supported"),
        _status_error(openai.BadRequestError, 400, "This model's maximum context length is 8192 tokens."),
    ]
    assert not any(refuses_system_role(o) for o in others) and retryable(others[0])
