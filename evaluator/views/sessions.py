"""The conversations in report.html: every turn of every session, each therapist turn with its judgments
beside it and the judge's evidence quotes highlighted where they occur.

Transcript text is data. A turn's text reaches the template as segments, each escaped here; the template
wraps the quoted ones in <mark>, so no transcript text can ever become markup.
"""

from __future__ import annotations

import html
import re
from bisect import bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from markupsafe import Markup

from evaluator.analysis.summary import RubricSummary, RunSummary, Tone
from evaluator.models import STATUSES, Criterion, Judgment, Transcript, Turn
from evaluator.views import format as fmt


@dataclass
class EvidenceView:
    quote: str
    found: bool
    where: str | None


@dataclass
class JudgmentView:
    dom_id: str
    judgment: Judgment
    criterion: Criterion
    rubric_title: str
    verdict: str
    tone: Tone
    text: str
    evidence: list[EvidenceView]

    @property
    def score_attr(self) -> str:
        return str(self.judgment.verdict) if self.judgment.status == "ok" else ""


@dataclass(frozen=True)
class Segment:
    """A piece of a turn's text, escaped; `refs` names the judgments quoting it (None: not quoted)."""

    text: Markup
    refs: Markup | None


@dataclass
class TurnView:
    dom_id: str
    index: int
    speaker: str
    label: str
    text: list[Segment] | None
    groups: list[tuple[str, list[JudgmentView]]] = field(default_factory=list)


@dataclass
class SessionView:
    dom_id: str
    transcript_id: str
    source: str | None
    metadata: dict[str, str]
    counts: list[tuple[str, int]]
    notice: str | None
    turns: list[TurnView]


SPEAKER_LABELS = {"therapist": "Therapist", "patient": "Patient"}


def speaker_label(turn: Turn) -> str:
    """Who speaks, as a reader of therapy says it: a chat file's `user`/`assistant` (or `Counselor`,
    `Client`) reads as Patient/Therapist; any other speaker keeps the label the file gives."""
    return SPEAKER_LABELS.get(turn.speaker, turn.label)


def verdict_text(criterion: Criterion, verdict: str | float | None) -> str:
    """A verdict as a reader says it: yes/no for binary scales, the label or the number otherwise."""
    if criterion.scale.type == "binary" and verdict in (0, 1):
        return "yes" if verdict == 1 else "no"
    if isinstance(verdict, float):
        return fmt.number(verdict)
    return str(verdict)


# --- finding evidence quotes ----------------------------------------------------------------------

_TYPOGRAPHIC = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-"})
_RESHAPED = re.compile(r"\s{2,}|[^\S ]|…")
"""What normalising changes the length or kind of: runs of spacing (one space), "…" ("...")."""

Span = tuple[int, int, list[str]]


@dataclass(frozen=True)
class _Normalised:
    """A text as quotes are compared: lower case, each run of spacing one space, typographic quotes and
    dashes plain, "…" as "..."; with where each reshaped piece lies in it and in the original."""

    text: str
    starts: list[int]
    """Where each piece begins in `text`: alternately as-is and reshaped, starting as-is."""
    origins: list[tuple[int, int]]
    """Each piece's span in the original text."""

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of text[start:end] (neither end inside a run of spacing: quotes are stripped)."""
        first, last = bisect_right(self.starts, start) - 1, bisect_right(self.starts, end - 1) - 1
        begin = self.origins[first][0] + (0 if first % 2 else start - self.starts[first])
        finish = self.origins[last][1] if last % 2 else self.origins[last][0] + end - self.starts[last]
        return begin, finish


def _normalised(text: str) -> _Normalised:
    lowered = text.lower()
    if len(lowered) != len(text):  # a letter whose lower case is longer (İ) stays as it is
        lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    lowered = lowered.translate(_TYPOGRAPHIC)
    pieces: list[str] = []
    starts: list[int] = []
    origins: list[tuple[int, int]] = []
    length = position = 0
    for match in _RESHAPED.finditer(lowered):
        for piece, origin in (
            (lowered[position : match.start()], (position, match.start())),
            ("..." if match.group() == "…" else " ", match.span()),
        ):
            starts.append(length)
            origins.append(origin)
            pieces.append(piece)
            length += len(piece)
        position = match.end()
    starts.append(length)
    origins.append((position, len(lowered)))
    pieces.append(lowered[position:])
    return _Normalised("".join(pieces), starts, origins)


class _Finder:
    """Quotes found in a transcript's turns, ignoring case, runs of spacing, typographic quotes and dashes
    (as the judge checked them): each turn is normalised once, each quote searched with str.find."""

    def __init__(self, transcript: Transcript) -> None:
        self.transcript = transcript
        self.turns: dict[int, _Normalised] = {}

    def _turn(self, index: int) -> _Normalised:
        if index not in self.turns:
            self.turns[index] = _normalised(self.transcript.turns[index].text)
        return self.turns[index]

    def _spans(self, needle: str, index: int) -> list[tuple[int, int]]:
        turn = self._turn(index)
        spans, position = [], turn.text.find(needle)
        while position >= 0:
            end = position + len(needle)
            spans.append(turn.span(position, end))
            position = turn.text.find(needle, end)
        return spans

    def locate(self, quote: str, index: int) -> tuple[int, list[tuple[int, int]]] | None:
        """Where a quote is: the rated turn first, then the context before it (nearest first), then what follows."""
        needle = _normalised(quote.strip()).text
        if not needle:
            return None
        for turn_index in [index, *range(index - 1, -1, -1), *range(index + 1, len(self.transcript.turns))]:
            spans = self._spans(needle, turn_index)
            if spans:
                return turn_index, spans
        return None


def _merge(spans: list[Span]) -> list[Span]:
    """Overlapping highlights become one <mark> naming every judgment that quotes it."""
    merged: list[Span] = []
    for start, end, refs in sorted(spans, key=lambda s: (s[0], -s[1])):
        if merged and start < merged[-1][1]:
            last = merged[-1]
            merged[-1] = (last[0], max(last[1], end), last[2] + [r for r in refs if r not in last[2]])
        else:
            merged.append((start, end, list(refs)))
    return merged


def _escaped(text: str) -> Markup:
    return Markup(html.escape(text))


def _segments(text: str, spans: list[Span]) -> list[Segment]:
    """The turn text cut at its evidence highlights, every piece escaped."""
    out, position = [], 0
    for start, end, refs in _merge(spans):
        if start > position:
            out.append(Segment(_escaped(text[position:start]), None))
        out.append(Segment(_escaped(text[start:end]), _escaped(" ".join(refs))))
        position = end
    if position < len(text):
        out.append(Segment(_escaped(text[position:]), None))
    return out


def _judgment_text(judgment: Judgment) -> str:
    if judgment.status == "unscored":
        return " — ".join(t for t in (judgment.unscored_reason or "", judgment.rationale) if t)
    if judgment.status == "error":
        return judgment.error or judgment.rationale
    if judgment.weighted_score is not None:  # --logprobs: the score the judge's probabilities point to
        return f"{judgment.rationale} [logprob-weighted score {fmt.number(judgment.weighted_score)}]".lstrip()
    return judgment.rationale


@dataclass(frozen=True)
class Layout:
    """What every session of a run is laid out by, worked out once per report, not once per session."""

    summary: RunSummary
    order: dict[tuple[str, str], int]
    """Judgments beside a turn follow the report's rubric and criterion order."""
    rubrics: dict[str, RubricSummary]


def session_layout(summary: RunSummary) -> Layout:
    keys = [(rs.rubric.id, c.id) for rs in summary.rubrics for c in rs.rubric.criteria]
    return Layout(summary, {key: i for i, key in enumerate(keys)}, {rs.rubric.id: rs for rs in summary.rubrics})


class _SessionBuilder:
    """Lays one session out as turns with their judgments beside them, collecting evidence highlights."""

    def __init__(self, number: int, layout: Layout, transcript: Transcript | None) -> None:
        self.prefix = f"s{number}"
        self.transcript = transcript
        self.finder = _Finder(transcript) if transcript is not None else None
        self.layout = layout
        self.spans: dict[int, list[Span]] = defaultdict(list)
        self.count = 0

    def judgment_view(self, judgment: Judgment) -> JudgmentView:
        rs = self.layout.rubrics[judgment.rubric_id]
        criterion = rs.rubric.criterion(judgment.criterion_id)
        self.count += 1
        dom_id = f"{self.prefix}-t{judgment.turn_index}-j{self.count}"
        verdict = verdict_text(criterion, judgment.verdict) if judgment.status == "ok" else ""
        evidence = [self._evidence(e.quote, e.found, judgment.turn_index, dom_id) for e in judgment.evidence]
        return JudgmentView(
            dom_id,
            judgment,
            criterion,
            rs.rubric.title,
            verdict,
            rs.score_tone(criterion, judgment.score),
            _judgment_text(judgment),
            evidence,
        )

    def _evidence(self, quote: str, found: bool, index: int, dom_id: str) -> EvidenceView:
        """Highlight a quote where it is, usually the rated turn, else the context the judge saw."""
        transcript = self.transcript
        located = self.finder.locate(quote, index) if found and self.finder is not None else None
        if transcript is None or located is None:
            return EvidenceView(quote, found, None)
        turn_index, matches = located
        self.spans[turn_index] += [(start, end, [dom_id]) for start, end in matches]
        where = None if turn_index == index else f"in turn {turn_index} ({speaker_label(transcript.turns[turn_index])})"
        return EvidenceView(quote, found, where)

    def grouped(self, judgments: list[Judgment]) -> list[tuple[str, list[JudgmentView]]]:
        """A turn's judgments under their rubric's title, in the order given."""
        groups: dict[str, tuple[str, list[JudgmentView]]] = {}
        for judgment in judgments:
            view = self.judgment_view(judgment)
            groups.setdefault(judgment.rubric_id, (view.rubric_title, []))[1].append(view)
        return list(groups.values())

    def turn_id(self, index: int) -> str:
        return f"{self.prefix}-t{index}"


def _matches_judgments(transcript: Transcript, by_turn: dict[int, list[Judgment]]) -> bool:
    """A transcript edited since the run no longer has therapist turns where the judgments say."""
    return all(i < len(transcript.turns) and transcript.turns[i].speaker == "therapist" for i in by_turn)


def session_views(summary: RunSummary, transcripts: dict[str, Transcript], problems: list[str]) -> list[SessionView]:
    """Every session of the run, its judgments (each sample shown) beside the turns they rate."""
    by_session: dict[str, list[Judgment]] = {t: [] for t in summary.manifest.transcripts}
    for judgment in summary.judgments:
        by_session.setdefault(judgment.transcript_id, []).append(judgment)
    layout = session_layout(summary)
    return [
        session_view(number, layout, transcript_id, judgments, transcripts.get(transcript_id), problems)
        for number, (transcript_id, judgments) in enumerate(by_session.items())
    ]


def session_view(
    number: int,
    layout: Layout,
    transcript_id: str,
    judgments: list[Judgment],
    transcript: Transcript | None,
    problems: list[str],
) -> SessionView:
    """One session (DOM ids prefixed `s<number>`): its turns, each with its judgments in the report's
    rubric and criterion order, samples in order; `transcript` None when it could not be read."""
    order = layout.order
    by_turn: dict[int, list[Judgment]] = defaultdict(list)
    ranked = sorted(judgments, key=lambda j: (order.get((j.rubric_id, j.criterion_id), len(order)), j.sample))
    for judgment in ranked:
        if (judgment.rubric_id, judgment.criterion_id) in order:
            by_turn[judgment.turn_index].append(judgment)
    notice = None
    if transcript is None:
        detail = "; ".join(problems) if problems else "no file read holds this transcript id"
        notice = f"The transcript could not be read ({detail}): its judgments are shown without the conversation."
    elif not _matches_judgments(transcript, by_turn):
        notice = (
            f"{transcript.source} changed since the run (judged turns are no longer therapist turns): "
            "its judgments are shown without the conversation."
        )
        transcript = None
    return _session_view(number, layout, transcript_id, transcript, by_turn, notice)


def _session_view(
    number: int,
    layout: Layout,
    transcript_id: str,
    transcript: Transcript | None,
    by_turn: dict[int, list[Judgment]],
    notice: str | None,
) -> SessionView:
    builder = _SessionBuilder(number, layout, transcript)
    counts = Counter(j.status for js in by_turn.values() for j in js)
    grouped = {index: builder.grouped(js) for index, js in sorted(by_turn.items())}
    if transcript is None:
        turns = [TurnView(builder.turn_id(i), i, "therapist", "Therapist", None, g) for i, g in grouped.items()]
    else:
        turns = [
            TurnView(
                builder.turn_id(t.index),
                t.index,
                t.speaker,
                speaker_label(t),
                _segments(t.text, builder.spans[t.index]),
                grouped.get(t.index, []),
            )
            for t in transcript.turns
        ]
    metadata = {k: str(v) for k, v in layout.summary.manifest.transcript_metadata.get(transcript_id, {}).items()}
    return SessionView(
        f"s{number}",
        transcript_id,
        transcript.source if transcript else None,
        metadata,
        [(s, counts.get(s, 0)) for s in STATUSES],
        notice,
        turns,
    )
