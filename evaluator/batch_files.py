"""The files of a batch queue: request lines in, result lines out, in the format of OpenAI's Batch API,
which vLLM's offline `run_batch` reads and writes too.

A request line is `{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}` with the body
the live judge would send. A result line carries the same `custom_id` with `response: {status_code, body}`
or `error: {code, message}`; order is not guaranteed. A provider caps a file at 50,000 requests and
200 MB, so the lines are split to limits given by the caller.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, Literal

import orjson

from evaluator.errors import EvaluatorError

ENDPOINT: Final[Literal["/v1/chat/completions"]] = "/v1/chat/completions"
MAX_REQUESTS = 50_000
MAX_BYTES = 200 * 1000 * 1000
UNANSWERED_CODES = ("batch_expired", "batch_cancelled")
"""Requests the queue never ran (the batch expired or was cancelled first): sent again by the next submit."""


class BatchFileError(EvaluatorError, ValueError):
    """A batch results file that cannot be read; names the file and line."""


@dataclass(frozen=True)
class Limits:
    """How much one uploaded file may hold."""

    requests: int = MAX_REQUESTS
    bytes: int = MAX_BYTES

    def __post_init__(self) -> None:
        if self.requests < 1 or self.bytes < 1:
            raise BatchFileError("batch file limits must be at least 1 request and 1 byte")


def request_line(custom_id: str, body: dict[str, Any]) -> bytes:
    """One line of a request file, newline included."""
    line = {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}
    return orjson.dumps(line, option=orjson.OPT_NON_STR_KEYS) + b"\n"


class Splitter:
    """Where a new file starts, decided line by line as the lines are made, so a run of any size holds
    one file's lines at a time."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.count = 0
        self.size = 0

    def starts_file(self, line: bytes) -> bool:
        """Whether `line` must open a new file (the current one would pass a limit); counts it in."""
        if len(line) > self.limits.bytes:
            raise BatchFileError(
                f"one request is {len(line):,} bytes, more than a batch file may hold ({self.limits.bytes:,}); "
                "judge fewer turns per call (--mode per-criterion) or lower the rubric's context"
            )
        new = self.count > 0 and (self.count >= self.limits.requests or self.size + len(line) > self.limits.bytes)
        if new:
            self.count = self.size = 0
        self.count += 1
        self.size += len(line)
        return new


@dataclass(frozen=True)
class Result:
    """One result line: the reply's raw chat completion, or why there is none."""

    custom_id: str
    reply: str | None
    error: str | None
    unanswered: bool = False
    """The queue never ran it (expired or cancelled first)."""
    status: int | None = None
    """The HTTP status the endpoint refused the request with."""
    param: str | None = None
    """The request parameter the endpoint named in refusing it (OpenAI's `error.param`)."""


def read_results(data: bytes, source: str) -> Iterator[Result]:
    """The result lines of an output or error file (OpenAI or vLLM), in file order."""
    return _results(data.splitlines(), source)


def _results(lines: Iterable[bytes], source: str) -> Iterator[Result]:
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            line = orjson.loads(raw)
            custom_id = line["custom_id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise BatchFileError(
                f"{source}, line {number}: not a batch result line (a JSON object with custom_id); "
                "pass the output file of a batch, e.g. vLLM run_batch's -o file"
            ) from None
        yield _result(str(custom_id), line)


def _result(custom_id: str, line: dict[str, Any]) -> Result:
    error = line.get("error")
    response = line.get("response")
    if error:
        # OpenAI: {code, message} of a request the queue never ran. vLLM's run_batch: the endpoint's error
        # ({"error": {...}} or flat) or its text, beside a response holding only the status.
        detail = error.get("error", error) if isinstance(error, dict) else error
        code = str(detail.get("code") or "") if isinstance(detail, dict) else ""
        said = (detail.get("message") or "no message") if isinstance(detail, dict) else detail
        status = _status(response.get("status_code")) if isinstance(response, dict) else None
        message = f"the batch queue reported {code + ': ' if code else ''}{said}"
        status = status if status != 200 else None
        return Result(custom_id, None, message, code in UNANSWERED_CODES, status=status, param=_param(detail))
    if not isinstance(response, dict):
        return Result(custom_id, None, "the batch result line has neither a response nor an error")
    status = response.get("status_code")
    body = response.get("body")
    if status != 200:
        detail = body.get("error", body) if isinstance(body, dict) else body
        said = detail.get("message", detail) if isinstance(detail, dict) else detail
        return Result(
            custom_id, None, f"the endpoint said {status}: {said}", status=_status(status), param=_param(detail)
        )
    return Result(custom_id, body if isinstance(body, str) else orjson.dumps(body).decode(), None)


def _param(detail: Any) -> str | None:
    param = detail.get("param") if isinstance(detail, dict) else None
    return param if isinstance(param, str) else None


def _status(status: Any) -> int | None:
    return status if isinstance(status, int) and not isinstance(status, bool) else None


def read_results_file(path: Path) -> Iterator[Result]:
    """The result lines of a results file (vLLM run_batch's -o), read a line at a time: a large run's file
    runs to gigabytes. Opened without blocking (a named pipe would hang the open), refused unless regular."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        problem = "no such file; check the path" if isinstance(exc, FileNotFoundError) else exc.strerror or str(exc)
        raise BatchFileError(f"{path}: cannot read the results file: {problem}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BatchFileError(f"{path}: cannot read the results file: not a regular file; name the file run_batch wrote")
    return _file_results(os.fdopen(fd, "rb"), str(path))


def _file_results(handle: IO[bytes], source: str) -> Iterator[Result]:
    with handle:
        yield from _results(handle, source)
