"""Read therapy transcripts (plain text, JSON, JSONL, CSV) into `Transcript` objects.

Formats:

* ``.txt`` - one turn per paragraph, ``Speaker: text``; a turn may span several lines, and a line
  that starts with a known label starts a new turn even without a blank line before it.
  Transcript id = file stem.
* ``.json`` - one session object ``{"session_id", "messages": [{"role", "content"}], ...}`` or a
  list of them; ``.jsonl`` - one session object per line. Keys other than the id and the messages
  go to metadata, nested objects flattened to ``a.b`` keys. Without an id the transcript is ``<stem>`` (single object) or ``<stem>-<n>``
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

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from evaluator.files import InputFileError, check_text, read_text
from evaluator.metadata import MetadataReader
from evaluator.models import Transcript
from evaluator.reading import (
    ReadOptions,
    TranscriptError,
    Utterance,
    build_transcript,
    check_transcript_id,
    unknown_speaker,
)
from evaluator.transcript_csv import parse_csv
from evaluator.transcript_json import parse_json, parse_jsonl

SUPPORTED_SUFFIXES = (".txt", ".json", ".jsonl", ".csv")
# A paragraph opener that looks like a speaker label: up to three words, then a colon. A timestamp
# before it ("[00:01:23] Therapist:", "01:23 Therapist:", as transcription tools write them) is dropped,
# and Markdown bold around it ("**Therapist:**", "**Therapist**:", as chat models write them) is allowed.
_TIMESTAMP = r"(?:\[\s*{t}\s*\]|\(\s*{t}\s*\)|{t})".format(t=r"\d{1,2}(?::\d{2}){1,2}(?:[.,]\d{1,3})?")
_LABEL = re.compile(
    rf"^\s*(?:{_TIMESTAMP}\s+)?(?P<bold>\*\*)?(?P<label>[^\W\d_][\w'’.-]*(?: [\w'’.-]+){{0,2}})"
    r"\s*(?(bold)(?:\*\*\s*:|:\s*\*\*)|:)(?P<rest>.*)$"
)
_LINE_BREAK = re.compile(r"\r\n?|\n")
_LINE_BOM = re.compile("^\ufeff", re.MULTILINE)


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
    """Read one file; a JSON, JSONL or CSV file may hold several transcripts. Metadata from the
    options' sidecar and path pattern is merged in (see evaluator.metadata), and disagreements logged."""
    reader = options.metadata.open()
    transcripts = _read_file(Path(path), options, reader)
    reader.warn(all_read=False)
    return transcripts


def _read_file(path: Path, options: ReadOptions, reader: MetadataReader) -> list[Transcript]:
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
        transcripts = parse_json(path, text, options)
    elif suffix == ".jsonl":
        transcripts = parse_jsonl(path, text, options)
    else:
        transcripts = parse_csv(path, text, options)
    _check_unique_ids(path, transcripts)
    path_fields = reader.path_fields(path)
    if path_fields is None:
        raise TranscriptError(path, None, reader.mismatch())
    return [reader.apply(t, path_fields, options.unblind) for t in transcripts]


def read_all(
    paths: Sequence[Path], options: ReadOptions = ReadOptions()
) -> tuple[list[Transcript], list[tuple[Path, TranscriptError]]]:
    """Read every file under `paths`, setting bad files aside so one broken file does not stop a run.

    Paths are expanded with `discover`, whose errors (a path that does not exist) are raised. A file
    whose transcript id was already read from an earlier file is set aside as a whole, and so is a file
    whose path does not match the metadata path pattern. A sidecar that cannot be used raises
    MetadataError before any file is read.
    """
    transcripts: list[Transcript] = []
    failures: list[tuple[Path, TranscriptError]] = []
    for path, read in read_each(paths, options):
        if isinstance(read, TranscriptError):
            failures.append((path, read))
        else:
            transcripts.extend(read)
    return transcripts, failures


def read_each(
    paths: Sequence[Path], options: ReadOptions = ReadOptions()
) -> Iterator[tuple[Path, list[Transcript] | TranscriptError]]:
    """read_all one file at a time: each file's transcripts, or the error that sets it aside, so a
    caller can keep what it reads where it likes (transcript_shelf keeps them on disk)."""
    sources: dict[str, str] = {}
    metadata = options.metadata
    reader = replace(metadata, roots=(*metadata.roots, *map(Path, paths))).open()
    for path in discover(paths):
        try:
            read = _read_file(Path(path), options, reader)
            for transcript in read:
                if transcript.id in sources:
                    raise TranscriptError(
                        path, None, f'transcript id "{transcript.id}" is also in {sources[transcript.id]}; rename one'
                    )
        except TranscriptError as error:
            yield path, error
            continue
        sources.update((t.id, t.source) for t in read)
        yield path, read
    reader.warn(all_read=True)


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
    if "\r" in text and path.suffix.lower() != ".csv":  # CSV cells keep their own line ends
        text = _LINE_BREAK.sub("\n", text)  # CRLF (Windows) and CR alone (old Mac) end lines too
    if "\ufeff" in text:  # files joined with `cat` keep each one's byte order mark at the start of a line
        text = _LINE_BOM.sub("", text)
    return text


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
    check_transcript_id(path, None, path.stem, "the file name")
    turns = [_text_turn(path, block, options) for block in _text_blocks(text, options)]
    return build_transcript(path, path.stem, turns, {"source_format": "text"})


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


def _text_turn(path: Path, block: list[tuple[int, str]], options: ReadOptions) -> Utterance:
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
        raise TranscriptError(path, number, unknown_speaker(label, options))
    body = "\n".join([match["rest"].strip(), *(line.strip() for _, line in block[1:])]).strip()
    if not body:
        raise TranscriptError(path, number, f'empty turn: "{label}:" has no text; write the turn or delete the label')
    return Utterance(speaker, label, body, number)
