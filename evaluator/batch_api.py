"""The provider's batch queue through the openai client: upload a request file, create a batch over it,
look it up, cancel it, download its result files. Nothing here decides what to send or what a reply
means (evaluator.batch_plan and batch_replies do); errors come back as BatchApiError with what to fix, never with the key."""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import openai

from evaluator.batch_files import ENDPOINT
from evaluator.errors import EvaluatorError
from evaluator.redact import Redactor

COMPLETION_WINDOW: Final[Literal["24h"]] = "24h"
CLIENT_RETRIES = 3
"""The judge's client retries nothing itself (tenacity does, per call); these few requests use the SDK's
own retries on 429, 5xx and dropped connections."""

T = TypeVar("T")


class BatchApiError(EvaluatorError, RuntimeError):
    """The batch endpoint refused or failed a request; the message says which and what to do."""


class BatchQueue:
    """The files and batches endpoints of one OpenAI-compatible base URL."""

    def __init__(self, client: openai.AsyncOpenAI, redact: Redactor) -> None:
        self.client = client.with_options(max_retries=CLIENT_RETRIES)
        self.redact = redact

    async def _call(self, what: str, request: Awaitable[T]) -> T:
        try:
            return await request
        except openai.NotFoundError as exc:
            raise BatchApiError(
                f"{what}: the endpoint said 404 ({self.redact(exc.message)}); check --base-url: the endpoint must "
                "offer OpenAI's /v1/files and /v1/batches (a vLLM server does not: use `evaluator batch export` "
                "and vLLM's run_batch instead)"
            ) from None
        except openai.APIStatusError as exc:
            if exc.status_code == 413:
                raise BatchApiError(
                    f"{what}: the endpoint said 413, the file is larger than it accepts; submit again with a "
                    "lower --max-file-mb (or --max-requests): the requests recorded so far are kept"
                ) from None
            raise BatchApiError(f"{what}: the endpoint said {exc.status_code}: {self.redact(exc.message)}") from None
        except openai.APIConnectionError as exc:
            raise BatchApiError(
                f"{what}: no answer from the endpoint ({self.redact(str(exc.__cause__ or exc))}); check that it is "
                "reachable, then run the same command again: what was recorded is kept"
            ) from None

    async def upload(self, name: str, path: Path) -> str:
        """The file id of a request file uploaded for batch use under `name`, sent from the open file as it
        is read (a file may be 200 MB)."""
        with path.open("rb") as handle:
            uploaded = await self._call(
                f"uploading {name}", self.client.files.create(file=(name, handle, "application/jsonl"), purpose="batch")
            )
        return uploaded.id

    async def create(self, input_file_id: str, metadata: dict[str, str]) -> Any:
        return await self._call(
            f"creating a batch over {input_file_id}",
            self.client.batches.create(
                input_file_id=input_file_id,
                endpoint=ENDPOINT,
                completion_window=COMPLETION_WINDOW,
                metadata=metadata,
            ),
        )

    async def find(self, input_file_id: str) -> Any | None:
        """The batch made over an uploaded file, if one was (a submit stopped between creating and recording)."""
        page = await self._call("listing batches", self.client.batches.list(limit=100))
        return next((b for b in page.data if b.input_file_id == input_file_id), None)

    async def retrieve(self, batch_id: str) -> Any:
        return await self._call(f"looking up batch {batch_id}", self.client.batches.retrieve(batch_id))

    async def cancel(self, batch_id: str) -> Any:
        return await self._call(f"cancelling batch {batch_id}", self.client.batches.cancel(batch_id))

    async def download(self, file_id: str) -> bytes:
        content = await self._call(f"downloading file {file_id}", self.client.files.content(file_id))
        return content.content
