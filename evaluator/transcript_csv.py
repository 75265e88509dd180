"""CSV transcripts: one utterance per row (AnnoMI layout by default), grouped by the transcript column
and ordered by the order column, which must be a number on every row: an order is never guessed."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

from evaluator.files import InputFileError, csv_rows
from evaluator.models import Transcript
from evaluator.reading import (
    CSV_COLUMN_OPTION,
    ReadOptions,
    TranscriptError,
    Utterance,
    build_transcript,
    check_transcript_id,
    unknown_speaker,
)


class _Row(NamedTuple):
    line: int
    values: dict[str, str]


def parse_csv(path: Path, text: str, options: ReadOptions) -> list[Transcript]:
    columns = options.csv_columns
    header, rows = _csv_rows(path, text, list(columns.named().values()))
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
        if transcript_id not in groups:
            where = f'the "{columns.transcript}" column' if columns.transcript else "the file name"
            check_transcript_id(path, row.line, transcript_id, where)
        groups.setdefault(transcript_id, []).append(row)
    used = set(columns.named().values())
    return [
        build_transcript(
            path,
            transcript_id,
            [_csv_turn(path, row, options) for row in _sorted_rows(path, group, columns.order)],
            {"source_format": "csv", **_constant_columns(group, [c for c in header if c not in used])},
        )
        for transcript_id, group in groups.items()
    ]


def _csv_rows(path: Path, text: str, wanted: list[str]) -> tuple[list[str], list[_Row]]:
    """Header and rows with their starting line (header = line 1); ragged rows, a quote left open and a
    column named twice are refused, not guessed. The delimiter is a comma, or the semicolon or tab of a
    header that names the wanted columns only when split on it (Excel writes semicolons in many locales)."""
    records = csv_rows(path, text, {name.casefold() for name in wanted})
    rows: list[_Row] = []
    try:
        _, names = next(records)
        header = _matched(wanted, [name.strip() for name in names])
        _check_header(path, header)
        for start, values in records:
            if len(values) != len(header):
                raise TranscriptError(
                    path,
                    start,
                    f"row has {len(values)} fields but the header has {len(header)}; check its quoting and commas",
                )
            rows.append(_Row(start, dict(zip(header, values))))
    except InputFileError as exc:
        raise TranscriptError(path, exc.line, exc.problem) from None
    if not rows:
        raise TranscriptError(path, None, "the CSV has a header but no rows; add one row per utterance")
    return header, rows


def _matched(wanted: list[str], header: list[str]) -> list[str]:
    """The header with a wanted column it spells in another case ("Transcript_ID") named as wanted, where
    exactly one column matches and none is spelt exactly."""
    names = list(header)
    for name in (n for n in wanted if n not in header):
        found = [i for i, column in enumerate(header) if column.casefold() == name.casefold()]
        if len(found) == 1:
            names[found[0]] = name
    return names


def _check_header(path: Path, header: list[str]) -> None:
    if not any(header):
        raise TranscriptError(path, 1, "the first line is empty; it must be the header naming the columns")
    repeated = sorted({name for name in header if name and header.count(name) > 1})
    if repeated:
        raise TranscriptError(
            path, 1, f"the header names {', '.join(repeated)} more than once; rename or delete the extra column"
        )


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


def _csv_turn(path: Path, row: _Row, options: ReadOptions) -> Utterance:
    columns = options.csv_columns
    label = row.values[columns.speaker].strip()
    speaker = options.speaker(label)
    if speaker is None:
        raise TranscriptError(path, row.line, f'column "{columns.speaker}": ' + unknown_speaker(label, options))
    text = row.values[columns.text].strip()
    if not text:
        raise TranscriptError(path, row.line, f'empty turn: the "{columns.text}" column is empty for this {label} row')
    return Utterance(speaker, label, text, row.line)


def _constant_columns(rows: list[_Row], candidates: list[str]) -> dict[str, str]:
    """Session-level facts (topic, quality) repeat on every row; per-utterance columns vary and are dropped."""
    return {c: rows[0].values[c] for c in candidates if all(row.values[c] == rows[0].values[c] for row in rows)}
