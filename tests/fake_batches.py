"""OpenAI's files and batches endpoints on the fake server (tests/fake_openai.py), for the batch path.

A batch's lines are answered by the very logic that answers /v1/chat/completions (the server's script,
chooser and faults, one request count), so a batch reply equals the live reply to the same body. The
test drives time: every retrieve moves a batch one step (validating -> in_progress -> finalizing ->
completed), and

    server.batches.lines_per_step = 1        # lines run per retrieve while in progress (None: all at once)
    server.batches.expire_after = {0: 2}     # batch 0 (creation order) runs 2 lines, then expires
    server.batches.fail_create = 1           # the next create is refused (a submit stopped half way)
    server.batches.refuse = {0}              # batch 0 fails validation, as a batch with a bad line does
    server.batches.strict = {0}              # batch 0's json_schema lines get a 400 (True: every batch's)
    server.batches.refuse_seed = {0}         # batch 0's lines with a seed get a 400 naming it (True: every batch's)
    server.batches.refuse_template = {1}     # batch 1's lines get vLLM's 400 "System role not supported", folded or not

A cancelled batch keeps the lines it ran; an expired one lists the rest in its error file as
`batch_expired`; a line the server refuses (429, 500, 400) goes to the error file with its status. A
`strict` batch refuses response_format json_schema as an endpoint without structured outputs does (400,
param response_format), while its json_object and text lines are answered as usual.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from tests.fake_openai import FakeOpenAI

ENDPOINT = "/v1/chat/completions"
NO_SEED = {
    "error": {
        "message": "Unsupported parameter: 'seed' is not supported with this model.",
        "type": "invalid_request_error",
        "param": "seed",
        "code": "unsupported_parameter",
    }
}
NO_JSON_SCHEMA = {
    "error": {
        "message": "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.",
        "type": "invalid_request_error",
        "param": "response_format",
        "code": None,
    }
}
NO_SYSTEM_ROLE = {
    "error": {"message": "System role not supported", "type": "BadRequestError", "param": None, "code": 400}
}
"""A chat template's refusal of the system role as vLLM answers it (tests/fake_openai._template_error)."""


class FakeBatches:
    def __init__(self, server: FakeOpenAI) -> None:
        self.server = server
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.headers: list[dict[str, str]] = []
        """Headers of every files/batches request, lower-cased (the key must reach the server, and go no further)."""
        self.lines_per_step: int | None = None
        self.expire_after: dict[int, int] = {}
        self.fail_create = 0
        self.refuse: set[int] = set()
        self.strict: set[int] | bool = False
        self.refuse_seed: set[int] | bool = False
        self.refuse_template: set[int] | bool = False
        self._lines: dict[str, list[dict[str, Any]]] = {}
        self._results: dict[str, list[tuple[dict[str, Any], int, Any]]] = {}
        self._problems: dict[str, list[dict[str, Any]]] = {}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files/{id}", self._file)
        app.router.add_get("/v1/files/{id}/content", self._content)
        app.router.add_post("/v1/batches", self._create)
        app.router.add_get("/v1/batches", self._list)
        app.router.add_get("/v1/batches/{id}", self._retrieve)
        app.router.add_post("/v1/batches/{id}/cancel", self._cancel)

    # files

    def _store(self, name: str, content: bytes, purpose: str) -> dict[str, Any]:
        file_id = f"file-{len(self.files) + 1:04d}"
        entry = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": name,
            "purpose": purpose,
            "status": "processed",
        }
        self.files[file_id], self.contents[file_id] = entry, content
        return entry

    def _seen(self, request: web.Request) -> None:
        self.headers.append({k.lower(): v for k, v in request.headers.items()})

    async def _upload(self, request: web.Request) -> web.Response:
        from tests.fake_openai import _error

        self._seen(request)
        form = await request.post()
        upload, purpose = form.get("file"), form.get("purpose")
        if not isinstance(upload, web.FileField) or purpose != "batch":
            return _error(400, "Expected a multipart 'file' and purpose 'batch'.", "invalid_request_error", "file")
        return web.json_response(self._store(upload.filename, upload.file.read(), "batch"))

    async def _file(self, request: web.Request) -> web.Response:
        from tests.fake_openai import _error

        entry = self.files.get(request.match_info["id"])
        return web.json_response(entry) if entry else _error(404, "No such file.", "invalid_request_error")

    async def _content(self, request: web.Request) -> web.Response:
        from tests.fake_openai import _error

        self._seen(request)
        content = self.contents.get(request.match_info["id"])
        if content is None:
            return _error(404, "No such file.", "invalid_request_error")
        return web.Response(body=content, content_type="application/octet-stream")

    # batches

    async def _create(self, request: web.Request) -> web.Response:
        from tests.fake_openai import _error

        self._seen(request)
        body = await request.json()
        if self.fail_create:
            self.fail_create -= 1
            return _error(400, "The batch could not be created (scripted).", "invalid_request_error")
        file_id = body.get("input_file_id")
        if file_id not in self.files:
            return _error(400, f"No such file: {file_id}.", "invalid_request_error", "input_file_id")
        if body.get("endpoint") != ENDPOINT or body.get("completion_window") != "24h":
            return _error(400, "endpoint and completion_window must be set.", "invalid_request_error")
        batch_id = f"batch_{len(self.batches):04d}"
        lines, problems = _read_lines(self.contents[file_id])
        self._lines[batch_id], self._problems[batch_id], self._results[batch_id] = lines, problems, []
        self.batches[batch_id] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": ENDPOINT,
            "errors": None,
            "input_file_id": file_id,
            "completion_window": "24h",
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": int(time.time()),
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
            "ordinal": len(self.batches),
        }
        return web.json_response(self._public(batch_id))

    def _public(self, batch_id: str) -> dict[str, Any]:
        return {k: v for k, v in self.batches[batch_id].items() if k != "ordinal"}

    async def _list(self, request: web.Request) -> web.Response:
        self._seen(request)
        data = [self._public(b) for b in reversed(self.batches)]
        return web.json_response({"object": "list", "data": data, "has_more": False})

    async def _retrieve(self, request: web.Request) -> web.Response:
        from tests.fake_openai import _error

        self._seen(request)
        batch_id = request.match_info["id"]
        if batch_id not in self.batches:
            return _error(404, f"No batch {batch_id}.", "invalid_request_error")
        self._advance(batch_id)
        return web.json_response(self._public(batch_id))

    async def _cancel(self, request: web.Request) -> web.Response:
        from tests.fake_openai import _error

        self._seen(request)
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return _error(404, "No such batch.", "invalid_request_error")
        if batch["status"] in ("validating", "in_progress", "finalizing"):
            batch["status"] = "cancelling"
        return web.json_response(self._public(batch["id"]))

    # time

    def _advance(self, batch_id: str) -> None:
        batch = self.batches[batch_id]
        status = batch["status"]
        if status == "validating":
            if batch["ordinal"] in self.refuse:
                self._problems[batch_id].append(
                    {"code": "invalid_request", "message": "The batch was refused (scripted).", "line": 1}
                )
            if self._problems[batch_id]:
                batch["status"], batch["errors"] = "failed", {"object": "list", "data": self._problems[batch_id]}
                return
            batch["status"] = "in_progress"
            self._run(batch_id)
        elif status == "in_progress":
            if batch["ordinal"] in self.expire_after:
                self._end(batch_id, "expired")
            elif len(self._results[batch_id]) < len(self._lines[batch_id]):
                self._run(batch_id)
            else:
                batch["status"] = "finalizing"
        elif status == "finalizing":
            self._end(batch_id, "completed")
        elif status == "cancelling":
            self._end(batch_id, "cancelled")

    def _run(self, batch_id: str) -> None:
        """Answer the next lines as /v1/chat/completions answers them."""
        lines, results = self._lines[batch_id], self._results[batch_id]
        batch = self.batches[batch_id]
        step = self.expire_after.get(batch["ordinal"], self.lines_per_step or len(lines))
        strict = self.strict is True or (self.strict is not False and batch["ordinal"] in self.strict)
        no_seed = self.refuse_seed is True or (self.refuse_seed is not False and batch["ordinal"] in self.refuse_seed)
        template = self.refuse_template is True or (
            self.refuse_template is not False and batch["ordinal"] in self.refuse_template
        )
        for line in lines[len(results) : len(results) + step]:
            format_type = (line["body"].get("response_format") or {}).get("type")
            if template:
                status, payload = 400, NO_SYSTEM_ROLE
            elif no_seed and "seed" in line["body"]:
                status, payload = 400, NO_SEED
            elif strict and format_type == "json_schema":
                status, payload = 400, NO_JSON_SCHEMA
            else:
                status, payload = self.server.answer(line["body"], ENDPOINT)
            results.append((line, status, payload))
            batch["request_counts"]["completed" if status == 200 else "failed"] += 1

    def _end(self, batch_id: str, status: str) -> None:
        batch, results = self.batches[batch_id], self._results[batch_id]
        batch["status"] = status
        output, errors = [], []
        for n, (line, code, payload) in enumerate(results):
            entry = {
                "id": f"batch_req_{batch_id}_{n}",
                "custom_id": line["custom_id"],
                "response": {"status_code": code, "request_id": f"req_{n}", "body": payload},
                "error": None,
            }
            (output if code == 200 else errors).append(entry)
        if status == "expired":
            for line in self._lines[batch_id][len(results) :]:
                error = {"code": "batch_expired", "message": "This request could not be executed before expiry."}
                errors.append({"id": None, "custom_id": line["custom_id"], "response": None, "error": error})
                batch["request_counts"]["failed"] += 1
        for key, entries in (("output_file_id", output), ("error_file_id", errors)):
            if entries:
                content = "".join(json.dumps(e) + "\n" for e in entries).encode()
                batch[key] = self._store(f"{batch_id}_{key}.jsonl", content, "batch_output")["id"]


def _read_lines(content: bytes) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The request lines, and what the documented format forbids in them (as the Batch API reports it)."""
    lines, problems, seen = [], [], set()
    for number, raw in enumerate(content.decode("utf-8").splitlines(), start=1):
        try:
            line = json.loads(raw)
        except ValueError:
            problems.append({"code": "invalid_json_line", "message": "This line is not valid JSON.", "line": number})
            continue
        wrong = []
        if not isinstance(line, dict) or set(line) != {"custom_id", "method", "url", "body"}:
            wrong.append("keys must be exactly custom_id, method, url, body")
        elif not isinstance(line["custom_id"], str) or line["custom_id"] in seen:
            wrong.append("custom_id must be a string, unique in the file")
        elif line["method"] != "POST" or line["url"] != ENDPOINT or not isinstance(line["body"], dict):
            wrong.append(f"method must be POST, url {ENDPOINT}, body an object")
        if wrong:
            problems.append({"code": "invalid_request", "message": "; ".join(wrong), "line": number})
            continue
        seen.add(line["custom_id"])
        lines.append(line)
    return lines, problems
