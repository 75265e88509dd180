"""The rules judge: each check on hand-written turns, the seeds, scale fitting and the judge contract."""

from __future__ import annotations

from pathlib import Path
from statistics import mean
from typing import Any

import pytest

from evaluator.checks import CHECKS, Check, RuleContext, RuleVerdict, check_fits
from evaluator.judges.base import JudgeCall
from evaluator.judges.rules import RulesJudge
from evaluator.markers import pacing_request
from evaluator.models import Criterion, Item, Rubric, Transcript, Turn
from evaluator.plan import JudgeRequest
from evaluator.transcripts import read_transcripts

SEEDS = Path(__file__).resolve().parent.parent / "transcripts"
IGNORING_SEED = SEEDS / "000_76910fef4a2e608d.txt"  # the therapist ignores ~20 requests to slow down
SLOWING_SEED = SEEDS / "004_d8361cbb940345fc.txt"  # the therapist slows down

BINARY: dict[str, Any] = {"type": "binary"}
LIKERT: dict[str, Any] = {"type": "likert", "min": 1, "max": 5, "anchors": {1: "ignores", 5: "slows down"}}
COUNT: dict[str, Any] = {"type": "count", "unit": "questions"}
LENGTHS: dict[str, Any] = {
    "type": "categorical",
    "categories": [
        {"label": "shorter", "description": "shorter", "value": 0},
        {"label": "similar", "description": "similar", "value": 1},
        {"label": "longer", "description": "longer", "value": 2},
    ],
}
SCALE_OF = {"likert": LIKERT, "count": COUNT, "categorical": LENGTHS, "binary": BINARY}


def _transcript(*texts: str, transcript_id: str = "t") -> Transcript:
    """Alternating turns, patient first."""
    speakers = ("patient", "therapist")
    turns = [
        Turn(index=i, speaker=speakers[i % 2], label=speakers[i % 2].title(), text=text) for i, text in enumerate(texts)
    ]
    return Transcript(id=transcript_id, source=f"{transcript_id}.txt", turns=turns)


def _criterion(check: str | None, scale: dict[str, Any] | None = None, criterion_id: str = "c") -> Criterion:
    if scale is None:
        scale = SCALE_OF[next(iter(CHECKS[check].scale_types))] if check in CHECKS else BINARY
    return Criterion(id=criterion_id, name=criterion_id, question="?", scale=scale, check=check)


def _context(transcript: Transcript, turn: Turn, check: str = "pacing_request") -> RuleContext:
    return RuleContext(transcript, turn, transcript.previous_patient_turn(turn.index), _criterion(check))


def _run(check: str, *texts: str) -> RuleVerdict:
    """Run a check on the last turn of an alternating transcript (patient first)."""
    transcript = _transcript(*texts)
    return CHECKS[check].fn(_context(transcript, transcript.turns[-1], check))


def _seed(path: Path) -> Transcript:
    (transcript,) = read_transcripts(path)
    return transcript


# --- each check on hand-written turns ---------------------------------------------------------------

ASKS = "I'm getting overwhelmed. Can we slow down?"


@pytest.mark.parametrize(
    ("patient", "score"),
    [
        (ASKS, 1),
        ("This is moving too quickly for me.", 1),
        ("I'll try to take one slow breath before I send it.", 0),
        ('I could say, "I need a minute," to my partner.', 0),
        ("Stepping outside for a minute might help.", 0),
    ],
)
def test_pacing_request_reads_the_previous_patient_turn(patient: str, score: int) -> None:
    verdict = _run("pacing_request", patient, "Mm.")
    assert verdict.score == score
    assert all(quote in patient for quote in verdict.evidence)
    assert bool(verdict.evidence) == bool(score)


def test_pacing_request_without_a_patient_turn_is_no() -> None:
    transcript = Transcript(id="t", source="t", turns=[Turn(index=0, speaker="therapist", label="T", text="Hello.")])
    assert CHECKS["pacing_request"].fn(_context(transcript, transcript.turns[0])).score == 0


@pytest.mark.parametrize(
    ("check", "therapist", "score"),
    [
        ("acknowledges_pacing_request", "Of course, let's slow down. There's no rush.", 1),
        ("acknowledges_pacing_request", "We can go at your pace.", 1),
        ("acknowledges_pacing_request", "Let's take a step back for a moment.", 1),
        ("acknowledges_pacing_request", "This feels overwhelming right now. I'm here with you.", 1),
        ("acknowledges_pacing_request", "I'm here with you. What's your breath like?", 0),
        ("acknowledges_pacing_request", 'Can you try saying to yourself "I am enough"?', 0),
        ("introduces_exercise", "Close your eyes and take a deep breath.", 1),
        ("introduces_exercise", "Imagine talking to a friend who is struggling.", 1),
        ("introduces_exercise", "That sounds really hard. I'm here.", 0),
        ("scripted_self_statement", 'What if you said to yourself, "I\'m doing the best I can"?', 1),
        ("scripted_self_statement", 'You said it felt "false and embarrassing." That makes sense.', 0),
        ("offers_choice_or_pause", "Would you like to pause, or stay with this a little?", 1),
        ("offers_choice_or_pause", "Tell me about your partner.", 0),
        ("validates_emotion", "That sounds really draining, and it makes sense you'd want to hide.", 1),
        ("validates_emotion", "What would your partner say?", 0),
        ("premature_reassurance", "That's a great start, you've got this!", 1),
        ("premature_reassurance", "That sounds painful.", 0),
        ("checks_in", "How is this landing for you right now?", 1),
        ("checks_in", "What would you tell a friend?", 0),
    ],
)
def test_binary_checks(check: str, therapist: str, score: int) -> None:
    verdict = _run(check, ASKS, therapist)
    assert verdict.score == score
    assert bool(verdict.evidence) == bool(score)
    assert all(quote in therapist for quote in verdict.evidence)
    assert verdict.rationale


def test_question_count_counts_sentences_ending_in_a_question_mark() -> None:
    therapist = 'Can you say "is this okay?" to yourself? What would a friend say? Would you judge them? Okay.'
    verdict = _run("question_count", ASKS, therapist)
    assert verdict.score == 3
    assert verdict.rationale == "3 questions"
    assert verdict.evidence == (
        'Can you say "is this okay?" to yourself?',
        "What would a friend say?",
        "Would you judge them?",
    )
    assert _run("question_count", ASKS, "I'm here.") == RuleVerdict(score=0, rationale="0 questions")


@pytest.mark.parametrize(
    ("therapist", "label"),
    [("One two.", "shorter"), ("One two three four five six seven.", "similar"), (" ".join(["word"] * 20), "longer")],
)
def test_relative_length_against_the_patient_turn(therapist: str, label: str) -> None:
    verdict = _run("relative_length", "one two three four five six seven eight", therapist)
    assert verdict.label == label
    assert "8" in verdict.rationale


def test_relative_length_without_a_patient_turn_is_similar() -> None:
    transcript = Transcript(id="t", source="t", turns=[Turn(index=0, speaker="therapist", label="T", text="Hi there.")])
    assert CHECKS["relative_length"].fn(_context(transcript, transcript.turns[0])).label == "similar"


# --- the composite ----------------------------------------------------------------------------------


def test_pacing_responsiveness_anchor_5() -> None:
    verdict = _run(
        "pacing_responsiveness",
        ASKS,
        "Yes, let's slow right down. There's no rush. Would you like to pause for a moment, or just stay with "
        "what you're feeling?",
    )
    assert verdict.score == 5
    assert "acknowledged" in verdict.rationale and "offers a choice" in verdict.rationale


def test_pacing_responsiveness_anchor_1() -> None:
    verdict = _run(
        "pacing_responsiveness",
        "Can we slow down? I'm getting uncomfortable.",
        'Can you try saying to yourself "I am enough"? What would your partner think? What would you tell a friend?',
    )
    assert verdict.score == 1
    assert "scripted self-statement" in verdict.rationale and "3 questions" in verdict.rationale


def test_pacing_responsiveness_words_without_change_is_middling() -> None:
    verdict = _run(
        "pacing_responsiveness",
        ASKS,
        "Let's take a step back. Can you imagine your partner listening? What would they say? How would you feel?",
    )
    assert verdict.score == 2  # acknowledged, but three questions and a new imagery exercise


def test_pacing_responsiveness_short_turn_that_stays_with_the_patient() -> None:
    verdict = _run(
        "pacing_responsiveness",
        "My chest is tight and my jaw is clenched. Can we slow down a lot?",
        "Your chest is tight, your jaw is clenched. I'm right here.",
    )
    assert verdict.score == 4
    assert "short and stays with the patient" in verdict.rationale


def test_pacing_responsiveness_technique_already_under_way_is_not_new() -> None:
    earlier = "Notice the sensation in your hands."
    verdict = _run(
        "pacing_responsiveness",
        "I'm scared.",
        earlier,
        "My hands are clammy. Can we slow down?",
        "Notice your feet on the floor, just that.",
    )
    assert "nothing new" in verdict.rationale


def test_pacing_responsiveness_grounding_the_patient_asked_for_is_not_new() -> None:
    verdict = _run(
        "pacing_responsiveness",
        "Can we slow way down and do one tiny grounding thing, like naming three things I can see?",
        "What are three things you can see right now?",
    )
    assert "nothing new" in verdict.rationale
    pushed = _run("pacing_responsiveness", "Can we slow way down?", "What are three things you can see right now?")
    assert "new technique" in pushed.rationale


def _responsiveness_after_requests(path: Path) -> list[float]:
    transcript = _seed(path)
    scores = []
    for turn in transcript.therapist_turns():
        previous = transcript.previous_patient_turn(turn.index)
        if previous is not None and pacing_request(previous.text):
            verdict = CHECKS["pacing_responsiveness"].fn(_context(transcript, turn, "pacing_responsiveness"))
            assert verdict.score is not None
            scores.append(verdict.score)
    return scores


def test_seed_that_slows_down_scores_clearly_higher() -> None:
    ignoring, slowing = _responsiveness_after_requests(IGNORING_SEED), _responsiveness_after_requests(SLOWING_SEED)
    assert len(ignoring) >= 15 and len(slowing) == 15
    assert mean(ignoring) <= 2.5
    assert mean(slowing) >= 3.0
    assert mean(slowing) - mean(ignoring) >= 1.0


@pytest.mark.parametrize("path", [IGNORING_SEED, SLOWING_SEED], ids=["000", "004"])
def test_every_evidence_quote_occurs_verbatim_in_the_seed(path: Path) -> None:
    transcript = _seed(path)
    text = "\n".join(t.text for t in transcript.turns)
    for turn in transcript.therapist_turns():
        for name in CHECKS:
            verdict = CHECKS[name].fn(_context(transcript, turn, name))
            assert all(quote and quote in text for quote in verdict.evidence), (name, turn.index, verdict)


# --- check_fits --------------------------------------------------------------------------------------


def test_check_fits_accepts_every_check_on_its_own_scale() -> None:
    for name, check in CHECKS.items():
        for scale_type in check.scale_types:
            assert check_fits(name, _criterion(name, SCALE_OF[scale_type])) is None


def test_check_fits_names_an_unknown_check_and_lists_the_known_ones() -> None:
    message = check_fits("slowness", _criterion(None))
    assert message is not None and "unknown check 'slowness'" in message and "question_count" in message


def test_check_fits_refuses_the_wrong_scale_type() -> None:
    message = check_fits("question_count", _criterion("question_count", BINARY))
    assert message is not None and "count" in message and "binary" in message


def test_check_fits_refuses_a_likert_range_other_than_1_to_5() -> None:
    scale = {"type": "likert", "min": 0, "max": 4, "anchors": {0: "no", 4: "yes"}}
    message = check_fits("pacing_responsiveness", _criterion("pacing_responsiveness", scale))
    assert message is not None and "1..5" in message and "0..4" in message


def test_check_fits_refuses_categories_missing_a_returned_label() -> None:
    scale = {
        "type": "categorical",
        "categories": [{"label": "short", "description": "s"}, {"label": "long", "description": "l"}],
    }
    message = check_fits("relative_length", _criterion("relative_length", scale))
    assert message is not None and "shorter" in message and "similar" in message


# --- RulesJudge ---------------------------------------------------------------------------------------


def _request(criterion: Criterion, transcript: Transcript, turn_index: int) -> JudgeRequest:
    rubric = Rubric(id="pacing", version=3, title="Pacing", criteria=[criterion], hash="rubric-hash")
    item = Item(rubric_id=rubric.id, transcript_id=transcript.id, turn_index=turn_index, criterion_id=criterion.id)
    return JudgeRequest(
        item=item,
        rubric=rubric,
        criterion=criterion,
        transcript=transcript,
        turn=transcript.turns[turn_index],
    )


def _call(*requests: JudgeRequest) -> JudgeCall:
    return JudgeCall(requests=requests, template_hash="tmpl", prompt_hash="prompt")


TRANSCRIPT = _transcript(
    "Hi.", "How are you?", ASKS, "Of course, let's slow down. Would you like to pause?", transcript_id="s1"
)


async def test_judge_without_a_check_is_unscored() -> None:
    (judgment,) = await RulesJudge().judge(_call(_request(_criterion(None), TRANSCRIPT, 3)))
    assert judgment.status == "unscored"
    assert judgment.unscored_reason == "no LLM judge configured"
    assert judgment.score is None and judgment.label is None


async def test_judge_scores_with_evidence_and_provenance() -> None:
    request = _request(_criterion("acknowledges_pacing_request"), TRANSCRIPT, 3)
    (judgment,) = await RulesJudge().judge(_call(request))
    assert judgment.status == "ok" and judgment.score == 1 and judgment.verdict == 1
    assert [e.quote for e in judgment.evidence] == ["slow down"]
    assert all(e.found for e in judgment.evidence)
    assert judgment.key == "pacing/s1/3/c/0" and judgment.transcript_id == "s1" and judgment.turn_index == 3
    assert (judgment.rubric_id, judgment.rubric_version, judgment.rubric_hash) == ("pacing", 3, "rubric-hash")
    assert (judgment.template_hash, judgment.prompt_hash) == ("tmpl", "prompt")
    assert judgment.judge == "rules" and judgment.model is None and judgment.attempts == 1
    assert judgment.latency_s >= 0


async def test_judge_marks_evidence_from_the_patient_turn_as_found() -> None:
    (judgment,) = await RulesJudge().judge(_call(_request(_criterion("pacing_request"), TRANSCRIPT, 3)))
    assert judgment.score == 1
    assert [(e.quote, e.found) for e in judgment.evidence] == [("Can we slow down", True)]


async def test_judge_gives_a_categorical_label_and_its_value() -> None:
    (judgment,) = await RulesJudge().judge(_call(_request(_criterion("relative_length"), TRANSCRIPT, 3)))
    assert judgment.status == "ok" and judgment.label == "longer" and judgment.score == 2


async def test_judge_answers_every_request_in_order() -> None:
    requests = [_request(_criterion(name), TRANSCRIPT, 3) for name in ("question_count", "checks_in", None)]
    judgments = await RulesJudge().judge(_call(*requests))
    assert [j.status for j in judgments] == ["ok", "ok", "unscored"]
    assert judgments[0].score == 1


def _raises(ctx: RuleContext) -> RuleVerdict:
    raise ValueError(f"no luck on turn {ctx.turn.index}")


def _out_of_scale(ctx: RuleContext) -> RuleVerdict:
    return RuleVerdict(score=7)


def _invents(ctx: RuleContext) -> RuleVerdict:
    return RuleVerdict(score=1, evidence=("words nobody said",))


async def test_evidence_absent_from_the_transcript_is_flagged_not_found() -> None:
    judge = RulesJudge({"invents": Check("invents", frozenset({"binary"}), _invents, "quotes nothing real")})
    (judgment,) = await judge.judge(_call(_request(_criterion("invents", BINARY), TRANSCRIPT, 3)))
    assert judgment.status == "ok"
    assert [(e.quote, e.found) for e in judgment.evidence] == [("words nobody said", False)]


async def test_a_failing_check_is_an_error_never_a_score() -> None:
    judge = RulesJudge({"boom": Check("boom", frozenset({"binary"}), _raises, "always fails")})
    (judgment,) = await judge.judge(_call(_request(_criterion("boom", BINARY), TRANSCRIPT, 3)))
    assert judgment.status == "error"
    assert judgment.error == "check boom failed: no luck on turn 3"
    assert judgment.score is None and judgment.label is None


async def test_a_verdict_outside_the_scale_is_an_error() -> None:
    judge = RulesJudge({"seven": Check("seven", frozenset({"binary"}), _out_of_scale, "returns 7")})
    (judgment,) = await judge.judge(_call(_request(_criterion("seven", BINARY), TRANSCRIPT, 3)))
    assert judgment.status == "error" and judgment.error is not None and "outside" in judgment.error


async def test_a_check_that_does_not_fit_the_scale_is_an_error() -> None:
    (judgment,) = await RulesJudge().judge(_call(_request(_criterion("question_count", BINARY), TRANSCRIPT, 3)))
    assert judgment.status == "error" and judgment.error is not None and "count" in judgment.error


async def test_describe_and_close() -> None:
    judge = RulesJudge()
    assert judge.name == "rules"
    assert judge.describe() == {"judge": "rules", "checks": sorted(CHECKS)}
    await judge.aclose()


def test_every_check_documents_itself_and_is_registered_under_its_name() -> None:
    assert set(CHECKS) == {
        "pacing_request",
        "acknowledges_pacing_request",
        "introduces_exercise",
        "scripted_self_statement",
        "offers_choice_or_pause",
        "question_count",
        "validates_emotion",
        "premature_reassurance",
        "checks_in",
        "relative_length",
        "pacing_responsiveness",
    }
    assert all(check.name == name and check.doc for name, check in CHECKS.items())
