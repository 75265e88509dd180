"""Rubric loading: bundled rubrics validate; every kind of mistake is refused with file and field."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from evaluator.rubrics import RubricError, criterion_stages, load_rubric, load_rubrics
from tests.test_files import bounded

VALID = """\
id: demo
title: Demo
criteria:
  - id: asked
    name: Patient asked
    question: Did the patient ask?
    scale: {type: binary}
  - id: answered
    name: Answer quality
    question: How well?
    applies_when:
      criterion: {criterion: asked, is: [1]}
    scale:
      type: likert
      min: 1
      max: 3
      anchors: {1: bad, 2: fair, 3: good}
"""


def test_bundled_rubrics_validate_and_cite_instruments(rubrics_dir: Path) -> None:
    rubrics = load_rubrics([rubrics_dir])
    assert {r.id for r in rubrics} >= {"pacing", "rupture_repair", "act_fidelity", "mi_relational"}
    pacing = next(r for r in rubrics if r.id == "pacing")
    assert pacing.criteria[1].id == "slow_down_responsiveness"
    assert "CTRS" in pacing.description and "3RS" in pacing.description
    criteria = [c for r in rubrics for c in r.criteria]
    assert len(criteria) >= 12
    assert all(r.hash and len(r.criterion_hashes) == len(r.criteria) for r in rubrics)


def test_hash_changes_with_content_and_only_that_criterion_moves(write) -> None:
    first = load_rubric(write("a/demo.yaml", VALID))
    same = load_rubric(write("b/demo.yaml", VALID))
    edited = load_rubric(write("c/demo.yaml", VALID.replace("3: good", "3: very good")))
    assert first.hash == same.hash
    assert edited.hash != first.hash
    assert edited.criterion_hashes["answered"] != first.criterion_hashes["answered"]
    assert edited.criterion_hashes["asked"] == first.criterion_hashes["asked"]


def test_dependent_criteria_are_staged_after_their_prerequisite(write) -> None:
    rubric = load_rubric(write("demo.yaml", VALID))
    assert [[c.id for c in stage] for stage in criterion_stages(rubric)] == [["asked"], ["answered"]]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("type: binary", "type: binry"), "criteria[0] (id: asked).scale"),
        (("anchors: {1: bad, 2: fair, 3: good}", "anchors: {2: fair, 3: good}"), "both ends of the scale"),
        (
            ("anchors: {1: bad, 2: fair, 3: good}", "anchors: {1: bad, 3: good, 7: great}"),
            "anchors [7] lie outside 1..3",
        ),
        (("criterion: asked, is: [1]", "criterion: nope, is: [1]"), "no criterion 'nope' in this rubric"),
        (("criterion: asked, is: [1]", "criterion: asked, is: [5]"), "[5] not on the scale of 'asked'"),
        (("    name: Patient asked\n", "    name: Patient asked\n    check: no_such_check\n"), "no_such_check"),
        (("title: Demo", "title: Demo\ncolour: red"), "colour: Extra inputs are not permitted"),
        (("- id: answered", "- id: asked"), "id 'asked' is used more than once"),
        (("id: demo", "id: Demo Rubric"), "id: String should match pattern"),
    ],
)
def test_invalid_rubrics_name_file_and_field(write, change: tuple[str, str], expected: str) -> None:
    path = write("bad.yaml", VALID.replace(*change))
    with pytest.raises(RubricError) as caught:
        load_rubric(path)
    message = str(caught.value)
    assert str(path) in message
    assert expected in message


def test_regex_error_names_the_pattern(write) -> None:
    text = VALID.replace(
        "    question: Did the patient ask?\n",
        "    question: Did the patient ask?\n    applies_when:\n      previous_patient_turn_matches: ['(unclosed']\n",
    )
    with pytest.raises(
        RubricError,
        match=r"criteria\[0\] \(id: asked\)\.applies_when\.previous_patient_turn_matches: pattern '\(unclosed'",
    ):
        load_rubric(write("bad.yaml", text))


def test_yaml_syntax_error_has_line(write) -> None:
    with pytest.raises(RubricError, match=r"line 4, column 3: YAML syntax error"):
        load_rubric(write("bad.yaml", "id: x\ntitle: y\ncriteria: [\n  - a: {\n"))


def test_dependency_cycle_is_refused(write) -> None:
    text = VALID.replace(
        "    scale: {type: binary}\n",
        "    scale: {type: binary}\n    applies_when:\n      criterion: {criterion: answered, is: [3]}\n",
        1,
    )
    with pytest.raises(RubricError, match="cycle"):
        load_rubric(write("cycle.yaml", text))


def test_missing_template_file_is_named(write) -> None:
    with pytest.raises(RubricError, match="template: file 'mine.j2' not found"):
        load_rubric(write("t.yaml", "template: mine.j2\n" + VALID))


def test_duplicate_rubric_ids_across_files(write, tmp_path: Path) -> None:
    write("r/one.yaml", VALID)
    write("r/two.yaml", VALID)
    with pytest.raises(RubricError, match="already used by"):
        load_rubrics([tmp_path / "r"])


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RubricError, match="no rubric files"):
        load_rubrics([tmp_path])


def test_yes_and_no_stay_words_not_booleans(write) -> None:
    """PyYAML's YAML 1.1 default would read the keys `yes:`/`no:` as True/False and reject the scale."""
    rubric = load_rubric(
        write("yn.yaml", VALID.replace("scale: {type: binary}", "scale: {type: binary, yes: did, no: did not}"))
    )
    scale = rubric.criteria[0].scale
    assert (scale.yes, scale.no) == ("did", "did not")


def test_a_descriptive_criterion_cannot_have_a_pass_mark(write) -> None:
    text = VALID.replace(
        "    scale: {type: binary}\n", "    scale: {type: binary}\n    better: neither\n    pass_at: 1\n"
    )
    with pytest.raises(RubricError, match=r"criteria\[0\] \(id: asked\): pass_at needs a direction"):
        load_rubric(write("neither.yaml", text))
    assert load_rubric(write("ok.yaml", text.replace("    pass_at: 1\n", ""))).criteria[0].better == "neither"


# --- hostile files -------------------------------------------------------------------------------


def test_an_alias_bomb_is_refused_quickly_and_plain_anchors_still_work(write) -> None:
    bomb = ['lol: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    bomb += [f"l{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 10)]
    path = write("bomb.yaml", "\n".join(bomb) + "\nid: x\ntitle: t\ncriteria: *a9\n")
    with bounded(5), pytest.raises(RubricError) as caught:
        load_rubric(path)
    assert caught.value.path == str(path)
    assert "YAML refused: expands to more than 100,000 values once its aliases (*name) are resolved" in str(
        caught.value
    )
    anchored = VALID.replace("scale: {type: binary}", "scale: &yesno {type: binary}").replace(
        "question: How well?\n", "question: How well?\n    tags: &t [a, b]\n"
    )
    rubric = load_rubric(write("anchored.yaml", anchored + "  - {id: again, name: n, question: q, scale: *yesno}\n"))
    assert rubric.criteria[2].scale.type == "binary" and rubric.criteria[1].tags == ["a", "b"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("id: x\ntitle: " + "[" * 10_000 + "]" * 10_000 + "\n", "YAML refused: nested more than 64 levels deep"),
        (VALID.replace("Did the patient ask?", '"Did \\0 ask?"'), "criteria[0] (id: asked).question: holds a NUL"),
        (VALID.replace("title: Demo", 'title: "\\ud800"'), "title: holds a lone surrogate (U+D800)"),
        (VALID.replace("title: Demo", 'title: "\\e[31m"'), "title: holds the control character U+001B"),
    ],
)
def test_deep_nesting_and_bad_characters_are_refused(write, content: str, expected: str) -> None:
    with bounded(5), pytest.raises(RubricError, match=re.escape(expected)):
        load_rubric(write("r.yaml", content))


def test_a_rubric_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.yaml")
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    for name, kind in (("fifo.yaml", "a named pipe (FIFO)"), ("zero.yaml", "a character device")):
        with bounded(), pytest.raises(RubricError, match=re.escape(f"is {kind}, not a regular file")):
            load_rubric(tmp_path / name)


def test_a_huge_rubric_file_is_refused(write) -> None:
    path = write("big.yaml", VALID + "#" + "x" * (5 * 1024 * 1024) + "\n")
    with pytest.raises(RubricError, match=r"is larger than 4 MiB"):
        load_rubric(path)


def _with_pattern(pattern: str) -> str:
    return VALID.replace(
        "    question: Did the patient ask?\n",
        "    question: Did the patient ask?\n    applies_when:\n"
        f"      previous_patient_turn_matches: ['slow down', {json.dumps(pattern)}]\n",
    )


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("(a+)+$", "backtracks catastrophically"),
        ("(\\w+\\s?)+$", "backtracks catastrophically"),
        ("(x+x+)+y", "backtracks catastrophically"),
        ("(slow|slo)+w$", "backtracks catastrophically"),
        ("(.*a){20}$", "backtracks catastrophically"),
        ("((((a{100}){100}){100}){100})", "repeats expand to about 100,000,000 steps (limit 10,000)"),
        ("x" * 1001, "is 1001 characters long; keep a pattern under 1000"),
    ],
)
def test_a_pathological_pattern_is_refused_at_load_naming_criterion_and_pattern(
    write, pattern: str, problem: str
) -> None:
    path = write("slow.yaml", _with_pattern(pattern))
    with bounded(10), pytest.raises(RubricError) as caught:
        load_rubric(path)
    (message,) = caught.value.problems
    assert caught.value.path == str(path)
    assert message.startswith(
        f"criteria[0] (id: asked).applies_when.previous_patient_turn_matches: pattern {pattern[:200]!r} {problem}"
    )


def test_ordinary_patterns_load() -> None:
    rubric = load_rubrics([Path(__file__).resolve().parent.parent / "rubrics" / "pacing.yaml"])[0]
    assert any(c.applies_when and c.applies_when.previous_patient_turn_matches for c in rubric.criteria)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("    question: How well?\n", "    question: How well?\n    question: How badly?\n"),
            "line 11, column 5: YAML syntax error: the key 'question' appears twice in this mapping (first on line 10)",
        ),
        (("    question: How well?\n", "    question: How well?\n    weight: .inf\n"), "weight: inf is not a finite"),
        (("    question: How well?\n", "    question: How well?\n    pass_at: .nan\n"), "pass_at: nan is not a finite"),
        (("title: Demo", "title: Demo\nversion: -.inf"), "version: -inf is not a finite number; write a number"),
        (
            ("max: 3\n", "max: 100000\n"),
            "criteria[1] (id: answered).scale: 1..100000 has 100,000 levels, more than 1,001; use fewer levels",
        ),
        (
            ("scale: {type: binary}", "scale: {type: count, unit: words, max: 99999}"),
            "0..99999 has 100,000 levels, more than 1,001; leave max out if a count has no upper bound",
        ),
    ],
)
def test_a_rubric_no_stage_could_use_is_refused_at_load(write, change: tuple[str, str], expected: str) -> None:
    """A key written twice hides one of its values; a non-finite weight failed the run after it started
    (it came back as null); a scale of a billion levels filled 13 GB listing its verdicts (tested smaller)."""
    with bounded(10), pytest.raises(RubricError) as caught:
        load_rubric(write("bad.yaml", VALID.replace(*change)))
    assert expected in str(caught.value)


@pytest.mark.parametrize("template", ["../prompts/per_criterion.j2", "/etc/passwd"])
def test_a_template_outside_the_rubric_folder_is_refused_by_name(write, template: str) -> None:
    with pytest.raises(RubricError, match=re.escape(f"template: {template!r} must name a file in the rubric's folder")):
        load_rubric(write("r/t.yaml", f"template: {template}\n" + VALID))


def test_a_scale_of_a_thousand_levels_and_a_template_in_a_subfolder_load(write) -> None:
    write("sub/t.j2", "{% block system %}{% endblock %}{% block user %}{% endblock %}")
    text = "template: sub/t.j2\n" + VALID.replace("max: 3\n", "max: 1001\n").replace("3: good", "1001: good")
    assert load_rubric(write("ok.yaml", text)).criteria[1].scale.allowed()[-1] == 1001
