"""Metadata per transcript (condition, therapist model, site...), from three sources, so every result
can be grouped by it:

1. the transcript record itself: keys of a JSON/JSONL session other than the id and the messages,
   nested objects flattened to ``a.b`` (lists stay lists), and CSV columns constant within a session;
2. the file's path, through a pattern such as ``{model}/{condition}/*.jsonl`` (``--meta-from-path``);
3. a sidecar CSV with one row per transcript, keyed by a ``transcript_id`` (or ``id``) column
   (``--metadata FILE.csv``).

When sources disagree the more deliberate one wins: sidecar over path over record; each disagreement
is reported as a warning naming the field, the transcripts and both values. Warnings go to the
``evaluator`` logger, which prints them on stderr when nothing else is configured.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePath
from typing import Any

import regex

from evaluator.errors import EvaluatorError
from evaluator.files import InputFileError, check_text, csv_rows, located, read_text
from evaluator.models import Transcript

LOGGER = logging.getLogger("evaluator")
SIDECAR_OPTION = "--metadata"
PATH_OPTION = "--meta-from-path"
ID_COLUMNS = ("transcript_id", "id")
SIDECAR, PATH, RECORD = "the sidecar", "the path", "the transcript record"
MATCH_TIMEOUT_S = 1.0
_SHOWN = 5  # examples named in one warning; the rest are counted


class MetadataError(EvaluatorError, ValueError):
    """A metadata source that cannot be used; names the file (and line) or the option, and the fix."""


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects become dotted keys ({"arm": {"model": "x"}} -> {"arm.model": "x"}), so each fact
    is one column in exports and one `--by` field; lists stay lists, an empty object stays {}. Raises
    ValueError for a dotted key that a nested one also produces, since one would silently hide the other."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        items = flatten(value, f"{name}.") if isinstance(value, dict) and value else {name: value}
        for item, item_value in items.items():
            if item in flat:
                raise ValueError(f'the field "{item}" is given twice, once nested and once with a dot; keep one')
            flat[item] = item_value
    return flat


def value_text(value: Any) -> str:
    """How a value compares across sources and reads in a message: strings as they are, the rest as JSON
    (a CSV "30" and a JSON 30 are the same fact)."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


# --- path patterns -------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}|[{}]|\*|\?")
_FIELD_NAME = re.compile(r"[A-Za-z_][\w.-]*")


@dataclass(frozen=True)
class PathPattern:
    """`{field}` takes one piece of a path (no "/"), `*` any run of characters within a folder or file
    name, `?` one character; the rest is literal. The pattern matches the end of a path (as many
    folders as it names), so '{model}/*.jsonl' reads corpus/batch1/gpt/a.jsonl as model=gpt; the
    reader gives it the path below the input folder, so it never reaches above what was named."""

    text: str

    @cached_property
    def _compiled(self) -> tuple[regex.Pattern[str], tuple[str, ...]]:
        parts: list[str] = []
        fields: list[str] = []
        at, loose = 0, None  # loose: the variable-width token just before, with no literal text since
        for match in _PLACEHOLDER.finditer(self.text):
            literal = self.text[at : match.start()]
            parts.append(re.escape(literal))
            loose = None if literal else loose
            at = match.end()
            token, name = match.group(), match.group(1)
            if token == "?":
                parts.append("[^/]")
                continue
            if token in "{}":
                raise self._error(f'has an unmatched "{token}"; write fields as {{name}}')
            if loose is not None:
                raise self._error(
                    f"has {loose} and {token} with no text between them, so where one ends is a guess; "
                    "separate them with text such as _ or /"
                )
            loose = token
            if token == "*":
                parts.append("[^/]*")
            elif not _FIELD_NAME.fullmatch(name):
                raise self._error(f'field "{{{name}}}" is not a name; use letters, digits, "_", "." or "-"')
            elif name in fields:
                raise self._error(f'names the field "{name}" twice; name each once')
            else:
                parts.append(f"(?P<f{len(fields)}>[^/]+?)")
                fields.append(name)
        parts.append(re.escape(self.text[at:]))
        if not fields:
            raise self._error("names no field; write one as {name}, e.g. '{model}/{condition}/*.jsonl'")
        return regex.compile("(?:^|/)" + "".join(parts).lstrip("/") + "$"), tuple(fields)

    @property
    def fields(self) -> tuple[str, ...]:
        return self._compiled[1]

    def check(self) -> None:
        """Raise MetadataError now for a pattern that could never be used."""
        self._compiled

    def match(self, path: str | PurePath) -> dict[str, str] | None:
        """The fields read from the end of `path`, or None when it does not match. The search is
        time-bounded: many fields in one long file name could otherwise backtrack for minutes."""
        compiled, fields = self._compiled
        try:
            found = compiled.search(PurePath(path).as_posix(), timeout=MATCH_TIMEOUT_S)
        except TimeoutError:
            raise self._error(
                f"took more than {MATCH_TIMEOUT_S:g} s on {path}; use fewer fields per file or folder name"
            ) from None
        if found is None:
            return None
        return {name: found[f"f{n}"] for n, name in enumerate(fields)}

    def mismatch(self) -> str:
        return (
            f"the path does not match {PATH_OPTION} '{self.text}', so its metadata cannot be read (the pattern "
            "matches the end of the path below the folder named as input); move the file or fix the pattern"
        )

    def _error(self, problem: str) -> MetadataError:
        return MetadataError(f"{PATH_OPTION} '{self.text}' {problem}")


# --- the sidecar CSV -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sidecar:
    """One row per transcript id; an empty cell sets nothing, so a blank never hides another source's value."""

    path: Path
    rows: dict[str, dict[str, str]]
    lines: dict[str, int]


def read_sidecar(path: Path) -> Sidecar:
    """Read a sidecar CSV boundedly; every problem is a MetadataError naming the file and line."""
    try:
        text = read_text(path)
        check_text(path, text)
    except InputFileError as exc:
        raise MetadataError(f"{SIDECAR_OPTION} {exc}") from None
    records = csv_rows(path, text, set(ID_COLUMNS))
    try:
        header = [name.strip() for name in next(records, (1, []))[1]]
        id_column = _id_column(path, header)
        rows: dict[str, dict[str, str]] = {}
        lines: dict[str, int] = {}
        for start, values in records:
            transcript_id, fields = _sidecar_row(path, start, header, values, id_column)
            if transcript_id in rows:
                raise _at(
                    path,
                    start,
                    f'transcript id "{transcript_id}" is also on line {lines[transcript_id]}; keep one row per transcript',
                )
            rows[transcript_id], lines[transcript_id] = fields, start
    except InputFileError as exc:
        raise _at(path, exc.line, exc.problem) from None
    return Sidecar(path, rows, lines)


def _at(path: Path, line: int | None, problem: str) -> MetadataError:
    return MetadataError(f"{SIDECAR_OPTION} {path}: {located(line, problem)}")


def _id_column(path: Path, header: list[str]) -> str:
    if not any(header):
        raise _at(path, 1, "no header row; the first row names the columns, one of them transcript_id")
    for name in header:
        if not name:
            raise _at(path, 1, "a column has no name; name every column in the header")
        if header.count(name) > 1:
            raise _at(path, 1, f'the column "{name}" appears twice; name each column once')
    column = next((c for c in ID_COLUMNS if c in header), None)
    if column is None:
        raise _at(
            path,
            1,
            f"no transcript_id or id column (columns found: {', '.join(header)}); name the column of transcript ids transcript_id",
        )
    return column


def _sidecar_row(
    path: Path, line: int, header: list[str], values: list[str], id_column: str
) -> tuple[str, dict[str, str]]:
    if len(values) != len(header):
        raise _at(
            path, line, f"row has {len(values)} fields but the header has {len(header)}; check its quoting and commas"
        )
    row = dict(zip(header, values))
    transcript_id = row.pop(id_column).strip()
    if not transcript_id:
        raise _at(
            path, line, f'the "{id_column}" column is empty; every row needs the id of the transcript it describes'
        )
    return transcript_id, {name: value.strip() for name, value in row.items() if value.strip()}


# --- combining the sources -----------------------------------------------------------------------


@dataclass(frozen=True)
class MetadataSources:
    """Where metadata comes from besides the record: a sidecar CSV and a path pattern (both optional)."""

    sidecar: Path | None = None
    path_pattern: str | None = None
    roots: tuple[Path, ...] = ()
    """The transcript files and folders as named: a file under a named folder has its path read relative
    to that folder, so the pattern never reaches above it; a file named directly is read as named."""

    @property
    def pattern(self) -> PathPattern | None:
        return PathPattern(self.path_pattern) if self.path_pattern else None

    def check(self) -> None:
        """Raise MetadataError for a pattern or sidecar that cannot be used, before anything is read."""
        if self.pattern is not None:
            self.pattern.check()
        if self.sidecar is not None:
            read_sidecar(self.sidecar)

    def open(self) -> MetadataReader:
        sidecar = read_sidecar(self.sidecar) if self.sidecar is not None else None
        return MetadataReader(self.pattern, sidecar, tuple(os.path.abspath(root) for root in self.roots))


@dataclass
class MetadataReader:
    """Applies the sources to transcripts as files are read, and remembers what to warn about once."""

    pattern: PathPattern | None
    sidecar: Sidecar | None
    roots: tuple[str, ...] = ()
    seen: set[str] = field(default_factory=set)
    conflicts: dict[tuple[str, str, str], list[tuple[str, str, str]]] = field(default_factory=dict)

    def path_fields(self, path: str | PurePath) -> dict[str, str] | None:
        """The fields the pattern reads from `path` ({} without a pattern); None when it does not match."""
        if self.pattern is None:
            return {}
        absolute = os.path.abspath(path)
        inside = [root for root in self.roots if absolute.startswith(root.rstrip(os.sep) + os.sep)]
        return self.pattern.match(os.path.relpath(absolute, max(inside, key=len)) if inside else path)

    def mismatch(self) -> str:
        return self.pattern.mismatch() if self.pattern is not None else "the path matches no metadata pattern"

    def apply(self, transcript: Transcript, path_fields: Mapping[str, str], unblind: bool) -> Transcript:
        """The transcript with every source's fields merged in precedence order (sidecar > path > record)."""
        self.seen.add(transcript.id)
        merged = dict(transcript.metadata)
        origin = dict.fromkeys(merged, RECORD)
        sidecar = self.sidecar.rows.get(transcript.id, {}) if self.sidecar is not None else {}
        for source, fields in ((PATH, path_fields), (SIDECAR, sidecar)):
            for name, value in fields.items():
                if name in merged and value_text(merged[name]) != value_text(value):
                    self.conflicts.setdefault((name, source, origin[name]), []).append(
                        (transcript.id, value_text(value), value_text(merged[name]))
                    )
                if name not in merged or value_text(merged[name]) != value_text(value):
                    merged[name], origin[name] = value, source
        return transcript.model_copy(update={"metadata": merged, "unblind": unblind})

    def warn(self, all_read: bool) -> None:
        """Log every disagreement between sources, and (when every file was read) sidecar ids that match
        no transcript: usually a typo, or a file that was set aside."""
        for (name, winner, loser), cases in self.conflicts.items():
            examples = "; ".join(f'{tid}: "{new}" over "{old}"' for tid, new, old in cases[:_SHOWN])
            LOGGER.warning(
                "metadata field %r: %s and %s disagree for %d transcript(s) (%s%s); %s wins",
                name,
                winner,
                loser,
                len(cases),
                examples,
                _more(cases),
                _name(winner, self),
            )
        if all_read and self.sidecar is not None:
            unmatched = [tid for tid in self.sidecar.rows if tid not in self.seen]
            if unmatched:
                LOGGER.warning(
                    "%s %s: %d id(s) match no transcript read: %s%s",
                    SIDECAR_OPTION,
                    self.sidecar.path,
                    len(unmatched),
                    ", ".join(unmatched[: _SHOWN * 4]),
                    _more(unmatched, _SHOWN * 4),
                )
        self.conflicts.clear()


def _more(items: Iterable[Any], shown: int = _SHOWN) -> str:
    extra = len(list(items)) - shown
    return f" and {extra} more" if extra > 0 else ""


def _name(source: str, reader: MetadataReader) -> str:
    if source == SIDECAR and reader.sidecar is not None:
        return f"the sidecar ({reader.sidecar.path})"
    if source == PATH and reader.pattern is not None:
        return f"the path ({PATH_OPTION} '{reader.pattern.text}')"
    return source
