"""The transcript shelf a run keeps instead of its transcripts: the same transcripts, the same files set
aside, the same snapshot bytes, each transcript parsed only when it is reached."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from evaluator.metadata import MetadataSources
from evaluator.reading import ReadOptions
from evaluator.store import TRANSCRIPTS, write_transcripts
from evaluator.transcript_shelf import TranscriptFacts, TranscriptShelf, facts_of, shelve_all
from evaluator.transcript_shelf import shelve as shelve_list
from evaluator.transcripts import read_all
from tests.conftest import IGNORING_SEED, SLOWING_SEED


@pytest.fixture
def inputs(write) -> Path:
    """Three formats, nested metadata, a sidecar field, text that needs escaping, and two bad files."""
    write("in/a.txt", IGNORING_SEED.read_text())
    write("in/b.txt", "Doctor: Hi.\n")
    records = [
        {"session_id": "j1", "site": {"name": "Zürich", "n": 3}, "messages": [
            {"role": "user", "content": 'I said "slow down" \\ {{ please }}'},
            {"role": "assistant", "content": "Okay.\nLet us pause 🙂"},
        ]},
        {"session_id": "j2", "condition": "b", "score": 1.5, "messages": [{"role": "assistant", "content": "Hi."}]},
    ]  # fmt: skip
    write("in/c.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    write("in/d/a.txt", SLOWING_SEED.read_text())  # id "a" again: set aside
    write(
        "in/e.csv",
        "transcript_id,utterance_id,interlocutor,utterance_text,arm\nc1,0,client,Hm,x\nc1,1,therapist,Yes,x\n",
    )
    return write("meta.csv", "transcript_id,cohort\nj2,late\n").parent


@pytest.fixture
def shelve():
    """shelve_all, each shelf closed after the test (its spool is an open file)."""
    shelves: list[TranscriptShelf] = []

    def _shelve(paths: list[Path], options: ReadOptions = ReadOptions()):
        shelf, failures = shelve_all(paths, options)
        shelves.append(shelf)
        return shelf, failures

    yield _shelve
    for shelf in shelves:
        shelf.close()


def _options(root: Path, unblind: bool = False) -> ReadOptions:
    return ReadOptions(metadata=MetadataSources(sidecar=root / "meta.csv"), unblind=unblind)


@pytest.mark.parametrize("unblind", [False, True])
def test_a_shelf_holds_what_read_all_reads_and_sets_aside_the_same_files(inputs: Path, shelve, unblind: bool) -> None:
    listed, bad = read_all([inputs / "in"], _options(inputs, unblind))
    shelf, shelved_bad = shelve([inputs / "in"], _options(inputs, unblind))
    assert len(listed) == len(shelf) == 4
    assert list(shelf) == listed  # ids, sources, turns, metadata and the unblind flag
    assert [(p, str(e)) for p, e in shelved_bad] == [(p, str(e)) for p, e in bad] and len(bad) == 2
    assert shelf.facts == [TranscriptFacts.of(t) for t in listed]
    assert facts_of(shelf) == shelf.facts and [f.id for f in shelf.facts] == [t.id for t in listed]
    assert shelf[-1] == listed[-1] and list(shelf[1:3]) == listed[1:3]


def test_a_shelf_parses_a_transcript_each_time_it_is_asked_for_and_only_then(inputs: Path, shelve) -> None:
    shelf, _ = shelve([inputs / "in"], _options(inputs))
    assert shelf.loads == 0
    first, again = shelf[0], shelf[0]
    assert first == again and first is not again and shelf.loads == 2
    chosen = shelf.take([3, 1])
    assert isinstance(chosen, TranscriptShelf) and shelf.loads == 2
    assert [f.id for f in chosen.facts] == [shelf.facts[3].id, shelf.facts[1].id]
    assert [t.id for t in chosen] == [f.id for f in chosen.facts] and shelf.loads == 4


def test_the_snapshot_of_a_shelf_is_byte_for_byte_what_the_transcripts_dump(
    inputs: Path, tmp_path: Path, shelve
) -> None:
    listed, _ = read_all([inputs / "in"], _options(inputs, unblind=True))
    shelf, _ = shelve([inputs / "in"], _options(inputs, unblind=True))
    write_transcripts(tmp_path, shelf.take([3, 0, 2]))
    expected = "".join(listed[i].model_dump_json() + "\n" for i in (3, 0, 2))
    assert (tmp_path / TRANSCRIPTS).read_bytes() == expected.encode()
    assert shelf.loads == 0


def test_transcripts_already_read_go_on_a_shelf_as_shelve_all_puts_them(inputs: Path, shelve) -> None:
    """`render` reads one file as `validate` does and plans on a shelf of it; a shelf is what the run's
    stages take (the snapshot and manifest helpers refuse a plain list rather than keep a second road)."""
    listed, _ = read_all([inputs / "in"], _options(inputs, unblind=True))
    read, _ = shelve([inputs / "in"], _options(inputs, unblind=True))
    shelf = shelve_list(listed)
    try:
        assert list(shelf) == listed and shelf.facts == read.facts
        assert [shelf.line(i) for i in range(len(shelf))] == [read.line(i) for i in range(len(read))]
        with pytest.raises(TypeError, match="TranscriptShelf"):
            facts_of(listed)
    finally:
        shelf.close()


def test_a_closed_shelf_leaves_no_file_behind(
    inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shelve, write
) -> None:
    """The spool is an anonymous file: nothing appears in the temporary folder, even while it is open;
    a shelf of no transcripts (a run that stops: nothing to evaluate) holds no file at all."""
    spool_dir = tmp_path / "tmp"
    spool_dir.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool_dir))
    monkeypatch.setattr("tempfile.tempdir", None)
    shelf, _ = shelve([inputs / "in"], _options(inputs))
    assert list(spool_dir.iterdir()) == [] and shelf[0].id == "a"
    open_files = len(os.listdir("/proc/self/fd"))
    empty, failures = shelve_all([write("empty.jsonl", "")])
    assert len(empty) == 0 and len(failures) == 1 and len(os.listdir("/proc/self/fd")) == open_files
    shelf.close()
    with pytest.raises(ValueError):
        shelf[0]
