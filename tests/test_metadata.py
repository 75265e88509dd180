"""Metadata per transcript from the record, a sidecar CSV and the file's path: merged in a stated
order, recorded in the run, refused with file and line when a source is unusable, and kept apart
from what the judge sees (see test_prompts for blinding)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from evaluator.cli import main
from evaluator.config import RunConfig
from evaluator.metadata import MetadataError, MetadataSources, PathPattern, flatten
from evaluator.reading import ReadOptions, TranscriptError
from evaluator.runner import RunError, run
from evaluator.store import read_manifest, read_transcript_snapshot
from evaluator.transcripts import read_all, read_transcripts
from tests.conftest import REPO
from tests.test_files import bounded

PACING = REPO / "rubrics" / "pacing.yaml"
MESSAGES = [{"role": "user", "content": "Can we slow down?"}, {"role": "assistant", "content": "Of course."}]


def session(session_id: str, **fields) -> str:
    return json.dumps({"session_id": session_id, **fields, "messages": MESSAGES}) + "\n"


def options(sidecar: Path | None = None, pattern: str | None = None) -> ReadOptions:
    return ReadOptions(metadata=MetadataSources(sidecar=sidecar, path_pattern=pattern))


def by_id(transcripts) -> dict[str, dict]:
    return {t.id: t.metadata for t in transcripts}


# --- the record ----------------------------------------------------------------------------------


def test_nested_record_keys_are_flattened_and_lists_stay_lists(write) -> None:
    path = write("s.jsonl", session("s1", arm={"model": "m", "config": {"temperature": 0.2}}, tags=["a", {"b": 1}]))
    (transcript,) = read_transcripts(path)
    assert transcript.metadata == {
        "source_format": "jsonl",
        "arm.model": "m",
        "arm.config.temperature": 0.2,
        "tags": ["a", {"b": 1}],
    }


def test_a_field_given_nested_and_dotted_is_refused_with_file_and_line(write) -> None:
    path = write("s.jsonl", session("ok") + session("s2", arm={"model": "m"}, **{"arm.model": "n"}))
    with pytest.raises(TranscriptError) as caught:
        read_transcripts(path)
    assert caught.value.line == 2 and '"arm.model" is given twice' in str(caught.value)


def test_csv_columns_constant_in_a_session_are_metadata_and_a_sidecar_adds_to_them(write) -> None:
    header = "transcript_id,utterance_id,interlocutor,utterance_text,topic,quality\n"
    rows = "t1,0,client,Slow down?,smoking,high\nt1,1,therapist,Sure.,smoking,low\nt2,0,client,Hi,diet,high\n"
    rows += "t2,1,therapist,Hello.,diet,high\n"
    sidecar = write("meta.csv", "transcript_id,arm\nt1,a\nt2,b\n")
    transcripts, _ = read_all([write("s.csv", header + rows)], options(sidecar))
    assert by_id(transcripts) == {
        "t1": {"source_format": "csv", "topic": "smoking", "arm": "a"},
        "t2": {"source_format": "csv", "topic": "diet", "quality": "high", "arm": "b"},
    }


def test_flatten_keeps_an_empty_object() -> None:
    assert flatten({"a": {}, "b": {"c": []}}) == {"a": {}, "b.c": []}


# --- the sidecar ---------------------------------------------------------------------------------


def test_sidecar_over_path_over_record_and_each_disagreement_is_a_warning(write, caplog) -> None:
    write("in/gpt/control/s.jsonl", session("s1", model="record", site="A", seed=3) + session("s2", site="B"))
    sidecar = write("meta.csv", "transcript_id,site,seed,cohort\ns1,Z,3,\ns2,B,,spring\n")
    with caplog.at_level(logging.WARNING, logger="evaluator"):
        transcripts, failures = read_all([sidecar.parent / "in"], options(sidecar, "{model}/{condition}/*.jsonl"))
    assert not failures
    meta = by_id(transcripts)
    assert meta["s1"] == {"source_format": "jsonl", "model": "gpt", "site": "Z", "seed": 3, "condition": "control"}
    assert meta["s2"] == {
        "source_format": "jsonl",
        "site": "B",
        "model": "gpt",
        "condition": "control",
        "cohort": "spring",
    }
    warnings = [r.getMessage() for r in caplog.records]
    assert any("'model'" in w and 's1: "gpt" over "record"' in w and "--meta-from-path" in w for w in warnings)
    assert any("'site'" in w and 's1: "Z" over "A"' in w and "meta.csv" in w for w in warnings)
    assert not any("'seed'" in w or "s2" in w for w in warnings)  # "3" and 3 agree; an empty cell sets nothing


def test_sidecar_ids_that_match_no_transcript_are_a_warning_naming_them(write, caplog) -> None:
    path = write("s.jsonl", session("s1"))
    sidecar = write("meta.csv", "id,arm\ns1,a\nghost-1,b\nghost-2,c\n")
    with caplog.at_level(logging.WARNING, logger="evaluator"):
        transcripts, _ = read_all([path], options(sidecar))
    assert by_id(transcripts)["s1"]["arm"] == "a"
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "meta.csv" in warning and "2 id(s) match no transcript" in warning and "ghost-1, ghost-2" in warning


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("transcript_id,arm\ns1,a\ns2,b\ns1,c\n", 'line 4: transcript id "s1" is also on line 2'),
        ("session,arm\ns1,a\n", "line 1: no transcript_id or id column (columns found: session, arm)"),
        ("transcript_id,arm\ns1,a,extra\n", "line 2: row has 3 fields but the header has 2"),
        ("transcript_id,arm,arm\ns1,a,b\n", 'line 1: the column "arm" appears twice'),
        ("transcript_id,arm\n,a\n", 'line 2: the "transcript_id" column is empty'),
        ("transcript_id,arm\ns1,\x00\n", "line 2, column 4: a NUL byte"),
        ('transcript_id,arm\ns1,"a\ns2,b\n', 'line 2: malformed CSV: unexpected end of data; a quote (") opened'),
    ],
)
def test_an_unusable_sidecar_is_refused_with_file_and_line(write, content: str, expected: str) -> None:
    sidecar = write("meta.csv", content)
    with pytest.raises(MetadataError) as caught:
        read_all([write("s.jsonl", session("s1"))], options(sidecar))
    assert str(caught.value).startswith(f"--metadata {sidecar}: ") and expected in str(caught.value)


def test_a_semicolon_sidecar_with_old_mac_line_ends_is_read(write) -> None:
    sidecar = write("meta.csv", "transcript_id;arm;note\rs1;a;x, y\r")
    (transcript,) = read_transcripts(write("s.jsonl", session("s1")), options(sidecar))
    assert transcript.metadata["arm"] == "a" and transcript.metadata["note"] == "x, y"


def test_a_sidecar_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match="not a regular file"):
        MetadataSources(sidecar=tmp_path).check()


# --- the path ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("{model}/{condition}/*.jsonl", "corpus/gpt-4o/control/s.jsonl", {"model": "gpt-4o", "condition": "control"}),
        ("{model}/{condition}/*.jsonl", "/abs/gpt-4o/control/s.jsonl", {"model": "gpt-4o", "condition": "control"}),
        ("{site}_{arm}.txt", "x/leeds_b.txt", {"site": "leeds", "arm": "b"}),
        ("{model}/*", "m1/a.json", {"model": "m1"}),
        ("{model}/{condition}/*.jsonl", "control/s.jsonl", None),
        ("{model}/*.jsonl", "m1/s.json", None),
    ],
)
def test_a_path_pattern_reads_fields_from_the_end_of_the_path(pattern: str, path: str, expected) -> None:
    assert PathPattern(pattern).match(path) == expected


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("{model/*.jsonl", 'unmatched "{"'),
        ("*.jsonl", "names no field"),
        ("{a}/{a}.txt", 'field "a" twice'),
        ("{a b}/x", "is not a name"),
        ("{model}{condition}.txt", "has {model} and {condition} with no text between them"),
        ("*{arm}/x.txt", "has * and {arm} with no text between them"),
    ],
)
def test_an_unusable_path_pattern_is_refused_before_reading(pattern: str, problem: str) -> None:
    with pytest.raises(MetadataError) as caught:
        MetadataSources(path_pattern=pattern).check()
    assert f"--meta-from-path '{pattern}'" in str(caught.value) and problem in str(caught.value)


def test_a_pattern_that_backtracks_on_a_long_name_stops_in_bounded_time_with_a_message() -> None:
    pattern = PathPattern("{a}_{b}_{c}_{d}_{e}_{f}_{g}x.txt")
    with bounded(30), pytest.raises(MetadataError, match=r"took more than 1 s on .*; use fewer fields"):
        pattern.match("_a" * 120 + ".txt")


def test_a_file_named_directly_reads_the_same_fields_as_through_its_folder(write) -> None:
    path = write("corpus/gpt/control/s.jsonl", session("s1"))
    pattern = options(pattern="{model}/{condition}/*.jsonl")
    through_folder, _ = read_all([path.parent.parent.parent], pattern)
    by_name, _ = read_all([path], pattern)
    assert (
        by_id(through_folder)
        == by_id(by_name)
        == {"s1": {"source_format": "jsonl", "model": "gpt", "condition": "control"}}
    )


def test_a_file_the_pattern_does_not_match_is_set_aside_naming_the_pattern(write) -> None:
    good = write("corpus/gpt/control/s.jsonl", session("s1"))
    stray = write("corpus/stray.jsonl", session("s2"))
    transcripts, failures = read_all([good.parent.parent.parent], options(pattern="{model}/{condition}/*.jsonl"))
    assert [t.id for t in transcripts] == ["s1"]
    ((path, error),) = failures
    assert path == stray and "does not match --meta-from-path '{model}/{condition}/*.jsonl'" in str(error)


# --- recorded in the run, and resumed with it ---------------------------------------------------


def _cli_run(tmp_path: Path, *extra: str) -> int:
    return main(
        [
            "run",
            str(tmp_path / "in"),
            "-r",
            str(PACING),
            "-o",
            str(tmp_path / "results"),
            "--no-progress",
            "--no-report",
            *extra,
        ]
    )


def test_a_run_records_every_transcripts_metadata_and_its_sources(write, tmp_path: Path, no_llm_env) -> None:
    write("in/gpt/control/a.jsonl", session("a1", arm={"model": "gpt"}, tags=["x", "y"]))
    write("in/llama/treated/b.jsonl", session("b1"))
    write("meta.csv", "transcript_id,site\na1,leeds\nb1,york\n")
    assert (
        _cli_run(
            tmp_path,
            "--run-id",
            "r",
            "--metadata",
            str(tmp_path / "meta.csv"),
            "--meta-from-path",
            "{model}/{condition}/*.jsonl",
        )
        == 0
    )
    run_dir = tmp_path / "results" / "r"
    manifest = read_manifest(run_dir)
    assert manifest.transcript_metadata == {
        "a1": {
            "source_format": "jsonl",
            "arm.model": "gpt",
            "tags": ["x", "y"],
            "model": "gpt",
            "condition": "control",
            "site": "leeds",
        },
        "b1": {"source_format": "jsonl", "model": "llama", "condition": "treated", "site": "york"},
    }
    assert (
        manifest.metadata_file == str(tmp_path / "meta.csv")
        and manifest.meta_from_path == "{model}/{condition}/*.jsonl"
    )
    assert not manifest.unblind
    assert by_id(read_transcript_snapshot(run_dir)) == manifest.transcript_metadata


def test_resume_reads_metadata_as_the_run_did_and_refuses_different_metadata(
    write, tmp_path: Path, no_llm_env, capsys
) -> None:
    write("in/gpt/control/a.jsonl", session("a1"))
    write("meta.csv", "transcript_id,site\na1,leeds\n")
    write("other.csv", "transcript_id,site\na1,york\n")
    assert (
        _cli_run(
            tmp_path,
            "--run-id",
            "r",
            "--metadata",
            str(tmp_path / "meta.csv"),
            "--meta-from-path",
            "{model}/{condition}/*.jsonl",
            "--limit",
            "1",
        )
        == 0
    )
    capsys.readouterr()
    assert _cli_run(tmp_path, "--resume", "r") == 0  # no options given: the run's own sources are used
    assert read_manifest(tmp_path / "results" / "r").complete
    assert _cli_run(tmp_path, "--resume", "r", "--metadata", str(tmp_path / "other.csv")) == 2
    error = capsys.readouterr().err
    assert "the metadata of 1 transcript(s) differs" in error and 'site "leeds" -> "york"' in error
    assert "--metadata " + str(tmp_path / "meta.csv") in " ".join(error.split())


def test_resume_refuses_to_switch_blinding(write, tmp_path: Path, no_llm_env) -> None:
    path = write("s.jsonl", session("s1"))
    config = RunConfig(transcripts=[path], rubrics=[PACING], output=tmp_path / "results", show_progress=False)
    first = run(config)
    assert not first.manifest.unblind
    with pytest.raises(RunError, match=r"started blind \(without --unblind\).*resume it without --unblind"):
        run(
            RunConfig(
                transcripts=[path],
                rubrics=[PACING],
                output=tmp_path,
                show_progress=False,
                resume=first.run_dir,
                unblind=True,
            )
        )


def test_unblind_on_the_config_reaches_every_transcript_read() -> None:
    config = RunConfig(unblind=True)
    assert config.read_options.unblind
    assert RunConfig(read_options=ReadOptions(unblind=True)).unblind


def test_recorded_reading_resumes_a_run_from_python_as_it_started(write, tmp_path: Path, no_llm_env) -> None:
    from evaluator.manifest import recorded_reading

    write("in/gpt/control/a.jsonl", session("a1"))
    sidecar = write("meta.csv", "transcript_id,site\na1,leeds\n")
    reading = ReadOptions(metadata=MetadataSources(sidecar=sidecar, path_pattern="{model}/{condition}/*.jsonl"))
    first = run(
        RunConfig(
            transcripts=[tmp_path / "in"],
            rubrics=[PACING],
            output=tmp_path / "results",
            read_options=reading,
            unblind=True,
            show_progress=False,
        )
    )
    recorded = recorded_reading(first.manifest)
    assert recorded.metadata == MetadataSources(sidecar, "{model}/{condition}/*.jsonl", (tmp_path / "in",))
    assert recorded.unblind
    again = run(RunConfig(rubrics=[PACING], resume=first.run_dir, read_options=recorded, show_progress=False))
    assert again.manifest.transcript_metadata == first.manifest.transcript_metadata
