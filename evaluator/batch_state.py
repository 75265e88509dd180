"""What a run folder records of its batches: <run>/batches.json (ids, statuses, the re-asks waiting) and
per batch <run>/batch/NAME.requests.jsonl (the lines as uploaded, no secret in them) and NAME.calls.jsonl
(which items each line answers). Every file is replaced atomically, so a command killed at any moment
leaves what the next one resumes from."""

from __future__ import annotations

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


def calls_path(run_dir: Path, record: BatchRecord) -> Path:
    return run_dir / FOLDER / f"{record.name}.calls.jsonl"


def write_batch_files(run_dir: Path, record: BatchRecord, lines: list[bytes], calls: list[BatchCall]) -> None:
    (run_dir / FOLDER).mkdir(exist_ok=True)
    write_atomic(requests_path(run_dir, record), b"".join(lines).decode("utf-8"))
    write_atomic(calls_path(run_dir, record), "".join(c.model_dump_json() + "\n" for c in calls))


def read_calls(run_dir: Path, record: BatchRecord) -> dict[str, BatchCall]:
    """A batch's calls by custom_id."""
    path = calls_path(run_dir, record)
    calls = {}
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            call = BatchCall.model_validate_json(raw)
        except ValidationError as exc:
            raise ResultsError(f"{path}, line {number}: not a valid batch call: {exc.errors()[0]['msg']}") from None
        calls[call.custom_id] = call
    return calls


def open_batches(state: BatchState) -> list[BatchRecord]:
    """Batches whose results are not in judgments.jsonl yet."""
    return [b for b in state.batches if not b.collected]


def ended(record: BatchRecord) -> bool:
    return record.status in BATCH_ENDED


def next_name(state: BatchState) -> str:
    return f"{len(state.batches) + 1:04d}"
