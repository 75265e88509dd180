"""The endpoint as the openai client needs it: the base URL taken apart, written without credentials,
and one HTTP client for every call of a run."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import httpx2
import openai

from evaluator.redact import redact_url


@dataclass(frozen=True)
class Endpoint:
    """A base URL taken apart as the client needs it: the SDK appends paths to the base URL as text, so a
    query string (`?api-key=...`) goes out as default query parameters, and user:password as Basic
    authorization, as curl sends them (HTTP clients refuse credentials in the URL beside a bearer key)."""

    base_url: str | None
    headers: dict[str, str] | None = None
    query: dict[str, str] | None = None

    @classmethod
    def parse(cls, url: str | None) -> Endpoint:
        if not url:
            return cls(url)
        parts = urlsplit(url)
        headers = None
        if parts.username is not None or parts.password is not None:
            user, password = unquote(parts.username or ""), unquote(parts.password or "")
            headers = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
        query = dict(parse_qsl(parts.query, keep_blank_values=True)) or None
        base = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2], query="", fragment=""))
        return cls(base, headers, query)


def redacted_url(url: str | None) -> str | None:
    """A base URL as it may be written to a manifest or a message: without credentials."""
    return redact_url(url) if url else url


def http_client() -> Any:
    """aiohttp under the client where installed (about a third less CPU per call than the default),
    keeping every connection alive: the SDK's default keeps 100, so at higher concurrency each call
    beyond them would open a new connection."""
    limits = httpx2.Limits(max_connections=1000, max_keepalive_connections=1000, keepalive_expiry=30)
    try:
        return openai.DefaultAioHttpClient(limits=limits)
    except RuntimeError:
        return openai.DefaultAsyncHttpxClient(limits=limits)
