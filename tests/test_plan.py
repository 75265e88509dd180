"""Planning: which therapist turns each criterion applies to, decided by rules before any judge call."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from evaluator import patterns
from evaluator.models import Subset
from evaluator.plan import (
    SubsetError,
    TurnPlan,
    applicability_after,
    plan_turns,
    select_plans,
    select_work,
    static_applicability,
)
from evaluator.rubrics import RubricError, load_rubric, load_rubrics
from evaluator.transcript_shelf import TranscriptShelf, shelve, shelve_all
from evaluator.transcripts import read_all, read_transcripts
from tests.conftest import IGNORING_SEED, SLOWING_SEED
from tests.test_files import bounded
from tests.test_store import _judgment


def test_every_therapist_turn_gets_every_criterion(rubrics_dir: Path) -> None:
    transcripts = read_transcripts(IGNORING_SEED) + read_transcripts(SLOWING_SEED)
    rubrics = load_rubrics([rubrics_dir])
    plans = plan_turns(transcripts, rubrics)
    therapist_turns = sum(len(t.therapist_turns()) for t in transcripts)
    assert len(plans) == therapist_turns * len(rubrics)
    assert all(p.turn.speaker == "therapist" for p in plans)
    items = [i for p in plans for i in p.items()]
    assert len(items) == sum(p.n_items for p in plans) == therapist_turns * sum(len(r.criteria) for r in rubrics)
    assert len({i.key for i in items}) == len(items)


def test_stable_keys_across_plans(rubrics_dir: Path) -> None:
    transcripts = read_transcripts(SLOWING_SEED)
    first = [i.key for p in plan_turns(transcripts, load_rubrics([rubrics_dir])) for i in p.items()]
    second = [i.key for p in plan_turns(read_transcripts(SLOWING_SEED), load_rubrics([rubrics_dir])) for i in p.items()]
    assert first == second
    item = plan_turns(transcripts, load_rubrics([rubrics_dir]))[0].items()[0]
    assert item.key == f"{item.rubric_id}/004_d8361cbb940345fc/{item.turn_index}/{item.criterion_id}/0"


def test_pattern_prefilter_is_broad_for_recall(rubrics_dir: Path) -> None:
    """The cheap pattern rule lets a mere mention through: the judge, not the pattern, decides precision."""
    rubric = load_rubric(rubrics_dir / "pacing.yaml")
    requested = rubric.criterion("slow_down_requested")
    (transcript,) = read_transcripts(SLOWING_SEED)
    mention = next(t for t in transcript.turns if "one slow breath" in t.text)
    answer = transcript.turns[mention.index + 1]
    assert answer.speaker == "therapist"
    assert static_applicability(requested, transcript, answer) is None
    first_therapist = transcript.therapist_turns()[0]
    assert static_applicability(requested, transcript, first_therapist) == (
        "the patient's previous turn matches none of the applies_when patterns"
    )


def test_marker_rule_applies_only_after_a_request(rubrics_dir: Path) -> None:
    rubric = load_rubric(rubrics_dir / "rupture_repair.yaml")
    exploration = rubric.criterion("invites_rupture_exploration")
    (transcript,) = read_transcripts(SLOWING_SEED)
    applicable = [
        t.index for t in transcript.therapist_turns() if static_applicability(exploration, transcript, t) is None
    ]
    after_request = [
        t.index
        for t in transcript.therapist_turns()
        if "slow" in transcript.previous_patient_turn(t.index).text.lower()
        and "slow breath" not in transcript.previous_patient_turn(t.index).text
    ]
    assert applicable == after_request


def test_verdict_condition_waits_for_the_prerequisite(rubrics_dir: Path) -> None:
    rubric = load_rubric(rubrics_dir / "pacing.yaml")
    responsiveness = rubric.criterion("slow_down_responsiveness")
    assert applicability_after(responsiveness, _judgment(1, score=1)) == (None, None)
    assert applicability_after(responsiveness, _judgment(1, score=0))[0] == "not_applicable"
    status, reason = applicability_after(responsiveness, _judgment(1, status="unscored"))
    assert status == "unscored" and "slow_down_requested, which is unscored" in reason
    assert applicability_after(responsiveness, None)[0] == "not_applicable"


def test_a_pattern_that_times_out_on_a_turn_is_a_rubric_error_at_plan_time(
    write, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Load-time probes are built from a pattern's letters; '~' is not one, so this pattern loads and
    only a patient turn full of tildes shows it backtracking. Planning refuses it, naming everything."""
    rubric_path = write(
        "tilde.yaml",
        "id: tilde\ntitle: t\ncriteria:\n  - id: calm\n    name: n\n    question: q\n    scale: {type: binary}\n"
        "    applies_when: {previous_patient_turn_matches: ['(?:~+)+$']}\n",
    )
    transcript_path = write(
        "t.txt", "Patient: Hi.\n\nTherapist: Hello.\n\nPatient: " + "~" * 3000 + "!\n\nTherapist: Ok.\n"
    )
    rubric, (transcript,) = load_rubric(rubric_path), read_transcripts(transcript_path)
    monkeypatch.setattr(patterns, "SEARCH_TIMEOUT_S", 0.05)
    with bounded(), pytest.raises(RubricError) as caught:
        plan_turns([transcript], [rubric])
    assert caught.value.path == str(rubric_path)
    assert caught.value.problems == [
        "criteria[0] (id: calm).applies_when.previous_patient_turn_matches: pattern '(?:~+)+$' did not finish "
        f"within 0.05 s on the patient turn before turn 3 of transcript 't' ({transcript_path}, line 5); "
        "rewrite the pattern so that no repeated group can match the same text in several ways"
    ]


def test_of_two_patterns_that_time_out_the_one_first_in_plan_order_is_reported(
    write, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan is checked a transcript at a time (each parsed once for every rubric), yet the error is
    the one a rubric-by-rubric check meets first: rubric a on t2, not rubric b on the earlier t1."""
    rubric = "id: {0}\ntitle: t\ncriteria:\n  - id: c\n    name: n\n    question: q\n    scale: {{type: binary}}\n"
    rubric += "    applies_when: {{previous_patient_turn_matches: ['(?:{1}+)+$']}}\n"
    first, second = write("a.yaml", rubric.format("a", "~")), write("b.yaml", rubric.format("b", "#"))
    t1 = write("t1.txt", "Patient: " + "#" * 3000 + "!\n\nTherapist: Ok.\n")
    t2 = write("t2.txt", "Patient: " + "~" * 3000 + "!\n\nTherapist: Ok.\n")
    monkeypatch.setattr(patterns, "SEARCH_TIMEOUT_S", 0.05)
    with bounded(), pytest.raises(RubricError) as caught:
        plan_turns(read_transcripts(t1) + read_transcripts(t2), [load_rubric(first), load_rubric(second)])
    assert caught.value.path == str(first) and "transcript 't2'" in caught.value.problems[0]


def test_a_shelf_is_parsed_once_to_check_the_plan_and_once_per_rubric_and_a_subset_only_where_chosen(
    tmp_path: Path, rubrics_dir: Path
) -> None:
    for n in range(6):
        (tmp_path / f"s{n}.txt").write_text((IGNORING_SEED, SLOWING_SEED)[n % 2].read_text())
    listed, _ = read_all([tmp_path])
    shelf, _ = shelve_all([tmp_path])
    rubrics = load_rubrics([rubrics_dir])
    work = select_work(shelf, rubrics)
    assert shelf.loads == 6 and work.planned == sum(p.n_items for p in plan_turns(listed, rubrics))
    assert _keys(list(work.plans)) == _keys(plan_turns(listed, rubrics)) and shelf.loads == 6 * (1 + len(rubrics))
    chosen = Subset(transcripts=["s1", "s4"], criteria=["slow_down_responsiveness"])
    before = shelf.loads
    subset = select_work(shelf, rubrics, subset=chosen)
    assert isinstance(subset.transcripts, TranscriptShelf) and [t.id for t in subset.transcripts] == ["s1", "s4"]
    assert _keys(list(subset.plans)) == _keys(select_plans(shelve(listed), rubrics, subset=chosen).plans)
    assert shelf.loads - before == 2 * (1 + 1) + 2  # the two chosen: checked, planned for one rubric, listed
    shelf.close()


def test_patterns_are_searched_once_per_patient_turn(rubrics_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    transcripts = read_transcripts(SLOWING_SEED)
    rubrics = load_rubrics([rubrics_dir])
    plans = plan_turns(transcripts, rubrics)
    monkeypatch.setattr(patterns, "search", lambda pattern, text: pytest.fail("searched again after planning"))
    reasons = [static_applicability(c, p.transcript, p.turn) for p in plans for c in p.rubric.criteria]
    assert None in reasons and any(r and "matches none" in r for r in reasons)


# --- subsets -------------------------------------------------------------------------------------


def _keys(plans: list[TurnPlan]) -> list[str]:
    return [i.key for p in plans for i in p.items()]


def test_a_subset_narrows_transcripts_turns_and_criteria_together(rubrics_dir: Path) -> None:
    transcripts = read_transcripts(IGNORING_SEED) + read_transcripts(SLOWING_SEED)
    rubrics = load_rubrics([rubrics_dir])
    chosen = Subset(transcripts=["004_*"], criteria=["pacing/questions_asked"], turns=(3, 5))
    selection = select_plans(shelve(transcripts), rubrics, subset=chosen)
    assert _keys(selection.plans) == [
        "pacing/004_d8361cbb940345fc/3/questions_asked/0",
        "pacing/004_d8361cbb940345fc/5/questions_asked/0",
    ]
    assert [t.id for t in selection.transcripts] == ["004_d8361cbb940345fc"]
    assert selection.subset is not None and selection.subset.prerequisites == []
    full = select_plans(shelve(transcripts), rubrics)
    assert full.subset is None and _keys(full.plans) == _keys(plan_turns(transcripts, rubrics))


def test_a_criterion_brings_the_criterion_its_applies_when_reads(rubrics_dir: Path) -> None:
    """Without slow_down_requested judged first, acknowledges_request could only ever be "not applicable"."""
    transcripts = read_transcripts(SLOWING_SEED)
    selection = select_plans(
        shelve(transcripts), load_rubrics([rubrics_dir]), subset=Subset(criteria=["acknowledges_request"])
    )
    assert selection.subset is not None and selection.subset.prerequisites == ["pacing/slow_down_requested"]
    stages = [[c.id for c in stage] for stage in selection.plans[0].stages]
    assert stages == [["slow_down_requested"], ["acknowledges_request"]]
    assert "plus prerequisites pacing/slow_down_requested" in selection.subset.describe()


def test_limit_takes_the_first_items_in_plan_order_and_counts_samples(rubrics_dir: Path) -> None:
    transcripts = read_transcripts(SLOWING_SEED)
    rubrics = load_rubrics([rubrics_dir])
    everything = plan_turns(transcripts, rubrics)
    pairs = [k for k in _keys(everything)]
    selection = select_plans(shelve(transcripts), rubrics, samples=2, subset=Subset(limit=5))
    assert [k for k in _keys(selection.plans) if k.endswith("/0")] == pairs[:5]
    assert sum(p.n_items for p in selection.plans) == 10


def test_limit_never_keeps_a_dependent_criterion_without_its_prerequisite(rubrics_dir: Path) -> None:
    transcripts = read_transcripts(SLOWING_SEED)
    pacing = load_rubric(rubrics_dir / "pacing.yaml")
    for limit in range(1, len(pacing.criteria) + 1):
        plan = select_plans(shelve(transcripts), [pacing], subset=Subset(limit=limit)).plans[0]
        kept = {c.id for stage in plan.stages for c in stage}
        for criterion in pacing.criteria:
            rule = criterion.applies_when
            if criterion.id in kept and rule is not None and rule.criterion is not None:
                assert rule.criterion.criterion in kept


@pytest.mark.parametrize(
    ("chosen", "message"),
    [
        (Subset(criteria=["no_such"]), "--criterion 'no_such': no such criterion; the criteria are: pacing/"),
        (Subset(criteria=["mi_relational/questions_asked"]), "no such criterion"),
        (Subset(transcripts=["zzz*"]), "--transcript 'zzz*' matches no transcript; the ids are: 004_d8361cbb940345fc"),
        (Subset(turns=(900, 950)), "--turns 900-950: no therapist turn in that range; therapist turns are 1, 3, 5, "),
    ],
)
def test_a_subset_that_selects_nothing_says_what_there_is(rubrics_dir: Path, chosen: Subset, message: str) -> None:
    with pytest.raises(SubsetError, match=re.escape(message)):
        select_plans(shelve(read_transcripts(SLOWING_SEED)), [load_rubric(rubrics_dir / "pacing.yaml")], subset=chosen)
