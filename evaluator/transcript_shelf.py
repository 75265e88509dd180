"""Transcripts kept on disk while a run judges them, so what a run holds does not grow with its sessions.

Each transcript is parsed once when its file is read and written as one JSON line (the snapshot's
line, `Transcript.model_dump_json()`) to an anonymous temporary file, which the system deletes
however the process ends. A run keeps per transcript only its facts (id, source, content hash,
metadata, blinding) and where its line is; the plan parses a transcript again from its line when it
reaches it, and drops it with the turns it judged. Every command that reads a corpus keeps it on a
shelf (the run, its dry run, the batch path, and `render`'s one session), so the planner and the
snapshot's and the manifest's helpers take a shelf only.
"""

from __future__ import annotations

import os
import tempfile
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, overload

from evaluator.models import Transcript
from evaluator.reading import ReadOptions, TranscriptError
from evaluator.transcripts import read_each


@dataclass(frozen=True, slots=True)
class TranscriptFacts:
    """What a run needs of a transcript it is not judging at the moment: the manifest's id, metadata and
    hash, the file it came from for messages, and whether its prompts may name it (--unblind)."""

    id: str
    source: str
    content_hash: str
    metadata: dict[str, Any]
    unblind: bool

    @classmethod
    def of(cls, transcript: Transcript) -> TranscriptFacts:
        return cls(transcript.id, transcript.source, transcript.content_hash(), transcript.metadata, transcript.unblind)


class _Spool:
    """The anonymous file of JSON lines shared by a shelf and the subsets taken from it; made with the
    first line, so an empty shelf holds no file."""

    def __init__(self) -> None:
        self.file: IO[bytes] | None = None
        self.size = 0
        self.loads = 0

    def add(self, line: bytes) -> int:
        if self.file is None:
            self.file = tempfile.TemporaryFile(prefix="evaluator-transcripts-")
        self.file.write(line)
        start, self.size = self.size, self.size + len(line)
        return start

    def read(self, offset: int, length: int) -> bytes:
        if self.file is None or self.file.closed:
            raise ValueError("the transcript shelf is closed")
        return os.pread(self.file.fileno(), length, offset)

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


class TranscriptShelf(Sequence[Transcript]):
    """A sequence of transcripts that parses each from the spool when it is asked for: indexing or
    iterating gives a new Transcript every time, alive only as long as its user keeps it."""

    def __init__(self, spool: _Spool, facts: list[TranscriptFacts], offsets: array[int]) -> None:
        self._spool, self.facts, self._offsets = spool, facts, offsets

    @property
    def loads(self) -> int:
        """How many times transcripts of this spool were parsed back: what keeping them off the heap costs."""
        return self._spool.loads

    def __len__(self) -> int:
        return len(self.facts)

    def __iter__(self) -> Iterator[Transcript]:
        return (self[i] for i in range(len(self)))

    @overload
    def __getitem__(self, index: int) -> Transcript: ...

    @overload
    def __getitem__(self, index: slice) -> TranscriptShelf: ...

    def __getitem__(self, index: int | slice) -> Transcript | TranscriptShelf:
        if isinstance(index, slice):
            return self.take(range(len(self))[index])
        transcript = Transcript.model_validate_json(self.line(index))
        self._spool.loads += 1
        if self.facts[index].unblind:
            transcript.unblind = True
        return transcript

    def line(self, index: int) -> bytes:
        """The transcript's JSON line as the snapshot holds it, newline included."""
        if index < 0:
            index += len(self)
        return self._spool.read(self._offsets[2 * index], self._offsets[2 * index + 1])

    def take(self, indices: Iterable[int]) -> TranscriptShelf:
        """The transcripts at `indices`, in that order, on the same spool (nothing is copied)."""
        chosen = list(indices)
        offsets = array("q")
        for i in chosen:
            offsets.extend(self._offsets[2 * i : 2 * i + 2])
        return TranscriptShelf(self._spool, [self.facts[i] for i in chosen], offsets)

    def close(self) -> None:
        """Delete the spool now rather than when the shelf is collected."""
        self._spool.close()


def shelve_all(
    paths: Sequence[Path], options: ReadOptions = ReadOptions()
) -> tuple[TranscriptShelf, list[tuple[Path, TranscriptError]]]:
    """transcripts.read_all onto a shelf: the same transcripts in the same order and the same files set
    aside, each transcript parsed once here and kept as its line and its facts."""
    failures: list[tuple[Path, TranscriptError]] = []

    def read() -> Iterator[Transcript]:
        for path, read in read_each(paths, options):
            if isinstance(read, TranscriptError):
                failures.append((path, read))
            else:
                yield from read

    return shelve(read()), failures


def shelve(transcripts: Iterable[Transcript]) -> TranscriptShelf:
    """Transcripts already read put on a shelf, each kept as its line and its facts from here on."""
    spool = _Spool()
    facts: list[TranscriptFacts] = []
    offsets = array("q")
    try:
        for transcript in transcripts:
            line = (transcript.model_dump_json() + "\n").encode()
            offsets.extend((spool.add(line), len(line)))
            facts.append(TranscriptFacts.of(transcript))
        spool.flush()
    except BaseException:
        spool.close()
        raise
    return TranscriptShelf(spool, facts, offsets)


def facts_of(transcripts: Sequence[Transcript]) -> Sequence[TranscriptFacts]:
    """The facts of every transcript, as the shelf keeps them (none is parsed)."""
    return _shelf(transcripts).facts


def json_lines(transcripts: Sequence[Transcript]) -> Iterator[str]:
    """One `model_dump_json()` line per transcript, in order, copied from the shelf's spool."""
    shelf = _shelf(transcripts)
    return (shelf.line(i).decode() for i in range(len(shelf)))


def _shelf(transcripts: Sequence[Transcript]) -> TranscriptShelf:
    if not isinstance(transcripts, TranscriptShelf):
        raise TypeError(f"expected transcripts on a TranscriptShelf (shelve_all or shelve), got {type(transcripts)}")
    return transcripts
