"""Read therapy transcripts (plain text, JSON, JSONL, CSV) into `Transcript` objects.

Formats:

* ``.txt`` - one turn per paragraph, ``Speaker: text``; a turn may span several lines, and a line
  that starts with a known label starts a new turn even without a blank line before it.
  Transcript id = file stem.
* ``.json`` - one session object ``{"session_id", "messages": [{"role", "content"}], ...}`` or a
  list of them; ``.jsonl`` - one session object per line. Keys other than the id and the messages
  go to metadata. Without an id the transcript is ``<stem>`` (single object) or ``<stem>-<n>``
  (n = 0-based record number). ``system`` messages are skipped.
* ``.csv`` - one utterance per row (AnnoMI layout by default), grouped by the transcript column and
  sorted by the order column; columns constant within a transcript go to metadata.

Turn indices: ``Turn.index`` is the 0-based position among the turns kept, in file order (for CSV,
after sorting by the order column). Skipped messages (``system``) are not turns and take no index.
``Turn.line`` is the 1-based line where the turn starts (the record's line for JSONL, the row's
line for CSV with the header as line 1, ``None`` for ``.json``). In ``.json`` error messages,
records and messages are located by 0-based JSON paths such as ``[2].messages[5]``.

Every problem with an input raises `TranscriptError`, whose message names the file, the line where
there is one, what is wrong and how to fix it: the person running an evaluation must be able to
repair the file without reading this code.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple, cast, get_args

from evaluator.errors import EvaluatorError
from evaluator.files import InputFileError, bad_character, check_text, located, read_text
from evaluator.models import Speaker, Transcript, Turn

SUPPORTED_SUFFIXES = (".txt", ".json", ".jsonl", ".csv")
SPEAKERS: tuple[Speaker, ...] = get_args(Speaker)

# The command-line options error messages point to; the CLI must offer these spellings.
SPEAKER_OPTION = "--speaker"
CSV_COLUMN_OPTION = "--csv-column"

DEFAULT_ALIASES: Mapping[str, Speaker] = MappingProxyType(
    {
        **dict.fromkeys(("Therapist", "Counselor", "Counsellor", "Clinician", "Assistant", "T"), "therapist"),
        **dict.fromkeys(("Patient", "Client", "User", "P", "C"), "patient"),
    }
)
DEFAULT_ROLE_MAP: Mapping[str, Speaker | None] = MappingProxyType(
    {"assistant": "therapist", "user": "patient", "system": None}
)

# A paragraph opener that looks like a speaker label: up to three words, then a colon.
_LABEL = re.compile(r"^\s*(?P<label>[^\W\d_][\w'’.-]*(?: [\w'’.-]+){0,2})\s*:(?P<rest>.*)$")


def _key(label: str) -> str:
    """Labels compare case- and spacing-insensitively, so 'COUNSELOR ' matches 'Counselor'."""
    return " ".join(label.split()).casefold()


class TranscriptError(EvaluatorError, ValueError):
    """Bad input, located precisely enough that the user can open the file and fix it."""

    def __init__(self, path: str | Path, line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        super().__init__(f"{self.path}{': ' if line is None else ', '}{located(line, problem)}")


@dataclass(frozen=True)
class CsvColumns:
    """Which CSV columns hold what; `None` for transcript means one transcript per file, for order file order."""

    transcript: str | None = "transcript_id"
    order: str | None = "utterance_id"
    speaker: str = "interlocutor"
    text: str = "utterance_text"

    def named(self) -> dict[str, str]:
        """Role -> column for the columns that must exist in the file."""
        roles = {"transcript": self.transcript, "order": self.order, "speaker": self.speaker, "text": self.text}
        return {role: column for role, column in roles.items() if column is not None}


@dataclass(frozen=True)
class ReadOptions:
    """How labels, chat roles and CSV columns map onto the model; the defaults read common files as they are."""

    speaker_aliases: Mapping[str, Speaker] = field(default_factory=lambda: DEFAULT_ALIASES)
    role_map: Mapping[str, Speaker | None] = field(default_factory=lambda: DEFAULT_ROLE_MAP)
    csv_columns: CsvColumns = field(default_factory=CsvColumns)

    def with_aliases(self, extra: Mapping[str, str]) -> ReadOptions:
        """Add user mappings such as {"Doctor": "therapist"}; they also apply to JSON roles and override defaults.

        Raises ValueError for an empty label or a role other than therapist, patient or other.
        """
        checked: dict[str, Speaker] = {}
        for label, role in extra.items():
            name = label.strip().rstrip(":").strip()
            speaker = role.strip().casefold()
            if not name:
                raise ValueError(f"cannot map {label!r} to {role!r}: the speaker label is empty")
            if speaker not in SPEAKERS:
                raise ValueError(f"cannot map {name!r} to {role!r}: the role must be one of {', '.join(SPEAKERS)}")
            checked[name] = cast(Speaker, speaker)
        keys = {_key(name) for name in checked}
        aliases = {k: v for k, v in self.speaker_aliases.items() if _key(k) not in keys} | checked
        roles = {k: v for k, v in self.role_map.items() if _key(k) not in keys} | checked
        return replace(self, speaker_aliases=MappingProxyType(aliases), role_map=MappingProxyType(roles))

    @cached_property
    def _aliases(self) -> dict[str, Speaker]:
        return {_key(k): v for k, v in self.speaker_aliases.items()}

    @cached_property
    def _roles(self) -> dict[str, Speaker | None]:
        return {_key(k): v for k, v in self.role_map.items()}

    def speaker(self, label: str) -> Speaker | None:
        """The role for a text label or CSV speaker value, or None when it is not known."""
        return self._aliases.get(_key(label))

    def is_role(self, role: str) -> bool:
        """Whether a JSON chat role is known (possibly as a role to skip)."""
        return _key(role) in self._roles or _key(role) in self._aliases

    def role(self, role: str) -> Speaker | None:
        """The speaker for a known JSON chat role; None means the message is skipped."""
        return self._roles[_key(role)] if _key(role) in self._roles else self._aliases[_key(role)]

    def known_labels(self) -> str:
        """The labels accepted, grouped by role, for error messages."""
        groups = (
            f"{', '.join(k for k, v in self.speaker_aliases.items() if v == s)} ({s})"
            for s in SPEAKERS
            if s in self.speaker_aliases.values()
        )
        return "; ".join(groups)

    def known_roles(self) -> str:
        """The JSON chat roles accepted and what each becomes, for error messages."""
        return ", ".join(f"{k} ({v or 'skipped'})" for k, v in self.role_map.items())


class _Utterance(NamedTuple):
    """A turn before its index is known: indices are assigned once, when the transcript is built."""

    speaker: Speaker
    label: str
    text: str
    line: int | None


# --- public API ----------------------------------------------------------------------------------


def discover(paths: Sequence[Path]) -> list[Path]:
    """Expand folders (recursively) into their transcript files; files given by name are kept as they are.

    Hidden files and folders and README files are skipped, each file is listed once, and a path that
    does not exist or a folder without transcripts raises TranscriptError: both are typos to stop on.
    """
    found: list[Path] = []
    seen: set[str] = set()
    for path in map(Path, paths):
        if path.is_dir():
            files = sorted(p for p in _walk(path) if _is_transcript_file(p))
            if not files:
                raise TranscriptError(
                    path, None, f"folder holds no transcript files (supported: {', '.join(SUPPORTED_SUFFIXES)})"
                )
        elif os.path.lexists(path):  # a broken link or a link loop is reported when it is read
            files = [path]
        else:
            raise TranscriptError(path, None, "no such file or folder; check the path")
        for file in files:
            real = os.path.realpath(file)  # unlike Path.resolve, never raises on a symlink loop
            if real not in seen:
                seen.add(real)
                found.append(file)
    return found


def read_transcripts(path: Path, options: ReadOptions = ReadOptions()) -> list[Transcript]:
    """Read one file; a JSON, JSONL or CSV file may hold several transcripts."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise TranscriptError(
            path,
            None,
            f'unsupported file type "{path.suffix or "(none)"}"; save it as one of {", ".join(SUPPORTED_SUFFIXES)}',
        )
    text = _read_text(path)
    if suffix == ".txt":
        transcripts = [_parse_text(path, text, options)]
    elif suffix == ".json":
        transcripts = _parse_json(path, text, options)
    elif suffix == ".jsonl":
        transcripts = _parse_jsonl(path, text, options)
    else:
        transcripts = _parse_csv(path, text, options)
    _check_unique_ids(path, transcripts)
    return transcripts


def read_all(
    paths: Sequence[Path], options: ReadOptions = ReadOptions()
) -> tuple[list[Transcript], list[tuple[Path, TranscriptError]]]:
    """Read every file under `paths`, setting bad files aside so one broken file does not stop a run.

    Paths are expanded with `discover`, whose errors (a path that does not exist) are raised. A file
    whose transcript id was already read from an earlier file is set aside as a whole.
    """
    transcripts: list[Transcript] = []
    failures: list[tuple[Path, TranscriptError]] = []
    sources: dict[str, str] = {}
    for path in discover(paths):
        try:
            read = read_transcripts(path, options)
            for transcript in read:
                if transcript.id in sources:
                    raise TranscriptError(
                        path, None, f'transcript id "{transcript.id}" is also in {sources[transcript.id]}; rename one'
                    )
        except TranscriptError as error:
            failures.append((path, error))
            continue
        sources.update((t.id, t.source) for t in read)
        transcripts.extend(read)
    return transcripts, failures


# --- shared helpers ------------------------------------------------------------------------------


def _walk(root: Path) -> Iterator[Path]:
    """Every non-folder entry under `root`, skipping hidden names; a folder reached twice (through a
    symlink loop) is walked once, so a hostile tree cannot make discovery endless."""
    seen: set[tuple[int, int]] = set()
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            info = folder.stat()
            entries = list(os.scandir(folder))
        except OSError:
            continue
        if (info.st_dev, info.st_ino) in seen:
            continue
        seen.add((info.st_dev, info.st_ino))
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                pending.append(Path(entry.path))
            else:
                yield Path(entry.path)


def _is_transcript_file(path: Path) -> bool:
    """Anything but a folder counts, so a FIFO or device named like a transcript is reported, not skipped."""
    return path.suffix.lower() in SUPPORTED_SUFFIXES and path.stem.casefold() != "readme"


def _read_text(path: Path) -> str:
    """UTF-8 text from a regular file of bounded size, without NUL bytes or stray control characters."""
    try:
        text = read_text(path)
        check_text(path, text)
    except InputFileError as exc:
        raise TranscriptError(path, exc.line, exc.problem) from None
    if not text.strip():
        raise TranscriptError(path, None, "file is empty; it needs at least one therapist turn")
    return text


def _map_hint(label: str) -> str:
    """The command-line fix for an unknown label, quoted when the shell would split it."""
    mapping = f"{label}=therapist" if " " not in label else f'"{label}=therapist"'
    return f"map it with {SPEAKER_OPTION} {mapping} (or patient, or other)"


def _unknown_speaker(label: str, options: ReadOptions) -> str:
    if not label:
        return f"empty speaker label; known labels: {options.known_labels()}"
    return f'unknown speaker label "{label}"; known labels: {options.known_labels()}; {_map_hint(label)}'


def _build(path: Path, transcript_id: str, turns: Sequence[_Utterance], metadata: dict[str, Any]) -> Transcript:
    """Number the turns and refuse a transcript with no therapist turn, since nothing in it can be judged."""
    if not any(turn.speaker == "therapist" for turn in turns):
        seen = ", ".join(sorted({f"{t.label} ({t.speaker})" for t in turns})) or "none"
        raise TranscriptError(
            path,
            None,
            f'transcript "{transcript_id}" has no therapist turns (speakers seen: {seen}); '
            f"nothing in it can be judged - map the therapist's label with {SPEAKER_OPTION} LABEL=therapist",
        )
    return Transcript(
        id=transcript_id,
        source=str(path),
        turns=[Turn(index=i, speaker=t.speaker, label=t.label, text=t.text, line=t.line) for i, t in enumerate(turns)],
        metadata=metadata,
    )


def _check_unique_ids(path: Path, transcripts: Sequence[Transcript]) -> None:
    ids: set[str] = set()
    for transcript in transcripts:
        if transcript.id in ids:
            raise TranscriptError(
                path, None, f'transcript id "{transcript.id}" appears twice in this file; give each session its own id'
            )
        ids.add(transcript.id)


# --- plain text ----------------------------------------------------------------------------------


def _parse_text(path: Path, text: str, options: ReadOptions) -> Transcript:
    turns = [_text_turn(path, block, options) for block in _text_blocks(text, options)]
    return _build(path, path.stem, turns, {"source_format": "text"})


def _text_blocks(text: str, options: ReadOptions) -> Iterator[list[tuple[int, str]]]:
    """Group numbered lines into turns: a blank line ends a turn, a line opening with a known label starts one."""
    block: list[tuple[int, str]] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip()
        if not line.strip():
            if block:
                yield block
            block = []
            continue
        match = _LABEL.match(line)
        if block and match and options.speaker(match["label"]) is not None:
            yield block
            block = []
        block.append((number, line))
    if block:
        yield block


def _text_turn(path: Path, block: list[tuple[int, str]], options: ReadOptions) -> _Utterance:
    number, first = block[0]
    match = _LABEL.match(first)
    if match is None:
        excerpt = first.strip()[:40]
        raise TranscriptError(
            path,
            number,
            f'no speaker label at the start of this paragraph ("{excerpt}"); start every turn with a label '
            f'such as "Therapist:" or "Patient:", or remove the blank line that separates it from the turn before',
        )
    label = " ".join(match["label"].split())
    speaker = options.speaker(label)
    if speaker is None:
        raise TranscriptError(path, number, _unknown_speaker(label, options))
    body = "\n".join([match["rest"].strip(), *(line.strip() for _, line in block[1:])]).strip()
    if not body:
        raise TranscriptError(path, number, f'empty turn: "{label}:" has no text; write the turn or delete the label')
    return _Utterance(speaker, label, body, number)


# --- JSON and JSONL ------------------------------------------------------------------------------


MAX_JSON_DEPTH = 64
# Integers must fit the 64-bit range every JSON writer downstream supports (records are written back out).
_INT_RANGE = (-(2**63), 2**64 - 1)


class _NumberError(ValueError):
    """A number literal that cannot be carried through the pipeline; `literal` is how it was written."""

    def __init__(self, literal: str, problem: str) -> None:
        super().__init__(problem)
        self.literal = literal
        self.problem = problem


def _json_int(literal: str) -> int:
    value = int(literal) if len(literal) <= 21 else None
    if value is None or not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
        digits = len(literal.lstrip("-"))
        raise _NumberError(
            literal, f"the integer {literal[:20]}... ({digits} digits) is too large; quote it as a string"
        )
    return value


def _json_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _NumberError(literal, f"the number {literal[:40]} is too large to represent; quote it as a string")
    return value


def _json_constant(literal: str) -> float:
    raise _NumberError(literal, f"{literal} is not a JSON number; quote it as a string or use null")


def _loads(path: Path, text: str, line: int | None) -> Any:
    """json.loads with every failure a TranscriptError: syntax, depth, numbers beyond what can be stored.
    `line` is the line `text` starts on (JSONL), None for a whole .json file."""
    base = (line or 1) - 1
    try:
        return json.loads(text, parse_int=_json_int, parse_float=_json_float, parse_constant=_json_constant)
    except json.JSONDecodeError as exc:
        raise TranscriptError(path, base + exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        offset = _too_deep_at(text)
        raise TranscriptError(
            path,
            base + text.count("\n", 0, offset) + 1,
            f"JSON nested more than {MAX_JSON_DEPTH} levels deep; flatten it",
        ) from None
    except _NumberError as exc:
        found = re.search(rf"(?<![\w.+-]){re.escape(exc.literal)}(?![\w.])", text)
        at = base + text.count("\n", 0, found.start()) + 1 if found else line
        raise TranscriptError(path, at, exc.problem) from None


def _too_deep_at(text: str) -> int:
    """Where brackets (outside strings) first nest deeper than MAX_JSON_DEPTH; only run on a failure."""
    depth = 0
    for token in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', text):
        if token.group() in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return token.start()
        elif token.group() in "]}":
            depth -= 1
    return 0


def _check_json(path: Path, value: Any, line: int | None, where: str) -> None:
    """Every key and string is text that can be written back out, and nesting stays shallow: both matter
    later (a lone surrogate from "\\ud800" fails only when a judgment or prompt is encoded)."""
    pending = [(value, where, 0)]
    while pending:
        node, at, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise TranscriptError(
                path, line, f"at {_short(at)}: JSON nested more than {MAX_JSON_DEPTH} levels deep; flatten it"
            )
        if isinstance(node, str):
            found = bad_character(node)
            if found is not None:
                raise TranscriptError(path, line, f"at {_short(at)}: the string holds {found[1]}")
        elif isinstance(node, dict):
            for key, item in node.items():
                found = bad_character(key)
                if found is not None:
                    raise TranscriptError(path, line, f"at {_short(at)}: a key holds {found[1]}")
                pending.append((item, f"{at}.{key}" if at else key, depth + 1))
        elif isinstance(node, list):
            pending.extend((item, f"{at}[{n}]", depth + 1) for n, item in enumerate(node))


def _short(where: str, limit: int = 60) -> str:
    """A JSON path for a message: deep paths are cut, since their start is what locates them."""
    if not where:
        return "the top level"
    return where if len(where) <= limit else where[:limit] + "..."


def _parse_json(path: Path, text: str, options: ReadOptions) -> list[Transcript]:
    data = _loads(path, text, None)
    _check_json(path, data, None, "")
    if isinstance(data, dict):
        return [_session(path, data, path.stem, None, "", options)]
    if not isinstance(data, list):
        raise TranscriptError(
            path, None, f"expected a session object or a list of them, found a JSON {_json_type(data)}"
        )
    if not data:
        raise TranscriptError(path, None, "the file holds an empty list; add at least one session object")
    return [_session(path, record, f"{path.stem}-{n}", None, f"[{n}]", options) for n, record in enumerate(data)]


def _parse_jsonl(path: Path, text: str, options: ReadOptions) -> list[Transcript]:
    transcripts: list[Transcript] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = _loads(path, line, number)
        except TranscriptError as exc:
            if not exc.problem.startswith("invalid JSON"):
                raise
            raise TranscriptError(path, number, f"{exc.problem}; each line must be one session object") from None
        _check_json(path, record, number, "")
        transcripts.append(_session(path, record, f"{path.stem}-{len(transcripts)}", number, "", options))
    return transcripts


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _session(
    path: Path, record: Any, default_id: str, line: int | None, where: str, options: ReadOptions
) -> Transcript:
    """One session object; `where` is its JSON path in a list file, so errors point into big files."""
    at = f"at {where}: " if where else ""
    if not isinstance(record, dict):
        raise TranscriptError(path, line, f"{at}expected a session object, found a JSON {_json_type(record)}")
    metadata = dict(record)
    id_key = next((k for k in ("session_id", "id") if metadata.get(k) is not None), None)
    transcript_id = metadata.pop(id_key) if id_key else default_id
    if not isinstance(transcript_id, (str, int)) or isinstance(transcript_id, bool):
        raise TranscriptError(path, line, f'{at}"{id_key}" must be a string or an integer')
    if "messages" not in metadata:
        keys = ", ".join(record) or "none"
        raise TranscriptError(
            path,
            line,
            f'{at}no "messages" key (keys present: {keys}); put the turns in "messages": [{{"role", "content"}}, ...]',
        )
    messages = metadata.pop("messages")
    if not isinstance(messages, list):
        raise TranscriptError(path, line, f'{at}"messages" must be a list, found a JSON {_json_type(messages)}')
    turns = [
        turn
        for n, message in enumerate(messages)
        if (turn := _message(path, message, line, f"{where}.messages[{n}]".lstrip("."), options)) is not None
    ]
    return _build(path, str(transcript_id), turns, {"source_format": path.suffix.lower().lstrip("."), **metadata})


def _message(path: Path, message: Any, line: int | None, where: str, options: ReadOptions) -> _Utterance | None:
    """One chat message as a turn, or None for a role that is skipped (system)."""
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise TranscriptError(path, line, f'at {where}: expected an object with a "role" string and "content"')
    role = message["role"]
    if not options.is_role(role):
        raise TranscriptError(
            path,
            line,
            f'at {where}: unknown role "{role}"; known roles: {options.known_roles()}; {_map_hint(role)}',
        )
    speaker = options.role(role)
    if speaker is None:
        return None
    text = _content_text(path, message.get("content"), line, where).strip()
    if not text:
        raise TranscriptError(path, line, f'at {where}: empty turn: the "{role}" message has no text')
    return _Utterance(speaker, role, text, line)


def _content_text(path: Path, content: Any, line: int | None, where: str) -> str:
    """A string, or OpenAI-style content parts whose text parts are joined by newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for n, part in enumerate(content):
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else _json_type(part)
                raise TranscriptError(
                    path,
                    line,
                    f'at {where}.content[{n}]: a content part of type "{kind}" cannot be judged; only text parts can',
                )
        return "\n".join(texts)
    found = _json_type(content)
    raise TranscriptError(
        path, line, f'at {where}: "content" must be a string or a list of text parts, found a JSON {found}'
    )


# --- CSV -----------------------------------------------------------------------------------------


class _Row(NamedTuple):
    line: int
    values: dict[str, str]


def _parse_csv(path: Path, text: str, options: ReadOptions) -> list[Transcript]:
    columns = options.csv_columns
    header, rows = _csv_rows(path, text)
    absent = {role: name for role, name in columns.named().items() if name not in header}
    if absent:
        missing = ", ".join(f'{role} column "{name}"' for role, name in absent.items())
        fixes = " ".join(f"{CSV_COLUMN_OPTION} {role}=NAME" for role in absent)
        present = ", ".join(header) or "none"
        raise TranscriptError(path, 1, f"missing {missing}; columns present: {present}; map them with {fixes}")
    groups: dict[str, list[_Row]] = {}
    for row in rows:
        transcript_id = row.values[columns.transcript].strip() if columns.transcript else path.stem
        if not transcript_id:
            raise TranscriptError(
                path, row.line, f'the "{columns.transcript}" column is empty; every row needs a transcript id'
            )
        groups.setdefault(transcript_id, []).append(row)
    used = set(columns.named().values())
    return [
        _build(
            path,
            transcript_id,
            [_csv_turn(path, row, options) for row in _sorted_rows(path, group, columns.order)],
            {"source_format": "csv", **_constant_columns(group, [c for c in header if c not in used])},
        )
        for transcript_id, group in groups.items()
    ]


def _csv_rows(path: Path, text: str) -> tuple[list[str], list[_Row]]:
    """Header and rows with their starting line (header = line 1); ragged rows are refused, not guessed."""
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[_Row] = []
    try:
        header = [name.strip() for name in next(reader)]
        start = reader.line_num + 1
        for values in reader:
            if any(value.strip() for value in values):
                if len(values) != len(header):
                    raise TranscriptError(
                        path,
                        start,
                        f"row has {len(values)} fields but the header has {len(header)}; check its quoting and commas",
                    )
                rows.append(_Row(start, dict(zip(header, values))))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise TranscriptError(path, reader.line_num, f"malformed CSV: {exc}") from exc
    if not rows:
        raise TranscriptError(path, None, "the CSV has a header but no rows; add one row per utterance")
    return header, rows


_ORDER_VALUE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def _sorted_rows(path: Path, rows: list[_Row], order: str | None) -> list[_Row]:
    """Rows in the order column's numeric order. The order is never guessed: an empty, non-numeric or
    repeated value is an error, since a wrong order shows the judge the wrong context."""
    if order is None:
        return rows
    positions: dict[Decimal, _Row] = {}
    for row in rows:
        value = row.values[order].strip()
        if not value:
            raise TranscriptError(
                path, row.line, f'the order column "{order}" is empty; give every row its position in the session'
            )
        if len(value) > 40 or not _ORDER_VALUE.fullmatch(value):
            raise TranscriptError(
                path,
                row.line,
                f'the order column "{order}" holds "{value[:40]}", not a number; give every row its position '
                f"as a number, or name the column that holds it with {CSV_COLUMN_OPTION} order=COLUMN",
            )
        position = Decimal(value)
        if position in positions:
            raise TranscriptError(
                path,
                row.line,
                f'the order column "{order}" repeats {value} from line {positions[position].line} of the same '
                "transcript; give every row its own position",
            )
        positions[position] = row
    return [positions[position] for position in sorted(positions)]


def _csv_turn(path: Path, row: _Row, options: ReadOptions) -> _Utterance:
    columns = options.csv_columns
    label = row.values[columns.speaker].strip()
    speaker = options.speaker(label)
    if speaker is None:
        raise TranscriptError(path, row.line, f'column "{columns.speaker}": ' + _unknown_speaker(label, options))
    text = row.values[columns.text].strip()
    if not text:
        raise TranscriptError(path, row.line, f'empty turn: the "{columns.text}" column is empty for this {label} row')
    return _Utterance(speaker, label, text, row.line)


def _constant_columns(rows: list[_Row], candidates: list[str]) -> dict[str, str]:
    """Session-level facts (topic, quality) repeat on every row; per-utterance columns vary and are dropped."""
    return {c: rows[0].values[c] for c in candidates if all(row.values[c] == rows[0].values[c] for row in rows)}
