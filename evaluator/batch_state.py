"""What a run folder records of its batches: <run>/batches.json (ids, statuses, the re-asks waiting) and
per batch <run>/batch/NAME.requests.jsonl (the lines as uploaded, no secret in them) and NAME.calls.jsonl
(which items each line answers). Every file is replaced atomically, so a command killed at any moment
leaves what the next one resumes from."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from pydantic import ValidationError

from evaluator.models import BATCH_ENDED, BatchCall, BatchRecord, BatchState
from evaluator.store import ResultsError, write_atomic

STATE = "batches.json"
FOLDER = "batch"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_state(run_dir: Path) -> BatchState:
    path = run_dir / STATE
    if not path.is_file():
        return BatchState()
    try:
        return BatchState.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise ResultsError(f"{path}: not a valid batch record: {exc.errors()[0]['msg']}") from None


def write_state(run_dir: Path, state: BatchState) -> None:
    write_atomic(run_dir / STATE, state.model_dump_json(indent=2) + "\n")


def requests_path(run_dir: Path, record: BatchRecord) -> Path:
    return run_dir / FOLDER / f"{record.name}.requests.jsonl"


def request_lines(run_dir: Path, records: list[BatchRecord]) -> Iterator[str]:
    """The request lines of batches, in order, read a line at a time."""
    for record in records:
        with requests_path(run_dir, record).open(encoding="utf-8") as handle:
            yield from handle


def calls_path(run_dir: Path, record: BatchRecord) -> Path:
    return run_dir / FOLDER / f"{record.name}.calls.jsonl"


class BatchFilesWriter:
    """A batch's request and call files, written a line at a time beside their places and swapped in whole
    when closed, so a batch of any size is never held in memory and never seen half written."""

    def __init__(self, run_dir: Path, name: str) -> None:
        (run_dir / FOLDER).mkdir(exist_ok=True)
        self.name, self.count = name, 0
        self._paths = [run_dir / FOLDER / f"{name}.{kind}.jsonl" for kind in ("requests", "calls")]
        self._handles = [path.with_name(f".{path.name}.tmp").open("wb") for path in self._paths]

    def add(self, line: bytes, call: BatchCall) -> None:
        """A request line (newline included) and the items it answers."""
        self._handles[0].write(line)
        self._handles[1].write(call.model_dump_json().encode() + b"\n")
        self.count += 1

    def close(self) -> None:
        for handle, path in zip(self._handles, self._paths):
            handle.close()
            os.replace(handle.name, path)


def iter_calls(run_dir: Path, record: BatchRecord) -> Iterator[tuple[BatchCall, bytes]]:
    """A batch's calls in file order, each with its line: what to keep of a call while its reply is awaited
    (a few hundred bytes, where the model takes over a kilobyte), parsed again with BatchCall.model_validate_json."""
    path = calls_path(run_dir, record)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                call = BatchCall.model_validate_json(raw)
            except ValidationError as exc:
                raise ResultsError(f"{path}, line {number}: not a valid batch call: {exc.errors()[0]['msg']}") from None
            yield call, raw


def open_batches(state: BatchState) -> list[BatchRecord]:
    """Batches whose results are not in judgments.jsonl yet."""
    return [b for b in state.batches if not b.collected]


def ended(record: BatchRecord) -> bool:
    return record.status in BATCH_ENDED


def next_name(state: BatchState) -> str:
    return f"{len(state.batches) + 1:04d}"
