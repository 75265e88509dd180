"""Named detectors of what is said in a turn, each returning the exact words that triggered it.

Patient markers (`MARKERS`) tell the planner whether a criterion applies to a turn; the therapist
phrase detectors below them feed the rules judge. Every detector returns a `Marker` whose `quote`
is a verbatim substring of the text it was given, so it can be shown as evidence, or None.

Matching runs on a *prepared* copy of the text of the same length: quoted speech is masked (what
the patient plans to say to someone else, or a sentence the therapist reads out, is not what the
speaker is doing in the session) and curly apostrophes are straightened. Because the length is
kept, a match's span cuts the quote out of the original text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = [
    "MARKERS",
    "Marker",
    "acknowledges_pace",
    "asks_for_grounding",
    "checks_in",
    "exercise_kinds",
    "introduces_exercise",
    "names_discomfort",
    "offers_choice_or_pause",
    "offers_presence",
    "pacing_request",
    "premature_reassurance",
    "prepare",
    "questions",
    "scripted_self_statement",
    "validates_emotion",
]


@dataclass(frozen=True)
class Marker:
    name: str
    quote: str


# --- preparing text ------------------------------------------------------------------------------

_QUOTED = re.compile(r'"[^"\n]*"|“[^”\n]*”')
_MASK = "\u25a1"  # matched by no pattern below, and not a clause boundary
_FLAGS = re.IGNORECASE | re.VERBOSE

# A clause ends at a sentence end (a lone period, not an ellipsis), a semicolon or colon, a dash
# between words, or a new line. Commas do not end one: "can we, um, slow down" is one request.
_CLAUSE_END = re.compile(r"[?!;:]+|(?<!\.)\.(?!\.)|\s[-–—]\s|[–—]|\n")
_SENTENCE_END = re.compile(r"[?!]+|(?<!\.)\.(?!\.)|\n")
_ENDS_IN_QUESTION = re.compile(r"\?[?!]*\s*$")


def prepare(text: str) -> str:
    """Mask quoted speech and straighten apostrophes, keeping every character's position."""
    masked = _QUOTED.sub(lambda m: _MASK * len(m.group()), text)
    return masked.replace("’", "'").replace("‘", "'")


def _spans(prepared: str, boundary: re.Pattern[str]) -> list[tuple[int, int]]:
    """(start, end) of the pieces between boundaries; a piece keeps its closing punctuation."""
    spans, start = [], 0
    for match in boundary.finditer(prepared):
        spans.append((start, match.end()))
        start = match.end()
    spans.append((start, len(prepared)))
    return [(a, b) for a, b in spans if prepared[a:b].strip(" \n" + _MASK)]


def _quote(text: str, start: int, end: int) -> str:
    """The original words at a span, without the blanks and commas around them."""
    return text[start:end].strip(" \n,;:")


def _first(name: str, patterns: Iterable[re.Pattern[str]], text: str) -> Marker | None:
    """The earliest match of any pattern within one clause of the prepared text."""
    prepared = prepare(text)
    best: tuple[int, int] | None = None
    for start, end in _spans(prepared, _CLAUSE_END):
        piece = prepared[start:end]
        for pattern in patterns:
            match = pattern.search(piece)
            if match and (best is None or start + match.start() < best[0]):
                best = (start + match.start(), start + match.end())
    return Marker(name, _quote(text, *best)) if best else None


def _compile(*parts: str) -> re.Pattern[str]:
    return re.compile("".join(parts), _FLAGS)


# --- patient: requests to slow down ---------------------------------------------------------------

# Who asks: a request frame addressed to the session ("can we", "could you", "let's", "please",
# "I need us to", "(I) would like to"). "when I pause" or "I'll take one slow breath" have none.
_FRAME = r"""
    \b(?:
        (?:can|could|would|may|might|shall) \s+ (?:we|you|i)
      | let's | let \s+ us
      | please
      | (?:i \s+ need | i'd \s+ like | i \s+ would \s+ like | i \s+ want) \s+ (?:us|you) \s+ to
      | (?:i'd | i \s+ would | would) \s+ (?:like|prefer|love) \s+ to
      | i \s+ want \s+ to
      | (?:we|you) \s+ (?:need|have) \s+ to
      | we \s+ should
      | is \s+ it \s+ (?:okay|ok|alright|all \s+ right) \s+ if \s+ (?:we|i)
      | maybe \s+ we \s+ (?:can|could)
    )
"""
# What may stand between the frame and the action: blanks, commas, ellipses and hedges. Bounded
# (a few hedges, not any number): unbounded, every "please" of an unpunctuated run of them would try
# all the rest, and one long turn would take minutes.
_HEDGE = r"""
    (?: [\s,…] | \.{2,}
      | \b(?: i \s+ guess | maybe | just | please | um+ | uh+ | perhaps | possibly | actually | all | both
            | try \s+ to | kind \s+ of | sort \s+ of )\b
    ){1,24}
"""
_TIME = r"(?:second|sec|moment|minute|bit|beat)"
_A_BIT = r"(?:(?:really|super|very|much|way|more|extra|a \s+ (?:bit|little|lot)) \s+)"
# A break taken from something else ("a break from work") is a mention, not a request to the session.
_NOT_ELSEWHERE = r"(?! \s+ from \s+ (?!this\b|that\b|it\b|talking\b|all \s+ this\b|these\b))"
_SLOWING = rf"""
    (?:
        slow \s+ (?:(?:it|things|this|everything) \s+)? (?:(?:way|right|a \s+ (?:bit|little|lot)) \s+)? down\b
      | slow \s+ (?:the|our|this) \s+ pace
      | go \s+ {_A_BIT}? slow(?:er|ly)?\b
      | take \s+ (?:it|things|this) \s+ {_A_BIT}? (?:slow(?:er|ly)?|easy)\b
      | (?:take \s+ (?:it|things|this) | do | take) \s+ one \s+ (?:thing|step) \s+ at \s+ a \s+ time
      | keep \s+ (?:it|things|this) \s+ (?:(?:really|super|very|nice \s+ and) \s+)? slow\b
      | pause\b
      | (?:take|have|get) \s+ a \s+ (?:(?:quick|short|little) \s+)? (?:break|breather|pause|{_TIME})\b {_NOT_ELSEWHERE}
      | stop \s+ (?:here|there|for \s+ now|for \s+ a \s+ {_TIME})\b
      | back \s+ up\b | (?:take \s+ a \s+)? step \s+ back\b
      | ease \s+ (?:off|up)\b
      | not \s+ (?:rush|push)\b
      | give \s+ me \s+ a \s+ (?:break|breather|{_TIME})\b
      | hold \s+ (?:on|off)\b (?! \s+ to\b)
    )
"""
_FRAMED_REQUEST = _compile(_FRAME, _HEDGE, _SLOWING)

# Imperatives need no frame, but only where they open a clause (possibly after a hedge or a
# comma): "Slow down, please", "Hold on, wait", "Give me a second". "I need a minute" counts only
# when it is said to the session: it opens the clause and nothing but a courtesy follows it, so
# "before I tell my partner I need a minute" or "when I need a break instead of pretending" do not.
_OPENING = r"""
    (?: ^ | (?<=,) ) \s*
    (?: (?: okay | ok | sorry | honestly | so | and | but | oh | hey | just | please | wait | really | actually
          | um+ | uh+ | i \s+ think | i \s+ guess | i \s+ don't \s+ know | i'm \s+ sorry ) [\s,…]+ ){0,8}
"""
_SAID_TO_SESSION = r"""
    (?= (?: \s* ,? \s* (?: please | here | now | right \s+ now
                         | from \s+ (?:this|that|all \s+ this|talking|these \s+ questions) ) \b ){0,8}
        \s* (?: $ | [.?!;,…\-–—] ) )
"""
_IMPERATIVE = _compile(
    _OPENING,
    rf"""
    (?: slow \s+ (?:it \s+ |things \s+ )? down\b
      | hold \s+ (?:on|up)\b (?! \s+ to\b)
      | wait \s+ a \s+ {_TIME}\b | wait \s* , \s* wait\b
      | give \s+ me \s+ a \s+ (?:break|breather|{_TIME})\b
      | one \s+ (?:thing|step) \s+ at \s+ a \s+ time\b
      | (?:i \s+ need | i \s+ just \s+ need) \s+ a \s+ (?:break|breather|pause|{_TIME}) {_SAID_TO_SESSION}
    )
    """,
)
# A complaint about the pace: the session ("this", "it", "you", "we") is or goes too fast or too
# much. A verb is required, so that "I love you too much" is not one; and "I'm getting
# overwhelmed" alone describes a state, not the session, so it is not one either.
_MOVING = r"(?:getting|going|moving|feeling|feels|happening|coming|becoming|pushing|rushing)"
_PACE_COMPLAINT = _compile(
    rf"""
    \b(?: this \s+ (?:session|conversation) | this | it | that | you | we )
    (?: (?: 's | 're | \s+ is | \s+ are ) \s+ (?:{_MOVING} \s+)? | \s+ {_MOVING} \s+ )
    (?: (?:a \s+ (?:bit|little)|way|just|really|kind \s+ of|so|much|far) \s+ )?
    too \s+ (?: fast | quick(?:ly)? | much | intense | soon | rushed | overwhelming )\b
    (?! \s+ (?: to \s+ ask | for \s+ (?:him|her|them|my|everyone) ) )
    """
)
_OVERWHELMING_ME = _compile(
    r"""
    \b(?: you're | you \s+ are | this \s+ is | it's | it \s+ is ) \s+ (?:really \s+ |kind \s+ of \s+ )?
    (?: overwhelming | rushing | pushing ) \s+ me\b
    | \bnot \s+ so \s+ fast\b
    """
)
_PACING_PATTERNS = (_FRAMED_REQUEST, _IMPERATIVE, _PACE_COMPLAINT, _OVERWHELMING_ME)


def pacing_request(text: str) -> Marker | None:
    """A request to slow down, pause or ease off, or a complaint that the session is too fast or
    too much (a 3RS confrontation marker), told apart from a mere mention of slowness or pauses.

    Counts: a request frame addressed to the session followed by a slowing phrase ("can we…
    take it really slow?", "could we slow things down", "I need us to slow down", "would like to go
    super slow", "can I have a moment?"); a clause-opening imperative ("slow down, please", "hold
    on, wait", "give me a second", "I need a minute, please."); a pace complaint ("this is too
    fast", "it's getting too intense", "you're overwhelming me", "not so fast").
    Does not count: quoted speech (masked), descriptions ("my breathing slowed", "when I pause
    for a breath"), plans elsewhere ("before I tell my partner I need a minute"), requests to go
    on ("can we keep sitting with this?"), states without a request ("I'm getting overwhelmed").
    """
    return _first("pacing_request", _PACING_PATTERNS, text)


MARKERS: dict[str, Callable[[str], Marker | None]] = {"pacing_request": pacing_request}


# --- therapist: phrases the rules judge scores ---------------------------------------------------

_WE_MAY = r"(?:let's | we \s+ can | we \s+ could | we'll)"
_ACKNOWLEDGES_PACE = _compile(
    rf"""
    \bslow(?:ing)? \s+ (?:(?:it|things|this|everything) \s+)? (?:(?:right|way|all \s+ the \s+ way) \s+)? down\b
  | \b(?:go|going|take|taking) \s+ (?:(?:it|this|things) \s+)? (?:(?:really|very|nice \s+ and|as) \s+)?
      slow(?:ly|er)?\b (?! \s+ breath)
  | \bslower\b
  | \b(?:the|this|our|your \s+ own|your|a \s+ (?:slower|gentler|comfortable|different)) \s+ pace\b
  | \bno \s+ (?:need \s+ to \s+)? (?:rush|hurry)\b
  | \b(?:we|you) \s+ don't \s+ (?:need|have) \s+ to \s+
      (?:rush|hurry|push|go \s+ (?:on|further|there)|figure|solve|fix|do \s+ (?:anything|it \s+ all))\b
  | \bstep \s+ back\b
  | \bone \s+ (?:tiny|small|little) \s+ step\b | \bone \s+ (?:thing|step) \s+ at \s+ a \s+ time\b
  | \b(?:take|taking) \s+ a \s+ (?:tiny|small|little) \s+ step\b
  | \b{_WE_MAY} \s+ (?:just \s+)? (?:take|have) \s+ a \s+ (?:moment|minute|pause|breather|break|beat)\b
  | \b{_WE_MAY} \s+ (?:just \s+)? (?:pause|stop \s+ (?:here|there|for \s+ (?:now|a)))\b
  | \b{_WE_MAY} \s+ (?:try \s+)? (?:something|do \s+ something) \s+ (?:tiny|smaller|simpler|gentler)\b
  | \bease \s+ (?:off|up)\b
    """
)
_NAMES_DISCOMFORT = _compile(
    r"""
    \b(?: uncomfortable | discomfort | overwhelm(?:ed|ing)? | too \s+ much | intense | distress(?:ed|ing)?
        | a \s+ lot \s+ (?:right \s+ now|to \s+ (?:hold|take \s+ in)) | scar(?:y|ed) | frightening | panic(?:ky)? )\b
    """
)
_OFFERS_PRESENCE = _compile(
    rf"""
    \bi'm \s+ (?:right \s+)? here (?: \s+ with \s+ you)?\b
  | \bi \s+ am \s+ (?:right \s+)? here\b
  | \bi'm \s+ with \s+ you\b
  | \byou're \s+ not \s+ alone\b
  | \b{_WE_MAY} \s+ (?:just \s+)? (?:stay|sit|be) \s+ (?:here \s+)? with \s+ (?:this|that|it|what)\b
  | \b{_WE_MAY} \s+ (?:just \s+)? (?:stay|be) \s+ here\b
    """
)

# Exercises by kind, so the rules can tell a new technique from one already under way.
_EXERCISES: dict[str, re.Pattern[str]] = {
    "self_statement": _compile(
        r"""
        \bsay \s+ to \s+ yourself\b | \btell \s+ yourself\b | \bremind \s+ yourself\b
      | \b(?:try|trying|start|practi[cs]e) \s+ saying\b
      | \bwhat \s+ if \s+ you \s+ (?:\w+ \s+)? (?:said|say|told)\b
      | \brepeat \s+ (?:after \s+ me|to \s+ yourself|the \s+ (?:phrase|words))\b
        """
    ),
    "imagery": _compile(r"\bimagin(?:e|ing)\b | \bpicture \s+ (?:yourself|a|that|this)\b | \bvisuali[sz]e\b"),
    "breathing": _compile(
        r"""
        \b(?:take|taking) \s+ (?:a \s+ few|a|one|that|this|some|two|three|\w+) \s+
          (?:(?:deep|slow|long|tiny|big|full) \s+)? breaths?\b
      | \bbreathe \s+ (?:in|out|deeply|slowly)\b | \bbreathing \s+ exercise\b
      | \b(?:in \s+ through \s+ your \s+ nose|out \s+ through \s+ your \s+ mouth)\b
        """
    ),
    # Grounding and noticing sensations are one kind: attention brought to present experience.
    "present_moment": _compile(
        r"""
        \bground(?:ing)?\b | \b(?:three|five|3|5) \s+ things \s+ you \s+ can \s+ (?:see|hear|touch|feel)\b
      | \bfeet \s+ on \s+ the \s+ (?:ground|floor)\b
      | (?<!\bi \s)(?<!\bi've \s) \bnotic(?:e|ing)\b | \bobserv(?:e|ing) \s+ (?:your|the|it|them|how|what)\b
      | \bbring \s+ (?:your \s+)? attention\b | \bscan \s+ (?:your|the) \s+ body\b | \bclose \s+ your \s+ eyes\b
      | \bwatch(?:ing)? \s+ (?:it|them|your \s+ thoughts)\b
        """
    ),
    "cognitive": _compile(
        r"""
        \breframe\b | \bchallenge \s+ (?:that|the|this) \s+ thought\b | \bevidence \s+ (?:for|against)\b
      | \balternative \s+ thought\b
        """
    ),
    "generic": _compile(
        r"""
        \bexercise\b | \bexperiment\b | \bpractice\b | \bhomework\b
      | \b(?:can|could|would) \s+ you \s+ (?:just \s+)? try\b | \blet's \s+ try\b | \btry \s+ (?:this|something)\b
        """
    ),
}

# The words that hand the patient a sentence to say: a cue right before the quote, with at most
# "to yourself", a comma or "like" between. "You said" before a quote is a reflection, not a cue.
_SELF_STATEMENT_CUE = _compile(
    r"""
    (?: \bsay \s+ to \s+ yourself | \btell \s+ yourself | \bremind \s+ yourself
      | \b(?:try|trying|start|practi[cs]e|consider) \s+ saying
      | \b(?:can|could|would) \s+ you \s+ (?:try \s+)? say(?:ing)?
      | \bif \s+ you \s+ (?:\w+ \s+)? (?:said|say|told \s+ yourself)
      | (?: \b(?:simply|just|then|and|could|can|might|to) \s+ | [,;] \s* ) say | \bsimply \s+ said
    )
    (?: \s+ to \s+ yourself )? [\s,:]* (?: something \s+ like \s* | like \s* )?
    $
    """
)
_QUOTE_BODY = re.compile(r'"([^"\n]*)"|“([^”\n]*)”')
_CUE_WINDOW = 60  # characters before a quote searched for its cue

# The patient proposing grounding or a breath ("can we do one tiny grounding thing", "I'll try to
# take one slow breath"): the therapist taking it up follows the patient rather than pushing on.
_ASKS_FOR_GROUNDING = _compile(
    r"""
    \b(?: (?:can|could|would) \s+ (?:we|you|i) | let's | i'll | i \s+ will | (?:i'd|would) \s+ like \s+ to
        | maybe \s+ (?:we|i) \s+ (?:can|could) | i \s+ (?:could|can) \s+ try )
    [^.?!;]{0,80}?
    \b(?: ground(?:ing|ed)? | breath(?:e|s|ing)? | nam(?:e|ing) \s+ (?:three|five|\d) | (?:three|five) \s+ things )\b
    """
)

_OFFERS_CHOICE = _compile(
    r"""
    \bwould \s+ you \s+ (?:like|rather|prefer)\b | \bif \s+ you(?:'d| \s+ would) \s+ (?:like|rather|prefer)\b
  | \bif \s+ you \s+ want(?:ed)?\b | \bdo \s+ you \s+ want \s+ to\b
  | \bwould \s+ it \s+ help\b
  | \b(?:is|would) \s+ it \s+ (?:be \s+)? (?:okay|ok|alright|all \s+ right) \s+ (?:if|to|with \s+ you)\b
  | \b(?:would|are) \s+ you \s+ (?:be \s+)? (?:willing|open|okay \s+ with)\b
  | \bwe \s+ (?:could|can|might) \s+ [^.?!]{1,80}? \s+ or \s+
  | \b(?:we \s+ can|we \s+ could|let's|feel \s+ free \s+ to) \s+ (?:also \s+ |just \s+ )?
      (?:pause|stop|take \s+ a \s+ (?:breather|moment|minute|pause))\b
  | \btake \s+ a \s+ break\b
  | \bwhatever \s+ (?:feels|seems) \s+ (?:right|okay|ok|comfortable|manageable|best|safe)\b
  | \bat \s+ your \s+ (?:own \s+)? pace\b
  | \bif \s+ (?:that|it|this) \s+ (?:feels|seems) \s+ (?:safe|okay|ok|right|comfortable|manageable|doable)\b
  | \bonly \s+ if \s+ you\b | \b(?:it's|that's) \s+ (?:your \s+ (?:choice|call)|up \s+ to \s+ you)\b
  | \byou \s+ (?:can|could|get \s+ to) \s+ (?:choose|decide)\b | \byou \s+ don't \s+ have \s+ to\b
    """
)
_HARD = r"""(?:hard|painful|draining|heavy|difficult|exhausting|overwhelming|scary|frightening|lonely|tough
              |upsetting|distressing|confusing)"""
_VALIDATES = _compile(
    rf"""
    \bmakes? \s+ (?:(?:a \s+ lot \s+ of|complete|total|so \s+ much|perfect) \s+)? sense\b
  | \bunderstandable\b
  | \b(?:it's|that's|it \s+ is) \s+ (?:okay|ok|alright|all \s+ right) \s+ (?:to \s+ feel|that|if \s+ (?:you|it))\b
  | \b(?:that|it|this) \s+ (?:sounds|must \s+ (?:be|feel)) \s+ (?:(?:really|so|very|incredibly|pretty) \s+)? {_HARD}\b
  | \bno \s+ wonder\b | \b(?:that's|it's) \s+ (?:a \s+ lot|so \s+ much)\b
  | \bit's \s+ (?:only \s+)? (?:natural|human) \s+ to\b | \bit's \s+ normal \s+ to \s+ feel\b
  | \bof \s+ course \s+ (?:you|it)\b
  | \b(?:are|is|feel|feels) \s+ valid\b | \bvalid \s+ (?:worries|concerns|feelings?)\b
  | \bi \s+ can \s+ (?:see|hear|understand) \s+ (?:why|how \s+ (?:hard|painful|much))\b
    """
)
_PREMATURE_REASSURANCE = _compile(
    r"""
    \b(?:that's|this \s+ is|it's|that \s+ is) \s+ (?:a \s+)? (?:really \s+)?
      (?:great|good|wonderful|fantastic|amazing|huge) \s+ (?:start|step|first \s+ step|progress|sign)\b
  | \byou've \s+ got \s+ this\b | \byou \s+ can \s+ do \s+ (?:this|it)\b
  | \b(?:it's|that's|it \s+ is) \s+ not \s+ (?:a \s+)? (?:failure|weakness|sign \s+ of \s+ weakness)\b
  | \bsign \s+ of \s+ (?:strength|courage|progress|growth)\b
  | \b(?:completely|totally|perfectly) \s+ normal\b
  | \b(?:that's|this \s+ is|it's) \s+ actually \s+ a \s+ (?:good \s+ |great \s+ )? sign\b
  | \b(?:it's|that's) \s+ (?:amazing|incredible|wonderful|fantastic)\b
  | \byou're \s+ doing \s+ (?:great|so \s+ well|amazing|really \s+ well|fine|good)\b
  | \b(?:don't|no \s+ need \s+ to) \s+ worry\b
  | \beverything \s+ (?:will|is \s+ going \s+ to) \s+ be \s+ (?:okay|ok|fine|alright)\b
  | \byou(?:'ll| \s+ will) \s+ be \s+ (?:fine|okay|ok|alright)\b
  | \blook \s+ on \s+ the \s+ bright \s+ side\b
    """
)
_CHECKS_IN = _compile(
    r"""
    \bhow \s+ (?:is|are|was) \s+ (?:this|that|things|we|it|the \s+ pace) \s+ (?:\w+ \s+)?
      (?:landing|going|feeling|sitting) \s+ (?:for|with) \s+ you\b
  | \bhow \s+ does \s+ (?:it|this|that) \s+ feel \s+
      (?:to \s+ (?:talk|be \s+ talking|share|say|go)|right \s+ now|so \s+ far)\b
  | \bhow \s+ are \s+ you \s+ (?:doing|feeling) \s+ (?:right \s+ now|with \s+ (?:this|the \s+ pace|what|how))\b
  | \bis \s+ (?:this|that|the) \s+ (?:pace \s+)? (?:okay|ok|alright|all \s+ right|too \s+ much)\b
  | \bis \s+ this \s+ pace\b
  | \bwhat(?:'s| \s+ is) \s+ it \s+ like \s+ (?:right \s+ now|to \s+ (?:talk|be \s+ talking|share|say|sit))\b
  | \bwould \s+ you \s+ rather\b
  | \bwhat \s+ would \s+ (?:be \s+)? (?:most \s+ |more \s+ )? helpful \s+ (?:right \s+ now|now|here|for \s+ you)\b
  | \bwhat \s+ (?:would \s+ help|do \s+ you \s+ need) \s+ (?:most \s+ )?
      (?:right \s+ now|from \s+ me|in \s+ this \s+ moment|here)\b
  | \b(?:do \s+ you \s+ want|would \s+ you \s+ like) \s+ to \s+ (?:keep \s+ going|continue|pause|stop|slow)\b
  | \bshould \s+ we \s+ (?:keep \s+ going|continue|pause|stop|slow)\b
  | \bhow \s+ (?:was|is) \s+ that \s+ for \s+ you\b
    """
)


def acknowledges_pace(text: str) -> Marker | None:
    """Names slowing, pausing, the pace or a smaller step: the words 3RS calls changing the task."""
    return _first("acknowledges_pace", (_ACKNOWLEDGES_PACE,), text)


def names_discomfort(text: str) -> Marker | None:
    """Names the patient's discomfort or overwhelm."""
    return _first("names_discomfort", (_NAMES_DISCOMFORT,), text)


def offers_presence(text: str) -> Marker | None:
    """Offers to stay with the patient ("I'm here with you", "we can stay with this")."""
    return _first("offers_presence", (_OFFERS_PRESENCE,), text)


def exercise_kinds(text: str) -> dict[str, Marker]:
    """Each kind of exercise or technique the turn asks for, with the first phrase of that kind."""
    found = {kind: _first(kind, (pattern,), text) for kind, pattern in _EXERCISES.items()}
    return {kind: marker for kind, marker in found.items() if marker is not None}


def asks_for_grounding(text: str) -> Marker | None:
    """The patient proposes grounding or a breath themselves."""
    return _first("asks_for_grounding", (_ASKS_FOR_GROUNDING,), text)


def introduces_exercise(text: str) -> Marker | None:
    """The earliest phrase asking for an exercise, technique or self-statement."""
    return _first("introduces_exercise", _EXERCISES.values(), text)


def scripted_self_statement(text: str) -> Marker | None:
    """A sentence the therapist tells the patient to say to themselves (MITI: persuade without
    permission); the quote is the statement itself. Quoted words after "you said" are a reflection."""
    for match in _QUOTE_BODY.finditer(text):
        statement = match.group(1) if match.group(1) is not None else match.group(2)
        lead = prepare(text[max(0, match.start() - _CUE_WINDOW) : match.start()])
        if len(statement.split()) >= 2 and _SELF_STATEMENT_CUE.search(lead):
            return Marker("scripted_self_statement", statement.strip())
    return None


def offers_choice_or_pause(text: str) -> Marker | None:
    """Offers a choice, a pause, or asks permission (MITI emphasizing autonomy)."""
    return _first("offers_choice_or_pause", (_OFFERS_CHOICE,), text)


def validates_emotion(text: str) -> Marker | None:
    """Conveys that the patient's feeling is understandable or legitimate."""
    return _first("validates_emotion", (_VALIDATES,), text)


def premature_reassurance(text: str) -> Marker | None:
    """Rushes to reassure or praise past the distress (ACT-FM inconsistent)."""
    return _first("premature_reassurance", (_PREMATURE_REASSURANCE,), text)


def checks_in(text: str) -> Marker | None:
    """Asks how the session, the pace or the activity is landing (CTRS Feedback, 3RS)."""
    return _first("checks_in", (_CHECKS_IN,), text)


def questions(text: str) -> list[str]:
    """The sentences of the text that end in a question mark, ignoring marks inside quoted speech."""
    prepared = prepare(text)
    return [
        _quote(text, start, end)
        for start, end in _spans(prepared, _SENTENCE_END)
        if _ENDS_IN_QUESTION.search(prepared[start:end])
    ]
