"""JSON and JSONL transcripts: one session object (or a list of them) per file, or one per line.

Hostile JSON is refused with its line or JSON path: nesting deeper than MAX_JSON_DEPTH, integers no
store can hold, NaN and infinities, and strings holding NUL bytes, control characters or lone
surrogates, which would fail only later, when a judgment is written or a prompt sent.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from evaluator.files import bad_character
from evaluator.metadata import flatten
from evaluator.models import Transcript
from evaluator.reading import ReadOptions, TranscriptError, Utterance, build_transcript, check_transcript_id, map_hint

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


class _DuplicateKey(ValueError):
    """A key written twice in one JSON object: json.loads would silently keep the last."""


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are unique: a second "role" in one message would otherwise decide, unseen,
    whose turn it is."""
    record = dict(pairs)
    if len(record) < len(pairs):
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                values = f"{_preview(seen[key])} and {_preview(value)}"
                raise _DuplicateKey(f'the key "{key}" appears twice in one object ({values}); keep one')
            seen[key] = value
    return record


def _preview(value: Any) -> str:
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= 40 else shown[:40] + "..."


def _loads(path: Path, text: str, line: int | None) -> Any:
    """json.loads with every failure a TranscriptError: syntax, depth, numbers beyond what can be stored.
    `line` is the line `text` starts on (JSONL), None for a whole .json file."""
    base = (line or 1) - 1
    try:
        return json.loads(
            text,
            parse_int=_json_int,
            parse_float=_json_float,
            parse_constant=_json_constant,
            object_pairs_hook=_json_object,
        )
    except json.JSONDecodeError as exc:
        hint = _syntax_hint(text, exc, line)
        raise TranscriptError(path, base + exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno}){hint}") from None
    except _DuplicateKey as exc:
        raise TranscriptError(path, line, str(exc)) from None
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


def _syntax_hint(text: str, exc: json.JSONDecodeError, line: int | None) -> str:
    """The likely fix for the two slips a hand-edited or converted file makes: a trailing comma, and
    JSONL saved as .json (several values), which parse_jsonl meets the other way round."""
    if text[: exc.pos].rstrip().endswith(",") and text[exc.pos : exc.pos + 1] in ("]", "}"):
        return "; remove the comma before it (JSON allows no trailing comma)"
    if exc.msg == "Extra data" and line is None:
        return "; the file holds several JSON values: put the sessions in a list [...], or name the file .jsonl"
    return ""


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


def parse_json(path: Path, text: str, options: ReadOptions) -> list[Transcript]:
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


def parse_jsonl(path: Path, text: str, options: ReadOptions) -> list[Transcript]:
    transcripts: list[Transcript] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = _loads(path, line, number)
        except TranscriptError as exc:
            if not exc.problem.startswith("invalid JSON"):
                raise
            fix = "each line must be one session object"
            if _is_one_document(text):
                fix = "the file is one JSON document spread over several lines: name it .json, or write one session per line"
            raise TranscriptError(path, number, f"{exc.problem}; {fix}") from None
        _check_json(path, record, number, "")
        transcripts.append(_session(path, record, f"{path.stem}-{len(transcripts)}", number, "", options))
    return transcripts


def _is_one_document(text: str) -> bool:
    """Whether a .jsonl file that failed line by line is a pretty-printed .json file (checked on failure only)."""
    try:
        json.loads(text, parse_constant=_json_constant)
    except (ValueError, RecursionError):
        return False
    return True


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
    source = f'the "{id_key}" key' + (f" at {where}" if where else "") if id_key else "the file name"
    check_transcript_id(path, line, str(transcript_id), source)
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
    try:
        flat = flatten(metadata)
    except ValueError as exc:
        raise TranscriptError(path, line, f"{at}{exc}") from None
    return build_transcript(path, str(transcript_id), turns, {"source_format": path.suffix.lower().lstrip("."), **flat})


def _message(path: Path, message: Any, line: int | None, where: str, options: ReadOptions) -> Utterance | None:
    """One chat message as a turn, or None for a role that is skipped (system)."""
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise TranscriptError(path, line, f'at {where}: expected an object with a "role" string and "content"')
    role = message["role"]
    if not options.is_role(role):
        raise TranscriptError(
            path,
            line,
            f'at {where}: unknown role "{role}"; known roles: {options.known_roles()}; {map_hint(role)}',
        )
    speaker = options.role(role)
    if speaker is None:
        return None
    text = _content_text(path, message.get("content"), line, where).strip()
    if not text:
        raise TranscriptError(path, line, f'at {where}: empty turn: the "{role}" message has no text')
    return Utterance(speaker, role, text, line)


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
