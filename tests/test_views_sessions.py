"""Evidence quotes found in a session's turns as the judge checked them, highlighted at the right place."""

from __future__ import annotations

from evaluator.models import Transcript, Turn
from evaluator.views.sessions import _Finder


def _transcript(*texts: str) -> Transcript:
    speakers = ("patient", "therapist")
    turns = [Turn(index=i, speaker=speakers[i % 2], label="x", text=t) for i, t in enumerate(texts)]
    return Transcript(id="t", source="t.txt", turns=turns)


def test_a_quote_is_found_ignoring_case_spacing_typographic_quotes_dashes_and_ellipses() -> None:
    text = "Okay.\n\n  We’ll  SLOW down — “no rush”… really"
    finder = _Finder(_transcript("Can we slow down?", text))
    located = finder.locate("we'll slow\tdown - \"no rush\"...", 1)
    assert located is not None
    turn, spans = located
    assert turn == 1 and [text[a:b] for a, b in spans] == ["We’ll  SLOW down — “no rush”…"]


def test_every_occurrence_in_the_rated_turn_else_the_nearest_context_before() -> None:
    finder = _Finder(_transcript("slow down please", "Slow down. OK, slow  down.", "no", "go on"))
    assert finder.locate(" slow down ", 1) == (1, [(0, 9), (15, 25)])
    assert finder.locate("please", 3) == (0, [(10, 16)])
    assert finder.locate("go on", 1) == (3, [(0, 5)])
    assert finder.locate("never said", 1) is None and finder.locate("   ", 1) is None
