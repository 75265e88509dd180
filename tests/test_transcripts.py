"""Reading transcripts: every supported format, and an actionable error for every kind of bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from evaluator.reading import DEFAULT_ALIASES, CsvColumns, ReadOptions, TranscriptError
from evaluator.transcripts import SUPPORTED_SUFFIXES, discover, read_all, read_transcripts
from tests.test_files import bounded

SEEDS = Path(__file__).resolve().parent.parent / "transcripts"
SEED_000 = SEEDS / "000_76910fef4a2e608d.txt"
SEED_004 = SEEDS / "004_d8361cbb940345fc.txt"

ANNOMI_HEADER = "mi_quality,transcript_id,topic,utterance_id,interlocutor,timestamp,utterance_text\n"


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def read_one(path: Path, options: ReadOptions = ReadOptions()):
    transcripts = read_transcripts(path, options)
    assert len(transcripts) == 1
    return transcripts[0]


def error_of(path: Path, options: ReadOptions = ReadOptions()) -> TranscriptError:
    with pytest.raises(TranscriptError) as caught:
        read_transcripts(path, options)
    return caught.value


def speakers(transcript) -> list[str]:
    return [turn.speaker for turn in transcript.turns]


# --- bundled seeds -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [SEED_000, SEED_004])
def test_seed_transcripts_parse_and_alternate(seed: Path) -> None:
    transcript = read_one(seed)
    assert transcript.id == seed.stem
    assert transcript.source == str(seed)
    assert transcript.metadata == {"source_format": "text"}
    assert len(transcript.turns) == 51
    assert [t.index for t in transcript.turns] == list(range(51))
    assert speakers(transcript) == ["patient", "therapist"] * 25 + ["patient"]
    assert [t.line for t in transcript.turns] == list(range(1, 102, 2))
    assert len(transcript.therapist_turns()) == 25


def test_seed_000_first_turns_are_faithful() -> None:
    first, second = read_one(SEED_000).turns[:2]
    assert first.label == "Patient"
    assert first.text.startswith("I've been feeling really overwhelmed by sadness")
    assert first.text.endswith("hard to even say this out loud.")
    assert second.label == "Therapist"
    assert second.text.startswith("Can you tell me more about what happens")


# --- plain text ----------------------------------------------------------------------------------


def test_multi_line_turn_keeps_its_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.txt",
        "Patient: I feel low.\nIt started in May.\n\nTherapist:\nTell me more\n  about May.\n",
    )
    transcript = read_one(path)
    assert [(t.index, t.speaker, t.text, t.line) for t in transcript.turns] == [
        (0, "patient", "I feel low.\nIt started in May.", 1),
        (1, "therapist", "Tell me more\nabout May.", 4),
    ]


def test_aliases_are_case_insensitive_and_keep_the_written_label(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.txt",
        "Client: Hi.\n\nCounsellor: Hello.\n\nP: Well.\n\nT: Go on.\n\nCOUNSELOR: Yes.\n\nuser: ok\n",
    )
    transcript = read_one(path)
    assert [(t.label, t.speaker) for t in transcript.turns] == [
        ("Client", "patient"),
        ("Counsellor", "therapist"),
        ("P", "patient"),
        ("T", "therapist"),
        ("COUNSELOR", "therapist"),
        ("user", "patient"),
    ]


def test_known_label_inside_a_paragraph_starts_a_new_turn(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.txt",
        "Patient: I said: no.\nNote: not a label.\nTherapist: Why no?\nClient: Because.\n",
    )
    transcript = read_one(path)
    assert [(t.speaker, t.text, t.line) for t in transcript.turns] == [
        ("patient", "I said: no.\nNote: not a label.", 1),
        ("therapist", "Why no?", 3),
        ("patient", "Because.", 4),
    ]


def test_crlf_and_bom_are_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "s.txt", "\ufeffPatient: Hi.\r\n\r\nTherapist: Hello.\r\n".encode())
    transcript = read_one(path)
    assert [(t.text, t.line) for t in transcript.turns] == [("Hi.", 1), ("Hello.", 3)]


def test_custom_speaker_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "s.txt", "Doctor: How are you?\n\nMr Smith: Fine.\n\nNarrator: He leaves.\n")
    options = ReadOptions().with_aliases({"Doctor": "therapist", "mr smith": "Patient", "Narrator:": "other"})
    transcript = read_one(path, options)
    assert [(t.label, t.speaker) for t in transcript.turns] == [
        ("Doctor", "therapist"),
        ("Mr Smith", "patient"),
        ("Narrator", "other"),
    ]


def test_user_mapping_overrides_a_default_alias(tmp_path: Path) -> None:
    path = write(tmp_path, "s.txt", "Assistant: I am the patient here.\n\nUser: And I the therapist.\n")
    options = ReadOptions().with_aliases({"assistant": "patient", "USER": "therapist"})
    assert speakers(read_one(path, options)) == ["patient", "therapist"]
    assert list(ReadOptions().speaker_aliases) == list(DEFAULT_ALIASES)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"Doctor": "doc"}, "cannot map 'Doctor' to 'doc': the role must be one of therapist, patient, other"),
        ({" : ": "therapist"}, "cannot map ' : ' to 'therapist': the speaker label is empty"),
    ],
)
def test_bad_speaker_mapping_is_refused(mapping: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        ReadOptions().with_aliases(mapping)
    assert str(caught.value) == message


# --- JSON and JSONL ------------------------------------------------------------------------------


def test_json_single_session(tmp_path: Path) -> None:
    session = {
        "session_id": "s-1",
        "model": "m",
        "messages": [
            {"role": "system", "content": "You are a therapist."},
            {"role": "user", "content": "I feel low."},
            {"role": "assistant", "content": "Tell me more."},
        ],
    }
    transcript = read_one(write(tmp_path, "one.json", json.dumps(session)))
    assert transcript.id == "s-1"
    assert transcript.metadata == {"source_format": "json", "model": "m"}
    assert [(t.index, t.speaker, t.label, t.text, t.line) for t in transcript.turns] == [
        (0, "patient", "user", "I feel low.", None),
        (1, "therapist", "assistant", "Tell me more.", None),
    ]


def test_json_single_session_without_id_uses_the_stem(tmp_path: Path) -> None:
    session = {"messages": [{"role": "assistant", "content": "Hello."}]}
    assert read_one(write(tmp_path, "alone.json", json.dumps(session))).id == "alone"


def test_json_list_of_sessions(tmp_path: Path) -> None:
    sessions = [
        {"id": 7, "messages": [{"role": "assistant", "content": "Hi."}]},
        {"messages": [{"role": "user", "content": "Hey."}, {"role": "therapist", "content": "Welcome."}]},
    ]
    transcripts = read_transcripts(write(tmp_path, "many.json", json.dumps(sessions)))
    assert [t.id for t in transcripts] == ["7", "many-1"]
    assert speakers(transcripts[1]) == ["patient", "therapist"]


def test_jsonl_skips_system_and_blank_lines_and_numbers_records(tmp_path: Path) -> None:
    lines = [
        json.dumps({"messages": [{"role": "system", "content": "x"}, {"role": "assistant", "content": "A"}]}),
        "",
        json.dumps(
            {
                "session_id": "named",
                "messages": [{"role": "user", "content": "B"}, {"role": "assistant", "content": "C"}],
            }
        ),
        json.dumps({"messages": [{"role": "assistant", "content": "D"}], "topic": "sleep"}),
    ]
    transcripts = read_transcripts(write(tmp_path, "chats.jsonl", "\n".join(lines) + "\n"))
    assert [t.id for t in transcripts] == ["chats-0", "named", "chats-2"]
    assert [(t.index, t.text, t.line) for t in transcripts[0].turns] == [(0, "A", 1)]
    assert [(t.index, t.text, t.line) for t in transcripts[1].turns] == [(0, "B", 3), (1, "C", 3)]
    assert transcripts[2].metadata == {"source_format": "jsonl", "topic": "sleep"}


def test_content_part_lists_are_joined(tmp_path: Path) -> None:
    session = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "First."}, {"type": "text", "text": "Second."}]},
            {"role": "assistant", "content": "Noted."},
        ]
    }
    transcript = read_one(write(tmp_path, "parts.json", json.dumps(session)))
    assert transcript.turns[0].text == "First.\nSecond."


def test_custom_mapping_applies_to_json_roles(tmp_path: Path) -> None:
    session = {"messages": [{"role": "user", "content": "I will ask."}, {"role": "assistant", "content": "I answer."}]}
    options = ReadOptions().with_aliases({"user": "therapist", "assistant": "patient"})
    assert speakers(read_one(write(tmp_path, "swap.json", json.dumps(session)), options)) == ["therapist", "patient"]


# --- CSV -----------------------------------------------------------------------------------------


def test_csv_annomi_layout(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "annomi.csv",
        ANNOMI_HEADER
        + "high,5,smoking,1,client,00:00:05,I smoke.\n"
        + "high,5,smoking,0,therapist,00:00:01,Hello.\n"
        + 'low,2,alcohol,10,client,00:01:00,"Later, much later."\n'
        + "high,5,smoking,2,client,00:00:09,A lot.\n"
        + "low,2,alcohol,9,therapist,00:00:50,How much?\n"
        + "high,5,smoking,3,therapist,00:00:12,Tell me more.\n",
    )
    first, second = read_transcripts(path)
    assert first.id == "5"
    assert first.metadata == {"source_format": "csv", "mi_quality": "high", "topic": "smoking"}
    assert [(t.index, t.speaker, t.label, t.text, t.line) for t in first.turns] == [
        (0, "therapist", "therapist", "Hello.", 3),
        (1, "patient", "client", "I smoke.", 2),
        (2, "patient", "client", "A lot.", 5),
        (3, "therapist", "therapist", "Tell me more.", 7),
    ]
    assert second.id == "2"
    assert [(t.text, t.line) for t in second.turns] == [("How much?", 6), ("Later, much later.", 4)]


def test_csv_custom_columns_and_multiline_cells(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "custom.csv",
        'conv,step,who,said,rater\nA,2,Doctor,"Hi,\nwelcome.",x\nA,1,Patient,Hello.,y\n',
    )
    options = ReadOptions(csv_columns=CsvColumns(transcript="conv", order="step", speaker="who", text="said"))
    transcript = read_one(path, options.with_aliases({"Doctor": "therapist"}))
    assert transcript.id == "A"
    assert transcript.metadata == {"source_format": "csv"}
    assert [(t.speaker, t.text, t.line) for t in transcript.turns] == [
        ("patient", "Hello.", 4),
        ("therapist", "Hi,\nwelcome.", 2),
    ]


def test_csv_without_transcript_or_order_column(tmp_path: Path) -> None:
    path = write(tmp_path, "plain.csv", "speaker,text\nTherapist,Hi.\nClient,Hello.\n")
    options = ReadOptions(csv_columns=CsvColumns(transcript=None, order=None, speaker="speaker", text="text"))
    transcript = read_one(path, options)
    assert transcript.id == "plain"
    assert [t.text for t in transcript.turns] == ["Hi.", "Hello."]


# --- discovery and read_all ----------------------------------------------------------------------


def test_discover_expands_folders_recursively_and_skips_noise(tmp_path: Path) -> None:
    write(tmp_path, "b.txt", "x")
    write(tmp_path, "a.json", "x")
    write(tmp_path, "sub/c.csv", "x")
    write(tmp_path, "sub/d.JSONL", "x")
    write(tmp_path, "README.md", "x")
    write(tmp_path, "readme.txt", "x")
    write(tmp_path, "notes.docx", "x")
    write(tmp_path, ".hidden.txt", "x")
    write(tmp_path, ".cache/e.txt", "x")
    explicit = write(tmp_path / "elsewhere", "f.docx", "x")
    found = discover([tmp_path / "sub", tmp_path, explicit])
    relative = [p.relative_to(tmp_path).as_posix() for p in found]
    assert relative == ["sub/c.csv", "sub/d.JSONL", "a.json", "b.txt", "elsewhere/f.docx"]


def test_discover_bundled_folder() -> None:
    assert discover([SEEDS]) == [SEED_000, SEED_004]


def test_discover_nonexistent_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(TranscriptError) as caught:
        discover([missing])
    assert str(caught.value) == f"{missing}: no such file or folder; check the path"
    assert (caught.value.path, caught.value.line) == (str(missing), None)


def test_discover_folder_without_transcripts(tmp_path: Path) -> None:
    write(tmp_path, "README.md", "x")
    with pytest.raises(TranscriptError) as caught:
        discover([tmp_path])
    assert str(caught.value) == f"{tmp_path}: folder holds no transcript files (supported: .txt, .json, .jsonl, .csv)"


def test_read_all_continues_past_a_bad_file(tmp_path: Path) -> None:
    good = write(tmp_path, "a.txt", "Therapist: Hi.\n")
    bad = write(tmp_path, "b.txt", "Doctor: Hi.\n")
    later = write(tmp_path, "c.jsonl", json.dumps({"messages": [{"role": "assistant", "content": "Yo."}]}))
    transcripts, failures = read_all([tmp_path])
    assert [(t.id, t.source) for t in transcripts] == [("a", str(good)), ("c-0", str(later))]
    assert [(path, error.line) for path, error in failures] == [(bad, 1)]
    assert failures[0][1].problem.startswith('unknown speaker label "Doctor"')


def test_read_all_refuses_a_duplicate_id_in_a_later_file(tmp_path: Path) -> None:
    first = write(tmp_path, "a/s.txt", "Therapist: Hi.\n")
    second = write(tmp_path, "b/s.txt", "Therapist: Hello.\n")
    transcripts, failures = read_all([tmp_path], ReadOptions())
    assert [t.source for t in transcripts] == [str(first)]
    assert len(failures) == 1
    assert failures[0][0] == second
    assert str(failures[0][1]) == f'{second}: transcript id "s" is also in {first}; rename one'


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", SUPPORTED_SUFFIXES)
@pytest.mark.parametrize("content", ["", " \n\n\t\n"])
def test_empty_file(tmp_path: Path, suffix: str, content: str) -> None:
    path = write(tmp_path, f"e{suffix}", content)
    error = error_of(path)
    assert str(error) == f"{path}: file is empty; it needs at least one therapist turn"
    assert error.line is None


def test_undecodable_bytes_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.txt", b"Patient: Hi.\n\nTherapist: caf\xe9 time.\n")
    error = error_of(path)
    assert error.line == 3
    assert str(error) == (
        f"{path}, line 3, column 15: byte 0xe9 is not valid UTF-8 (invalid continuation byte); it reads as "
        '"é" in Windows-1252 (Latin-1), so the file is probably saved in that encoding; re-save the file as UTF-8'
    )


def test_undecodable_bytes_after_a_bom_count_lines_correctly(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.csv", b"\xef\xbb\xbfa,b\n\xff,c\n")
    assert error_of(path).line == 2


def test_paragraph_without_label(tmp_path: Path) -> None:
    path = write(tmp_path, "s.txt", "Patient: Hi.\n\nTherapist: Hello.\n\nand then some more words here\n")
    error = error_of(path)
    assert (error.path, error.line) == (str(path), 5)
    assert str(error) == (
        f'{path}, line 5: no speaker label at the start of this paragraph ("and then some more words here"); '
        'start every turn with a label such as "Therapist:" or "Patient:", '
        "or remove the blank line that separates it from the turn before"
    )


def test_unknown_label_lists_known_labels_and_the_fix(tmp_path: Path) -> None:
    path = write(tmp_path, "x.txt", "Patient: Hi.\n\n\n\n\n\nDoctor: Hello.\n")
    assert str(error_of(path)) == (
        f'{path}, line 7: unknown speaker label "Doctor"; known labels: '
        "Therapist, Counselor, Counsellor, Clinician, Assistant, T (therapist); "
        "Patient, Client, User, P, C (patient); map it with --speaker Doctor=therapist (or patient, or other)"
    )


def test_unknown_two_word_label_is_quoted_in_the_fix(tmp_path: Path) -> None:
    path = write(tmp_path, "x.txt", "Dr Smith: Hello.\n")
    assert 'map it with --speaker "Dr Smith=therapist"' in str(error_of(path))


def test_empty_text_turn(tmp_path: Path) -> None:
    path = write(tmp_path, "x.txt", "Patient: Hi.\n\nTherapist:\n\nPatient: Hm.\n")
    assert str(error_of(path)) == (
        f'{path}, line 3: empty turn: "Therapist:" has no text; write the turn or delete the label'
    )


def test_no_therapist_turns(tmp_path: Path) -> None:
    path = write(tmp_path, "x.txt", "Patient: Hi.\n\nClient: Anyone?\n")
    error = error_of(path)
    assert error.line is None
    assert str(error) == (
        f'{path}: transcript "x" has no therapist turns (speakers seen: Client (patient), Patient (patient)); '
        "nothing in it can be judged - map the therapist's label with --speaker LABEL=therapist"
    )


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = write(tmp_path, "notes.docx", "Therapist: Hi.\n")
    assert str(error_of(path)) == f'{path}: unsupported file type ".docx"; save it as one of .txt, .json, .jsonl, .csv'


def test_broken_jsonl_line(tmp_path: Path) -> None:
    good = json.dumps({"messages": [{"role": "assistant", "content": "Hi."}]})
    path = write(tmp_path, "c.jsonl", f'{good}\n\n{{"messages": [\n')
    error = error_of(path)
    assert error.line == 3
    assert str(error) == (
        f"{path}, line 3: invalid JSON: Expecting value (column 15); each line must be one session object"
    )


def test_broken_json_file(tmp_path: Path) -> None:
    path = write(tmp_path, "c.json", '{\n  "messages": [\n    {"role": "user",}\n  ]\n}\n')
    error = error_of(path)
    assert error.line == 3
    assert str(error) == (
        f"{path}, line 3: invalid JSON: Expecting property name enclosed in double quotes (column 21); "
        "remove the comma before it (JSON allows no trailing comma)"
    )


def test_unknown_role_in_json_list_names_record_and_message(tmp_path: Path) -> None:
    sessions = [
        {"messages": [{"role": "assistant", "content": "Hi."}]},
        {"messages": [{"role": "assistant", "content": "Hi."}, {"role": "doctor", "content": "Hello."}]},
    ]
    path = write(tmp_path, "r.json", json.dumps(sessions))
    error = error_of(path)
    assert error.line is None
    assert str(error) == (
        f'{path}: at [1].messages[1]: unknown role "doctor"; known roles: assistant (therapist), user (patient), '
        "system (skipped); map it with --speaker doctor=therapist (or patient, or other)"
    )


def test_unknown_role_in_jsonl_names_the_line(tmp_path: Path) -> None:
    lines = [
        json.dumps({"messages": [{"role": "assistant", "content": "Hi."}]}),
        json.dumps({"messages": [{"role": "tool", "content": "{}"}]}),
    ]
    error = error_of(write(tmp_path, "r.jsonl", "\n".join(lines)))
    assert error.line == 2
    assert error.problem.startswith('at messages[0]: unknown role "tool"; known roles: ')


def test_missing_messages_key(tmp_path: Path) -> None:
    path = write(tmp_path, "m.json", json.dumps({"session_id": "a", "turns": []}))
    assert str(error_of(path)) == (
        f'{path}: no "messages" key (keys present: session_id, turns); '
        'put the turns in "messages": [{"role", "content"}, ...]'
    )


def test_non_text_content_part(tmp_path: Path) -> None:
    session = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}
    path = write(tmp_path, "p.json", json.dumps(session))
    assert str(error_of(path)) == (
        f'{path}: at messages[0].content[0]: a content part of type "image_url" cannot be judged; only text parts can'
    )


def test_duplicate_id_within_one_file(tmp_path: Path) -> None:
    session = {"id": "same", "messages": [{"role": "assistant", "content": "Hi."}]}
    path = write(tmp_path, "d.json", json.dumps([session, session]))
    assert str(error_of(path)) == (
        f'{path}: transcript id "same" appears twice in this file; give each session its own id'
    )


def test_missing_csv_column(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", "transcript_id,utterance_id,speaker,utterance_text\n1,0,therapist,Hi.\n")
    error = error_of(path)
    assert error.line == 1
    assert str(error) == (
        f'{path}, line 1: missing speaker column "interlocutor"; '
        "columns present: transcript_id, utterance_id, speaker, utterance_text; "
        "map them with --csv-column speaker=NAME"
    )


def test_unknown_csv_speaker_names_the_row_line(tmp_path: Path) -> None:
    path = write(tmp_path, "u.csv", ANNOMI_HEADER + "high,1,t,0,therapist,0,Hi.\nhigh,1,t,1,observer,1,Hm.\n")
    error = error_of(path)
    assert error.line == 3
    assert error.problem.startswith('column "interlocutor": unknown speaker label "observer"; known labels: ')


def test_ragged_csv_row(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", ANNOMI_HEADER + "high,1,t,0,therapist,0,Hi.\nhigh,1,t,1\n")
    assert str(error_of(path)) == f"{path}, line 3: row has 4 fields but the header has 7; check its quoting and commas"


def test_empty_csv_text_cell(tmp_path: Path) -> None:
    path = write(tmp_path, "e.csv", ANNOMI_HEADER + "high,1,t,0,therapist,0,Hi.\nhigh,1,t,1,client,1,  \n")
    assert str(error_of(path)) == (
        f'{path}, line 3: empty turn: the "utterance_text" column is empty for this client row'
    )


def test_csv_header_without_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "h.csv", ANNOMI_HEADER)
    assert str(error_of(path)) == f"{path}: the CSV has a header but no rows; add one row per utterance"


def test_csv_order_is_numeric_so_ten_follows_nine(tmp_path: Path) -> None:
    rows = "h,1,t,10,client,0,Third.\nh,1,t,9.5,therapist,0,Second.\nh,1,t,-1,therapist,0,First.\n"
    path = write(tmp_path, "o.csv", ANNOMI_HEADER + rows)
    assert [t.text for t in read_one(path).turns] == ["First.", "Second.", "Third."]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", 'the order column "utterance_id" is empty; give every row its position in the session'),
        ("  ", 'the order column "utterance_id" is empty; give every row its position in the session'),
        ("b2", 'the order column "utterance_id" holds "b2", not a number'),
        ("NaN", 'the order column "utterance_id" holds "NaN", not a number'),
        ("1e999999", 'the order column "utterance_id" holds "1e999999", not a number'),
        ("9" * 100_000, 'the order column "utterance_id" holds "' + "9" * 40 + '", not a number'),
    ],
)
def test_csv_order_that_is_not_a_number_is_an_error_naming_the_line(tmp_path: Path, value: str, problem: str) -> None:
    path = write(tmp_path, "o.csv", ANNOMI_HEADER + f"h,1,t,1,client,0,Hi.\nh,1,t,{value},therapist,0,Hello.\n")
    with pytest.raises(TranscriptError) as caught:
        read_transcripts(path)
    assert caught.value.line == 3
    assert caught.value.problem.startswith(problem)


def test_csv_order_repeated_within_a_transcript_names_both_lines(tmp_path: Path) -> None:
    rows = "h,1,t,1,client,0,Hi.\nh,2,t,1,client,0,Other session.\nh,1,t,2,therapist,0,A.\nh,1,t,2.0,therapist,0,B.\n"
    path = write(tmp_path, "o.csv", ANNOMI_HEADER + rows)
    with pytest.raises(TranscriptError) as caught:
        read_transcripts(path)
    assert str(caught.value) == (
        f'{path}, line 5: the order column "utterance_id" repeats 2.0 from line 4 of the same transcript; '
        "give every row its own position"
    )


@pytest.mark.parametrize(
    ("name", "content", "line", "problem"),
    [
        ("n.json", "42", None, "expected a session object or a list of them, found a JSON number"),
        ("l.json", "[]", None, "the file holds an empty list; add at least one session object"),
        ("s.jsonl", '"just text"', 1, "expected a session object, found a JSON string"),
        (
            "c.json",
            '{"messages": [{"role": "user", "content": null}]}',
            None,
            'at messages[0]: "content" must be a string or a list of text parts, found a JSON null',
        ),
        (
            "e.json",
            '{"messages": [{"role": "assistant", "content": " "}]}',
            None,
            'at messages[0]: empty turn: the "assistant" message has no text',
        ),
    ],
)
def test_malformed_sessions(tmp_path: Path, name: str, content: str, line: int | None, problem: str) -> None:
    error = error_of(write(tmp_path, name, content))
    assert (error.path, error.line, error.problem) == (str(tmp_path / name), line, problem)


# --- hostile files -------------------------------------------------------------------------------

GOOD_SESSION = {
    "session_id": "g",
    "messages": [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Hello."}],
}


def test_special_files_in_a_folder_are_reported_not_read(tmp_path: Path) -> None:
    good = write(tmp_path, "good.jsonl", json.dumps(GOOD_SESSION))
    os.mkfifo(tmp_path / "pipe.txt")
    (tmp_path / "zero.csv").symlink_to("/dev/zero")
    (tmp_path / "loop.json").symlink_to(tmp_path / "loop.json")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "up").symlink_to(tmp_path)  # a folder loop is walked once
    with bounded():
        transcripts, failures = read_all([tmp_path])
    assert [t.id for t in transcripts] == ["g"] and transcripts[0].source == str(good)
    assert {Path(path).name: error.problem for path, error in failures} == {
        "loop.json": "cannot read the file: Too many levels of symbolic links",
        "pipe.txt": "is a named pipe (FIFO), not a regular file; name a regular file instead",
        "zero.csv": "is a character device, not a regular file; name a regular file instead",
    }


@pytest.mark.parametrize(
    ("name", "content", "line", "problem"),
    [
        ("deep.json", "[" * 100_000 + "]" * 100_000, 1, "JSON nested more than 64 levels deep; flatten it"),
        (
            "deep.jsonl",
            json.dumps(GOOD_SESSION) + '\n{"messages": [], "x": ' + "[" * 200 + "]" * 200 + "}\n",
            2,
            "at x[0][0][0]",
        ),
        (
            "int.json",
            '{"session_id": "h",\n "n": ' + "9" * 100_000 + ', "messages": []}',
            2,
            "the integer 99999999999999999999... (100000 digits) is too large; quote it as a string",
        ),
        (
            "int.jsonl",
            json.dumps(GOOD_SESSION) + '\n{"n": 18446744073709551616, "messages": []}',
            2,
            "the integer 18446744073709551616... (20 digits) is too large; quote it as a string",
        ),
        ("float.jsonl", '{"n": 1e999999, "messages": []}', 1, "the number 1e999999 is too large to represent"),
        ("nan.jsonl", '{"n": -Infinity, "messages": []}', 1, "-Infinity is not a JSON number"),
        (
            "surrogate.json",
            '{"messages": [{"role": "user", "content": "a\\ud800b"}]}',
            None,
            "at messages[0].content: the string holds a lone surrogate (U+D800)",
        ),
        (
            "nul.jsonl",
            '{"messages": [], "meta": {"a\\u0000": 1}}',
            1,
            "at meta: a key holds a NUL byte (U+0000)",
        ),
        ("nul.txt", b"Patient: Hi.\nTherapist: He\x00llo.\n", 2, "column 14: a NUL byte (U+0000)"),
        ("esc.csv", "speaker,text\nTherapist,\x1b]8;;x\x1b\\\n", 2, "column 11: the control character U+001B"),
        ("bad.jsonl", b'{"messages": []}\n{"a": "\xc3\x28"}\n', 2, "column 8: byte 0xc3 is not valid UTF-8"),
    ],
)
def test_hostile_json_and_bytes_are_errors_naming_file_and_line(
    tmp_path: Path, name: str, content: str | bytes, line: int | None, problem: str
) -> None:
    path = write(tmp_path, name, content)
    with bounded():
        error = error_of(path)
    assert error.path == str(path) and error.line == line
    assert error.problem.startswith(problem)


def test_harmless_control_characters_and_big_ints_within_range_are_kept(tmp_path: Path) -> None:
    record = {**GOOD_SESSION, "n": 2**63, "neg": -(2**63), "x": [[[1]]]}
    record["messages"][1]["content"] = "Hello\tthere.\x0cOK \U0001f600"
    transcript = read_one(write(tmp_path, "ok.json", json.dumps(record)))
    assert transcript.metadata["n"] == 2**63 and transcript.turns[1].text == "Hello\tthere.\x0cOK \U0001f600"


# --- unusual but readable files, and ids no result can carry -------------------------------------


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("mac.txt", "Patient: Can we slow down?\rIt is a lot.\r\rTherapist: Of course.\rLet's pause.\r"),
        ("mac.jsonl", json.dumps(GOOD_SESSION) + "\r" + json.dumps({**GOOD_SESSION, "session_id": "h"}) + "\r"),
        ("mac.csv", "speaker,text\rPatient,Can we slow down?\rTherapist,Of course.\r"),
    ],
)
def test_old_mac_line_ends_separate_lines(tmp_path: Path, name: str, content: str) -> None:
    options = ReadOptions(csv_columns=CsvColumns(transcript=None, order=None, speaker="speaker", text="text"))
    transcripts = read_transcripts(write(tmp_path, name, content), options)
    assert [speakers(t) for t in transcripts][0] == ["patient", "therapist"]
    if name == "mac.txt":
        assert [(t.text, t.line) for t in transcripts[0].turns] == [
            ("Can we slow down?\nIt is a lot.", 1),
            ("Of course.\nLet's pause.", 4),
        ]
    if name == "mac.jsonl":
        assert [t.id for t in transcripts] == ["g", "h"] and transcripts[1].turns[0].line == 2


def test_timestamps_before_labels_and_bold_labels_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "stamped.txt",
        "[00:01:23] Patient: Can we slow down?\n"
        "(01:30) Therapist: Sure.\n"
        "00:01:45.120 Client: Thanks. At 12:30: lunch.\n\n"
        "**Counsellor:** Of course.\n\n"
        "**Patient**: ok **really**\n",
    )
    transcript = read_one(path)
    assert [(t.speaker, t.label, t.text) for t in transcript.turns] == [
        ("patient", "Patient", "Can we slow down?"),
        ("therapist", "Therapist", "Sure."),
        ("patient", "Client", "Thanks. At 12:30: lunch."),
        ("therapist", "Counsellor", "Of course."),
        ("patient", "Patient", "ok **really**"),
    ]


@pytest.mark.parametrize(
    ("name", "content", "line", "problem"),
    [
        (
            "empty.jsonl",
            json.dumps({**GOOD_SESSION, "session_id": " "}),
            1,
            'the transcript id from the "session_id" key is empty',
        ),
        (
            "long.json",
            json.dumps([GOOD_SESSION, {"id": "x" * 5000, "messages": GOOD_SESSION["messages"]}]),
            None,
            'the transcript id "' + "x" * 40 + '..." from the "id" key at [1] is 5,000 characters long (at most 200)',
        ),
        (
            "break.json",
            json.dumps({**GOOD_SESSION, "session_id": "a\nb"}),
            None,
            "the transcript id 'a\\nb' from the \"session_id\" key holds a line break",
        ),
        (
            "cell.csv",
            "transcript_id,utterance_id,interlocutor,utterance_text\nok,1,client,Hi\nok,2,therapist,Hello\n"
            + '"'
            + "whole paragraph " * 20
            + '",1,therapist,Hello\n',
            4,
            'the transcript id "whole paragraph whole paragraph whole pa..." from the "transcript_id" column is 319',
        ),
    ],
)
def test_an_id_no_result_can_carry_is_refused(
    tmp_path: Path, name: str, content: str, line: int | None, problem: str
) -> None:
    error = error_of(write(tmp_path, name, content))
    assert error.line == line and error.problem.startswith(problem)
    assert error.problem.endswith("; give the session a short id on one line")


def test_a_file_name_with_a_line_break_is_refused_as_an_id(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, "a\nb.txt", "Therapist: Hello.\n"))
    assert error.problem.startswith("the transcript id 'a\\nb' from the file name holds a line break")


@pytest.mark.parametrize(
    ("content", "line", "problem"),
    [
        (
            '{"session_id": "a", "messages": [{"role": "user", "content": "Hi", "role": "assistant"}]}',
            None,
            'the key "role" appears twice in one object ("user" and "assistant"); keep one',
        ),
        (
            '{"session_id": "a", "session_id": "' + "b" * 100 + '", "messages": []}',
            None,
            'the key "session_id" appears twice in one object ("a" and "' + "b" * 39 + "...); keep one",
        ),
    ],
)
def test_a_key_written_twice_in_json_is_refused(tmp_path: Path, content: str, line: int | None, problem: str) -> None:
    error = error_of(write(tmp_path, "dup.json", content))
    assert (error.line, error.problem) == (line, problem)
    jsonl = error_of(write(tmp_path, "dup.jsonl", json.dumps(GOOD_SESSION) + "\n" + content + "\n"))
    assert (jsonl.line, jsonl.problem) == (2, problem)


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_semicolon_and_tab_separated_csv_are_read(tmp_path: Path, delimiter: str) -> None:
    rows = [
        "transcript_id,utterance_id,interlocutor,utterance_text",
        "a,1,client,Slow down, please",
        "a,2,therapist,OK",
    ]
    text = "\n".join(row.replace(",", delimiter, 3) for row in rows) + "\n"
    transcript = read_one(write(tmp_path, "semi.csv", text))
    assert [t.text for t in transcript.turns] == ["Slow down, please", "OK"]


@pytest.mark.parametrize(
    ("content", "line", "problem"),
    [
        (
            'a,1,client,"Hi\na,2,therapist,Hello\n',
            2,
            'malformed CSV: unexpected end of data; a quote (") opened on this row is probably never closed',
        ),
        ('a,1,client,"Hi" there\na,2,therapist,Hello\n', 2, "malformed CSV: ',' expected after '\"'"),
    ],
)
def test_a_quote_left_open_is_refused_not_merged_into_one_cell(
    tmp_path: Path, content: str, line: int, problem: str
) -> None:
    error = error_of(write(tmp_path, "q.csv", "transcript_id,utterance_id,interlocutor,utterance_text\n" + content))
    assert error.line == line and error.problem.startswith(problem)


def test_a_csv_column_named_twice_or_an_empty_header_is_refused(tmp_path: Path) -> None:
    header = "transcript_id,utterance_id,interlocutor,utterance_text,utterance_text\n"
    error = error_of(write(tmp_path, "twice.csv", header + "a,1,client,Hi,x\na,2,therapist,Hello,y\n"))
    assert (error.line, error.problem) == (
        1,
        "the header names utterance_text more than once; rename or delete the extra column",
    )
    error = error_of(write(tmp_path, "blank.csv", "\na,1,client,Hi\n"))
    assert (error.line, error.problem) == (1, "the first line is empty; it must be the header naming the columns")


def test_csv_columns_spelt_in_another_case_are_found(tmp_path: Path) -> None:
    text = "Transcript_ID,Utterance_ID,Interlocutor,Utterance_Text,Topic\na,1,client,Hi,x\na,2,therapist,Hello,x\n"
    transcript = read_one(write(tmp_path, "upper.csv", text))
    assert [t.text for t in transcript.turns] == ["Hi", "Hello"] and transcript.metadata["Topic"] == "x"


@pytest.mark.parametrize(
    ("name", "content", "line", "fix"),
    [
        (
            "lines.json",
            json.dumps(GOOD_SESSION) + "\n" + json.dumps(GOOD_SESSION) + "\n",
            2,
            "the file holds several JSON values: put the sessions in a list [...], or name the file .jsonl",
        ),
        (
            "pretty.jsonl",
            json.dumps(GOOD_SESSION, indent=2),
            1,
            "the file is one JSON document spread over several lines: name it .json, or write one session per line",
        ),
    ],
)
def test_json_and_jsonl_saved_under_each_others_name_say_so(
    tmp_path: Path, name: str, content: str, line: int, fix: str
) -> None:
    error = error_of(write(tmp_path, name, content))
    assert error.line == line and error.problem.startswith("invalid JSON") and error.problem.endswith(fix)


@pytest.mark.parametrize(
    ("name", "first", "second"),
    [
        ("joined.jsonl", json.dumps(GOOD_SESSION) + "\n", json.dumps({**GOOD_SESSION, "session_id": "h"}) + "\n"),
        ("joined.txt", "Patient: Hi.\n\n", "Therapist: Hello.\n"),
    ],
)
def test_files_joined_with_cat_keep_no_byte_order_mark_at_a_line_start(
    tmp_path: Path, name: str, first: str, second: str
) -> None:
    path = write(tmp_path, name, (first + "\ufeff" + second).encode("utf-8-sig"))
    transcripts = read_transcripts(path)
    assert sum(len(t.turns) for t in transcripts) == (4 if name.endswith("jsonl") else 2)
    assert all("\ufeff" not in turn.text for t in transcripts for turn in t.turns)
