"""The phrase detectors: requests told from mentions, and every quote verbatim in its text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from evaluator import markers
from evaluator.markers import MARKERS, pacing_request
from evaluator.models import Transcript
from evaluator.transcripts import read_transcripts

SEEDS = Path(__file__).resolve().parent.parent / "transcripts"
IGNORING_SEED = SEEDS / "000_76910fef4a2e608d.txt"  # the therapist ignores ~20 requests to slow down
SLOWING_SEED = SEEDS / "004_d8361cbb940345fc.txt"  # the therapist slows down


def _seed(path: Path) -> Transcript:
    (transcript,) = read_transcripts(path)
    return transcript


REQUESTS = [
    "can we slow down?",
    "can we slow down a lot?",
    "can we slow way down?",
    "can we take it really slow?",
    "Can we… take it really slow?",
    "Can we... take it really slow?",
    "can we go slower?",
    "can we keep it slow?",
    "can we keep it really slow?",
    "I'm getting overwhelmed and would like to go super slow",
    "could we slow things down",
    "Could you just slow down a bit?",
    "please slow down",
    "slow down, please",
    "Wait, slow down.",
    "let's slow down",
    "Let’s pause here.",
    "I need us to slow down",
    "I’d like to slow down",
    "can we pause?",
    "can we take a break?",
    "can I have a moment?",
    "can I have a minute?",
    "can we stop for a second",
    "Can we take a step back?",
    "Can we ease off a little?",
    "this is too fast",
    "you're going too fast",
    "this is moving too quickly",
    "it's too much",
    "this is too much for me",
    "it's getting too intense",
    "You're overwhelming me.",
    "I need a break from this",
    "hold on, wait",
    "Okay. Hold on.",
    "can we back up",
    "not so fast",
    "one thing at a time please",
    "give me a second",
    "I need a minute, please.",
    "Honestly, I need a minute.",
    "I don't know — can we go a bit slower?",
]

MENTIONS = [
    "I'll try to take one slow breath before I send it",
    "when I pause for a breath it loosens",
    "maybe I'll try it again before I tell my partner I need a minute.",
    'I guess a small thing would be to actually say, "I need a minute," and then take three deep breaths',
    "But the idea of saying I need a minute brings up this hot shame",
    "showing up means being honest when I need a break instead of pretending",
    "stepping outside for a minute might help",
    "my breathing slowed",
    "I'm a slow reader",
    "things at work are slow",
    'Maybe I could try saying, "I\'m having a hard time — could we sit together for a few minutes?"',
    "my partner said “slow down, please” yesterday",
    "can we keep sitting with this?",
    "can we keep talking about how to make more of those tiny steps feel less scary?",
    "Can you stay with me while I send it?",
    "I'm getting overwhelmed",
    "I'm getting really overwhelmed.",
    "I want to take a break from work",
    "I try to hold on to that feeling",
    "it's too much to ask of them",
    "I love you too much",
    "I worry too much",
    "It takes too much energy",
]


@pytest.mark.parametrize("text", REQUESTS)
def test_pacing_request_detects_requests_and_complaints(text: str) -> None:
    marker = pacing_request(text)
    assert marker is not None, text
    assert marker.name == "pacing_request"
    assert marker.quote and marker.quote in text


@pytest.mark.parametrize("text", MENTIONS)
def test_pacing_request_ignores_mentions(text: str) -> None:
    assert pacing_request(text) is None


def test_pacing_request_quotes_the_request_itself() -> None:
    text = "I don't know... I guess it helped a little; can we slow down? I'm uncomfortable."
    assert pacing_request(text) == markers.Marker("pacing_request", "can we slow down")


def test_markers_registry_names_its_detectors() -> None:
    assert MARKERS == {"pacing_request": pacing_request}


def _fired(transcript: Transcript) -> set[int]:
    return {t.index for t in transcript.turns if t.speaker == "patient" and pacing_request(t.text)}


def test_pacing_request_on_the_ignoring_seed() -> None:
    transcript = _seed(IGNORING_SEED)
    asking = {t.index for t in transcript.turns if t.speaker == "patient" and "can we slow down" in t.text.lower()}
    assert len(asking) >= 15
    assert _fired(transcript) == asking
    mentions = [
        t
        for t in transcript.turns
        if t.speaker == "patient" and re.search(r"need a (minute|break)", t.text) and t.index not in asking
    ]
    assert mentions, "the seed mentions 'I need a minute' without asking"
    assert all(pacing_request(t.text) is None for t in mentions)


def test_pacing_request_on_the_slowing_seed() -> None:
    transcript = _seed(SLOWING_SEED)
    phrases = (
        "take it really slow",
        "go slower",
        "slow down a lot",
        "slow way down",
        "keep it slow",
        "keep it really slow",
        "go super slow",
        "slow down and maybe",
    )
    asking = {t.index for t in transcript.turns if t.speaker == "patient" and any(p in t.text.lower() for p in phrases)}
    assert len(asking) == 16
    assert _fired(transcript) == asking
    breath = next(t for t in transcript.turns if "take one slow breath" in t.text)
    assert pacing_request(breath.text) is None


# --- therapist phrases ------------------------------------------------------------------------------

THERAPIST_PHRASES = {
    "acknowledges_pace": (
        [
            "Yes, let's slow right down.",
            "There's no rush.",
            "We can take this slowly.",
            "We'll go at your pace.",
            "Let's take a step back for a moment.",
            "Let's take it one tiny step at a time.",
            "Let's take a moment.",
            "We don't have to figure it all out right now.",
            "Let's pause here.",
            "Is this pace okay?",
        ],
        ["Take a few slow breaths.", "Can you try saying it to yourself?", "What would your partner think?"],
    ),
    "introduces_exercise": (
        [
            'Say to yourself, "I am enough."',
            "Try saying it out loud.",
            "Imagine you are talking to a friend.",
            "Take a deep breath.",
            "Close your eyes.",
            "Notice where the tension sits.",
            "Let's do a short exercise.",
            "Can you try that for 30 seconds?",
            'What if you said to yourself, "I\'m okay"?',
            "Let's reframe that thought.",
            "What are three things you can see right now?",
        ],
        [
            "I notice you seem tired.",
            "That sounds really hard.",
            "What happened next?",
            "Dependability is a strength you've noticed in yourself.",
        ],
    ),
    "scripted_self_statement": (
        [
            'Say to yourself, "I am enough."',
            'What if you said to yourself, "I\'m doing the best I can"?',
            'Can you try saying "I\'m allowing myself to be as I am"?',
            'When the thought comes, you simply say "That was a small step".',
        ],
        [
            'You said you felt "pissed at yourself."',
            'What could you say to your partner, like "Hey, I need some time"?',
            'You mentioned the word "failure."',
            "Say to yourself what feels true.",
        ],
    ),
    "offers_choice_or_pause": (
        [
            "Would you like to pause?",
            "If you'd like, we can stop here.",
            "Would it help to take a break?",
            "Is it okay if I ask about that?",
            "Would you be willing to try?",
            "We could stay with this or move on.",
            "We can pause whenever you need.",
            "Whatever feels right to you.",
            "We'll go at your pace.",
            "Your hands could rest there, if that feels safe.",
        ],
        ["Take a deep breath.", "What happened next?", "Tell me more about that."],
    ),
    "validates_emotion": (
        [
            "That makes sense.",
            "That's completely understandable.",
            "It's okay to feel this way.",
            "That sounds really hard.",
            "No wonder you're tired.",
            "That's a lot to carry.",
            "It's natural to worry about that.",
        ],
        ["What happened next?", "Let's try an exercise.", "Take a breath."],
    ),
    "premature_reassurance": (
        [
            "That's a great start!",
            "You've got this.",
            "It's not a failure to need help.",
            "It's actually a sign of strength.",
            "That's completely normal.",
            "That's actually a sign that you're getting closer.",
            "It's amazing that you would be kind.",
            "You're doing great.",
        ],
        ["That sounds hard.", "What would help right now?", "I'm here with you."],
    ),
    "checks_in": (
        [
            "How is this landing for you?",
            "How does it feel to talk about this?",
            "Is this okay?",
            "Is this pace okay for you?",
            "What's it like right now, talking about this?",
            "Would you rather stop here?",
            "What would be most helpful right now?",
        ],
        ["What's one thing you value?", "How did that feel at work?", "What would your partner think?"],
    ),
}
_POSITIVE = [(name, text) for name, (pos, _) in THERAPIST_PHRASES.items() for text in pos]
_NEGATIVE = [(name, text) for name, (_, neg) in THERAPIST_PHRASES.items() for text in neg]


@pytest.mark.parametrize(("detector", "text"), _POSITIVE)
def test_therapist_phrase_found_verbatim(detector: str, text: str) -> None:
    marker = getattr(markers, detector)(text)
    assert marker is not None, text
    assert marker.quote and marker.quote in text


@pytest.mark.parametrize(("detector", "text"), _NEGATIVE)
def test_therapist_phrase_absent(detector: str, text: str) -> None:
    assert getattr(markers, detector)(text) is None


def test_scripted_self_statement_quotes_the_statement() -> None:
    marker = markers.scripted_self_statement('Can you say to yourself, "I am being with this pain"? No judgment.')
    assert marker is not None and marker.quote == "I am being with this pain"


def test_presence_and_discomfort_are_separate_detectors() -> None:
    text = "It sounds like you're feeling uncomfortable right now. I'm here with you."
    assert markers.names_discomfort(text) == markers.Marker("names_discomfort", "uncomfortable")
    assert markers.offers_presence(text) == markers.Marker("offers_presence", "I'm here with you")
    assert markers.acknowledges_pace(text) is None


def test_exercise_kinds_tell_techniques_apart() -> None:
    kinds = markers.exercise_kinds('Take a deep breath and say to yourself, "I am calm." Notice your feet.')
    assert set(kinds) == {"breathing", "self_statement", "present_moment"}


def test_asks_for_grounding_needs_a_proposal() -> None:
    assert markers.asks_for_grounding("Can we slow way down and do one tiny grounding thing?")
    assert markers.asks_for_grounding("I'll try to take one slow breath before I send it.")
    assert markers.asks_for_grounding("After a few breaths my chest loosened.") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("What happened? And then what did you do? Tell me.", ["What happened?", "And then what did you do?"]),
        ('Could you say "can we sit?" to them? Maybe.', ['Could you say "can we sit?" to them?']),
        ('What if you said, "I\'m okay"?', ['What if you said, "I\'m okay"?']),
        ("I don't know... what now?", ["I don't know... what now?"]),
        ("That makes sense. Take your time.", []),
    ],
)
def test_questions_ignore_marks_inside_quotes(text: str, expected: list[str]) -> None:
    assert markers.questions(text) == expected
