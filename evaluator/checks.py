"""The deterministic checks: named scorers that rate a therapist turn from the phrases in it.

A rubric criterion names its check (`check: question_count`); `check_fits` tells the rubric loader
whether that check can fill the criterion's scale, and the rules judge runs it. Checks need no
network and give the same verdict every time, so they serve as a baseline, a prefilter and a test
oracle for the LLM judge. The phrases themselves live in `evaluator.markers`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from evaluator import markers
from evaluator.markers import Marker
from evaluator.models import CategoricalScale, Criterion, LikertScale, Transcript, Turn

NO_CHECK_REASON = "no LLM judge configured"
LIKERT_RANGE = (1, 5)
SHORT_TURN_WORDS = 40


@dataclass(frozen=True)
class RuleContext:
    transcript: Transcript
    turn: Turn
    previous_patient: Turn | None
    criterion: Criterion

    @property
    def previous_therapist(self) -> Turn | None:
        """The therapist's turn before this one, to tell a new technique from one under way."""
        earlier = self.transcript.turns[: self.turn.index]
        return next((t for t in reversed(earlier) if t.speaker == "therapist"), None)


@dataclass(frozen=True)
class RuleVerdict:
    score: float | None = None
    label: str | None = None
    rationale: str = ""
    evidence: tuple[str, ...] = ()  # verbatim substrings of the transcript


@dataclass(frozen=True)
class Check:
    name: str
    scale_types: frozenset[str]
    fn: Callable[[RuleContext], RuleVerdict]
    doc: str
    labels: tuple[str, ...] = ()  # for categorical checks: every label the check can return


# --- small checks ----------------------------------------------------------------------------------


def _binary(marker: Marker | None, yes: str, no: str) -> RuleVerdict:
    if marker is None:
        return RuleVerdict(score=0, rationale=no)
    return RuleVerdict(score=1, rationale=f"{yes}: {marker.quote!r}", evidence=(marker.quote,))


def _words(text: str) -> int:
    return len(text.split())


def pacing_request(ctx: RuleContext) -> RuleVerdict:
    if ctx.previous_patient is None:
        return RuleVerdict(score=0, rationale="no patient turn before this one")
    return _binary(
        markers.pacing_request(ctx.previous_patient.text),
        "the patient asks to slow down",
        "the patient's previous turn makes no request to slow down",
    )


def _acknowledgement(text: str) -> tuple[str, ...]:
    """Quotes showing the turn acknowledges the pace: pace words, or discomfort named plus presence."""
    pace = markers.acknowledges_pace(text)
    if pace is not None:
        return (pace.quote,)
    discomfort, presence = markers.names_discomfort(text), markers.offers_presence(text)
    if discomfort is not None and presence is not None:
        return (discomfort.quote, presence.quote)
    return ()


def acknowledges_pacing_request(ctx: RuleContext) -> RuleVerdict:
    quotes = _acknowledgement(ctx.turn.text)
    if not quotes:
        return RuleVerdict(score=0, rationale="neither the pace nor the patient's discomfort is acknowledged")
    return RuleVerdict(score=1, rationale=f"acknowledges: {' / '.join(map(repr, quotes))}", evidence=quotes)


def introduces_exercise(ctx: RuleContext) -> RuleVerdict:
    return _binary(
        markers.introduces_exercise(ctx.turn.text), "asks for an exercise", "no exercise or technique asked for"
    )


def scripted_self_statement(ctx: RuleContext) -> RuleVerdict:
    return _binary(
        markers.scripted_self_statement(ctx.turn.text),
        "tells the patient what to say to themselves",
        "no scripted self-statement",
    )


def offers_choice_or_pause(ctx: RuleContext) -> RuleVerdict:
    return _binary(
        markers.offers_choice_or_pause(ctx.turn.text), "offers a choice or pause", "no choice or pause offered"
    )


def validates_emotion(ctx: RuleContext) -> RuleVerdict:
    return _binary(markers.validates_emotion(ctx.turn.text), "validates", "no validating phrase")


def premature_reassurance(ctx: RuleContext) -> RuleVerdict:
    return _binary(markers.premature_reassurance(ctx.turn.text), "reassures", "no premature reassurance")


def checks_in(ctx: RuleContext) -> RuleVerdict:
    return _binary(markers.checks_in(ctx.turn.text), "checks in", "does not ask how the session is landing")


def question_count(ctx: RuleContext) -> RuleVerdict:
    found = markers.questions(ctx.turn.text)
    noun = "question" if len(found) == 1 else "questions"
    return RuleVerdict(score=len(found), rationale=f"{len(found)} {noun}", evidence=tuple(found))


def relative_length(ctx: RuleContext) -> RuleVerdict:
    """Word count against the patient's previous turn: under 0.75x shorter, over 1.33x longer."""
    own = _words(ctx.turn.text)
    if ctx.previous_patient is None:
        return RuleVerdict(label="similar", rationale=f"{own} words; no patient turn before it")
    theirs = _words(ctx.previous_patient.text)
    ratio = own / theirs if theirs else float("inf")
    label = "shorter" if ratio < 0.75 else "longer" if ratio > 1.33 else "similar"
    return RuleVerdict(label=label, rationale=f"{own} words against the patient's {theirs}")


# --- the composite --------------------------------------------------------------------------------

# Words too common to show that the therapist is staying with what the patient said.
_STOPWORDS = frozenset(
    """about after again also been before being could didn't doesn't don't even feel feeling feels from
    going guess have here it's just know like make makes maybe more much really right some something
    still that that's their them then there they thing things think this those though what when where
    which while with would you're your yourself i'm kind sort want""".split()
)
_WORD = re.compile(r"[a-z']+")


def _content_words(text: str) -> set[str]:
    """Lower-cased words of four letters or more, crudely stemmed, without the common ones."""
    stems: set[str] = set()
    for word in _WORD.findall(text.lower().replace("’", "'")):
        if len(word) < 4 or word in _STOPWORDS:
            continue
        for suffix in ("ing", "ed", "es", "s", "ly"):
            if word.endswith(suffix) and len(word) - len(suffix) >= 4:
                word = word[: -len(suffix)]
                break
        stems.add(word)
    return stems


def _shared_words(ctx: RuleContext) -> set[str]:
    """Content words the turn takes up from the patient's previous turn: staying with what they said."""
    if ctx.previous_patient is None:
        return set()
    return _content_words(ctx.turn.text) & _content_words(ctx.previous_patient.text)


def _new_techniques(ctx: RuleContext) -> dict[str, Marker]:
    """Exercise kinds in this turn that the previous therapist turn was not already doing; grounding
    or a breath the patient proposed is following the patient, not pushing on."""
    kinds = markers.exercise_kinds(ctx.turn.text)
    if ctx.previous_therapist is not None:
        for kind in markers.exercise_kinds(ctx.previous_therapist.text):
            kinds.pop(kind, None)
    if ctx.previous_patient is not None and markers.asks_for_grounding(ctx.previous_patient.text):
        kinds.pop("breathing", None)
        kinds.pop("present_moment", None)
    return kinds


def pacing_responsiveness(ctx: RuleContext) -> RuleVerdict:
    """How far the turn honours a request to slow down, 1..5, as the sum of narrow components.

    Start at 1 (anchor 1: ignores the request and pushes on), then +1 for each of:
      acknowledged  - the pace or the patient's discomfort is named in words (anchor 3 needs this);
      one question  - at most one question, not a volley;
      no push       - no scripted self-statement and no *new* technique (one already under way in
                      the previous therapist turn, or grounding the patient proposed, is not new);
      eases off     - offers a choice or a pause, or stays short (<= 40 words) and stays with the
                      patient's own words (at least two content words shared with their turn).
    So words alone with the old agenda reach about 3, and 5 needs all four: acknowledged, one gentle
    question at most, nothing new, and a choice or a short turn that stays with the patient.
    """
    text = ctx.turn.text
    acknowledged = _acknowledgement(text)
    asked = markers.questions(text)
    scripted = markers.scripted_self_statement(text)
    new = _new_techniques(ctx)
    choice = markers.offers_choice_or_pause(text)
    staying = _words(text) <= SHORT_TURN_WORDS and len(_shared_words(ctx)) >= 2

    pushed = "scripted self-statement" if scripted else f"new technique: {', '.join(sorted(new))}" if new else ""
    eased = "offers a choice or pause" if choice else "short and stays with the patient" if staying else ""
    components = [
        ("acknowledged" if acknowledged else "not acknowledged", bool(acknowledged)),
        (f"{len(asked)} question{'' if len(asked) == 1 else 's'}", len(asked) <= 1),
        (pushed or "nothing new", not pushed),
        (eased or "does not ease off", bool(eased)),
    ]
    low, high = LIKERT_RANGE
    score = max(low, min(high, low + sum(passed for _, passed in components)))
    rationale = "; ".join(f"{'+1' if passed else '+0'} {what}" for what, passed in components)
    evidence = acknowledged + tuple(m.quote for m in (scripted, *new.values(), choice) if m is not None)
    return RuleVerdict(score=score, rationale=f"{score}: {rationale}", evidence=evidence)


# --- registry -------------------------------------------------------------------------------------


def _check(fn: Callable[[RuleContext], RuleVerdict], scale: str, doc: str, labels: tuple[str, ...] = ()) -> Check:
    return Check(name=fn.__name__, scale_types=frozenset({scale}), fn=fn, doc=doc, labels=labels)


CHECKS: dict[str, Check] = {
    check.name: check
    for check in (
        _check(pacing_request, "binary", "1 if the previous patient turn asks to slow down, pause or ease off."),
        _check(acknowledges_pacing_request, "binary", "1 if the turn names the pace, or the discomfort with presence."),
        _check(introduces_exercise, "binary", "1 (bad) if the turn asks for an exercise, technique or self-statement."),
        _check(scripted_self_statement, "binary", "1 (bad) if the turn tells the patient what to say to themselves."),
        _check(offers_choice_or_pause, "binary", "1 if the turn offers a choice or a pause, or asks permission."),
        _check(question_count, "count", "Number of questions in the turn, outside quoted speech."),
        _check(validates_emotion, "binary", "1 if the turn validates the patient's feeling."),
        _check(premature_reassurance, "binary", "1 (bad) if the turn rushes to reassure or praise."),
        _check(checks_in, "binary", "1 if the turn asks how the session or the pace is landing."),
        _check(
            relative_length,
            "categorical",
            "Length against the previous patient turn: shorter, similar or longer.",
            labels=("shorter", "similar", "longer"),
        ),
        _check(pacing_responsiveness, "likert", "1..5 composite: how far the turn honours a request to slow down."),
    )
}


def check_fits(check_name: str, criterion: Criterion, checks: Mapping[str, Check] = CHECKS) -> str | None:
    """None if the check can fill the criterion's scale, else what is wrong, for the rubric author."""
    check = checks.get(check_name)
    if check is None:
        return f"unknown check {check_name!r} (known: {', '.join(sorted(checks))})"
    scale = criterion.scale
    if scale.type not in check.scale_types:
        fits = ", ".join(sorted(check.scale_types))
        return f"check {check_name!r} fills {fits} scales, not {scale.type}"
    if isinstance(scale, LikertScale) and (scale.min, scale.max) != LIKERT_RANGE:
        low, high = LIKERT_RANGE
        return f"check {check_name!r} scores {low}..{high}; the scale is {scale.min}..{scale.max}"
    if isinstance(scale, CategoricalScale):
        missing = [label for label in check.labels if label not in scale.allowed()]
        if missing:
            returned = ", ".join(check.labels)
            return f"check {check_name!r} returns labels {returned}; the scale lacks {', '.join(missing)}"
    return None


# --- the judge ------------------------------------------------------------------------------------


def outside_scale(criterion: Criterion, verdict: RuleVerdict) -> str | None:
    """What is wrong with a verdict the scale cannot hold, so a bad check is an error, never a grade."""
    scale = criterion.scale
    if isinstance(scale, CategoricalScale):
        return None if verdict.label in scale.allowed() else f"label {verdict.label!r} is not among {scale.allowed()}"
    allowed = scale.allowed()
    if verdict.score is None:
        return "no score"
    if allowed is not None and verdict.score not in allowed:
        return f"score {verdict.score} is outside {allowed[0]}..{allowed[-1]}"
    return None
