"""Result files: results/<run-id>/manifest.json, judgments.jsonl and transcripts.jsonl.

Judgments are appended one line each and flushed as they arrive, so a run killed at any moment
keeps every finished judgment; the only damage a kill can do is a last line cut short, which is
dropped (and truncated away) when the run is read or resumed. The manifest is replaced atomically,
so it is never half-written. transcripts.jsonl is a snapshot of the transcripts as read when the run
started: reports show what was judged, whatever the files say now. One process at a time writes a run
folder: it holds the folder's lock (an flock the kernel drops when the process dies, however it dies).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
from array import array
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, NamedTuple

from pydantic import ValidationError

from evaluator.errors import EvaluatorError
from evaluator.metadata import flatten
from evaluator.models import Judgment, RunManifest, Status, Transcript, Usage
from evaluator.transcript_shelf import json_lines

MANIFEST = "manifest.json"
JUDGMENTS = "judgments.jsonl"
TRANSCRIPTS = "transcripts.jsonl"
LOCK = ".lock"
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class ResultsError(EvaluatorError, ValueError):
    """A results folder that cannot be read; names the file and line."""


def new_run_id(now: datetime | None = None) -> str:
    """Sortable by time, unique without coordination: 20261123-041502-a3f9."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def write_atomic(path: Path, text: str) -> None:
    write_lines_atomic(path, (text,))


def write_manifest(run_dir: Path, manifest: RunManifest) -> None:
    write_atomic(run_dir / MANIFEST, manifest.model_dump_json(indent=2) + "\n")


def read_manifest(run_dir: Path) -> RunManifest:
    path = run_dir / MANIFEST
    if not path.is_file():
        raise ResultsError(f"{run_dir}: not a run folder (no {MANIFEST}); pass a folder under results/")
    try:
        manifest = RunManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise ResultsError(f"{path}: not a valid manifest: {exc.errors()[0]['msg']}") from None
    # Runs from before metadata was flattened at reading time hold nested records: every reader of a run
    # sees one `a.b` field per fact, whatever wrote it.
    for transcript_id, metadata in manifest.transcript_metadata.items():
        try:
            manifest.transcript_metadata[transcript_id] = flatten(metadata)
        except ValueError as exc:
            raise ResultsError(f"{path}: the metadata of transcript {transcript_id!r}: {exc}") from None
    return manifest


def write_transcripts(run_dir: Path, transcripts: Sequence[Transcript]) -> None:
    """A line per transcript; a transcript_shelf's lines are copied from its spool, none parsed."""
    write_lines_atomic(run_dir / TRANSCRIPTS, json_lines(transcripts))


def read_transcript_snapshot(run_dir: Path) -> list[Transcript] | None:
    """The transcripts as the run read them; None for run folders written before snapshots existed."""
    path = run_dir / TRANSCRIPTS
    if not path.is_file():
        return None
    transcripts = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                transcripts.append(Transcript.model_validate_json(raw))
            except ValidationError as exc:
                raise ResultsError(f"{path}, line {number}: not a valid transcript: {exc.errors()[0]['msg']}") from None
    return transcripts


class RunLocked(ResultsError):
    """Another process is writing this run folder."""


class RunLock:
    """Held while a process writes a run folder, so two processes never append to one judgments.jsonl
    (a second `--resume` of a running run would judge every pending item twice)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunLocked(
                f"{self.path.parent}: another evaluator process (pid {holder}) is writing this run; "
                "wait for it to finish or stop it, then continue with --resume"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def create_run_dir(output: Path, run_id: str) -> Path:
    """A new, empty run folder; an existing one is never reused, since its judgments would mix with ours."""
    if not RUN_ID.fullmatch(run_id):
        raise ResultsError(
            f"run id {run_id!r} cannot name a folder under {output}; use letters, digits, '.', '_' and '-' only"
        )
    run_dir = output / run_id
    try:
        output.mkdir(parents=True, exist_ok=True)
        run_dir.mkdir()
    except FileExistsError:
        raise ResultsError(
            f"{run_dir} already exists; choose another --run-id, or continue that run with --resume {run_dir}"
        ) from None
    return run_dir


def _complete_length(path: Path, chunk: int = 1 << 16) -> int:
    """Byte length of the file up to its last newline: everything after is a line cut short by a kill.
    Read backwards from the end, so finding it costs the same for a file of any size."""
    with path.open("rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        while end > 0:
            start = max(0, end - chunk)
            handle.seek(start)
            found = handle.read(end - start).rfind(b"\n")
            if found >= 0:
                return start + found + 1
            end = start
    return 0


class JudgmentLine(NamedTuple):
    number: int
    offset: int
    """Where the line starts in the file, for reading it again without the rest."""
    raw: bytes


def judgment_lines(path: Path) -> Iterator[JudgmentLine]:
    """Every complete, non-blank line, read one at a time: memory stays flat however many judgments
    the file holds, and a last line cut short by a kill is left out."""
    left = _complete_length(path)
    offset = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if left <= 0:
                return
            left -= len(raw)
            if raw.strip():
                yield JudgmentLine(number, offset, raw)
            offset += len(raw)


def parse_judgment(path: Path, number: int, raw: bytes) -> Judgment:
    try:
        return Judgment.model_validate_json(raw)
    except ValidationError as exc:
        raise ResultsError(f"{path}, line {number}: not a valid judgment: {exc.errors()[0]['msg']}") from None


def iter_judgments(run_dir: Path, skip_lines: AbstractSet[int] = frozenset()) -> Iterator[Judgment]:
    """Every complete judgment line, in the order written; a cut-short last line is ignored, and so are
    the line numbers in `skip_lines` (those a later line replaced, see RunScan.superseded)."""
    path = run_dir / JUDGMENTS
    if not path.is_file():
        return
    for number, _, raw in judgment_lines(path):
        if number not in skip_lines:
            yield parse_judgment(path, number, raw)


def load_judgments(run_dir: Path) -> list[Judgment]:
    """The run's judgments, the last one written winning where a key was re-judged (--retry-failed)."""
    latest: dict[str, Judgment] = {}
    for judgment in iter_judgments(run_dir):
        latest.pop(judgment.key, None)
        latest[judgment.key] = judgment
    return list(latest.values())


class Tally:
    """Counts by status and token usage of a run's judgments, one per key: what the manifest records,
    kept as judgments pass by instead of from every judgment held to the end."""

    def __init__(self) -> None:
        self.counts: Counter[Status] = Counter()
        self._tokens = [0, 0, 0]

    @property
    def usage(self) -> Usage:
        prompt, cached, completion = self._tokens
        return Usage(prompt_tokens=prompt, cached_tokens=cached, completion_tokens=completion)

    def add(self, status: Status, usage: Usage, sign: int = 1) -> None:
        self.counts[status] += sign
        self._tokens[0] += sign * usage.prompt_tokens
        self._tokens[1] += sign * usage.cached_tokens
        self._tokens[2] += sign * usage.completion_tokens

    def take_back(self, status: Status, usage: Usage) -> None:
        """Undo `add` for a judgment a later one of the same key replaces."""
        self.add(status, usage, -1)


class PriorVerdict(NamedTuple):
    """What a dependent criterion reads of its prerequisite's judgment (plan.applicability_after)."""

    status: Status
    verdict: int | float | str | None


@dataclass
class RunScan:
    """What resuming a run needs from its judgments.jsonl, without holding its judgments: per key a
    few dozen bytes (about 100 bytes a kept key), the rest read again line by line when needed."""

    done: set[str] = field(default_factory=set)
    """Keys whose judgment is kept: not judged again."""
    verdicts: dict[str, PriorVerdict] = field(default_factory=dict)
    """Kept judgments of prerequisite criteria, for the criteria that depend on them."""
    replaceable: dict[str, tuple[Status, Usage, int]] = field(default_factory=dict)
    """Keys judged but not kept (they are judged again): status, usage and line, to take back when replaced."""
    superseded: set[int] = field(default_factory=set)
    """Line numbers of judgments a later line of the same key replaced: skipped when the run is read."""
    tally: Tally = field(default_factory=Tally)

    def replaced(self, key: str) -> None:
        """A judgment of `key` was just written: the earlier one, if any, no longer counts."""
        earlier = self.replaceable.pop(key, None)
        if earlier is not None:
            status, usage, line = earlier
            self.tally.take_back(status, usage)
            self.superseded.add(line)


def scan_run(run_dir: Path, keep: Collection[Status], prerequisites: Collection[tuple[str, str]] = ()) -> RunScan:
    """Read judgments.jsonl for a resume in two passes: which lines a later line of their key replaced
    (superseded_lines; as load_judgments reads it, the last written wins), then the rest into a RunScan. `prerequisites`
    are the (rubric id, criterion id) pairs whose verdicts dependent criteria read."""
    scan = RunScan()
    path = run_dir / JUDGMENTS
    if not path.is_file():
        return scan
    scan.superseded = superseded_lines(path)
    for number, _, raw in judgment_lines(path):
        if number in scan.superseded:
            continue
        judgment = parse_judgment(path, number, raw)
        scan.tally.add(judgment.status, judgment.usage)
        if judgment.status not in keep:
            scan.replaceable[judgment.key] = (judgment.status, judgment.usage, number)
            continue
        scan.done.add(judgment.key)
        if (judgment.rubric_id, judgment.criterion_id) in prerequisites:
            scan.verdicts[judgment.key] = PriorVerdict(judgment.status, judgment.verdict)
    return scan


_KEY = re.compile(rb'\{"key":"([^"\\]*)"')
"""The key at the start of a line as the store writes it (no escapes in it): read without parsing the line."""


def superseded_lines(path: Path) -> set[int]:
    """Numbers of the judgment lines a later line re-judges (same key). It holds 24 bytes a line, not the
    keys: a hash of each key finds the candidate repeats, whose keys are then read again and compared. A line
    whose key cannot be read is left to the reader, which reports it with its line number."""
    import numpy as np  # off the start-up path: only reading a whole run needs it

    if not path.is_file():
        return set()
    hashes, offsets, numbers = array("q"), array("q"), array("q")
    for number, start, raw in judgment_lines(path):
        key = _line_key(raw)
        if key is not None:
            hashes.append(hash(key))
            offsets.append(start)
            numbers.append(number)
    with path.open("rb") as handle:
        values = np.frombuffer(hashes, dtype=np.int64)
        order = np.argsort(values, kind="stable")
        repeats = np.flatnonzero(values[order][1:] == values[order][:-1])
        last: dict[str, int] = {}
        superseded: set[int] = set()
        for index in np.unique(np.concatenate([order[repeats], order[repeats + 1]])).tolist():  # in file order
            handle.seek(offsets[index])
            key = _line_key(handle.readline())
            if key is None:
                continue
            if key in last:
                superseded.add(last[key])
            last[key] = numbers[index]
    return superseded


def _line_key(raw: bytes) -> str | None:
    match = _KEY.match(raw)
    if match is not None:
        return match.group(1).decode("utf-8", "surrogateescape")
    try:
        key = json.loads(raw).get("key")
    except (ValueError, AttributeError):
        return None
    return key if isinstance(key, str) else None


def write_lines_atomic(path: Path, lines: Iterable[str]) -> None:
    """Write beside `path` and swap it in whole, so a reader never meets half a file; the text may come a
    line at a time, never held whole."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.writelines(lines)
    os.replace(tmp, path)


def judgments_size(run_dir: Path) -> int:
    """Bytes of complete judgment lines so far: a mark that later lines can be read from (batch queues)."""
    path = run_dir / JUDGMENTS
    return _complete_length(path) if path.is_file() else 0


def keys_judged_after(run_dir: Path, offset: int) -> set[str]:
    """Keys of the complete judgment lines written after `offset` (a judgments_size mark)."""
    path = run_dir / JUDGMENTS
    if not path.is_file():
        return set()
    complete = _complete_length(path)
    with path.open("rb") as handle:
        handle.seek(min(offset, complete))
        data = handle.read(max(0, complete - offset))
    return {Judgment.model_validate_json(raw).key for raw in data.splitlines() if raw.strip()}


class JudgmentWriter:
    """Appends judgments to judgments.jsonl, one flushed line each."""

    def __init__(self, run_dir: Path) -> None:
        path = run_dir / JUDGMENTS
        if path.exists():
            complete = _complete_length(path)
            if complete != path.stat().st_size:
                os.truncate(path, complete)
        self._handle: IO[str] = path.open("a", encoding="utf-8")

    def append(self, judgment: Judgment) -> None:
        self._handle.write(judgment.model_dump_json() + "\n")
        self._handle.flush()

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()

    def __enter__(self) -> JudgmentWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def resolve_run(path: Path, results_dir: Path) -> Path:
    """Accept a run folder path or a bare run id under the results folder."""
    for candidate in (path, results_dir / path):
        if (candidate / MANIFEST).is_file():
            return candidate
    raise ResultsError(f"{path}: no run found (looked for {MANIFEST} in {path} and {results_dir / path})")
