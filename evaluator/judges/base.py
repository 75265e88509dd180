"""The contract between the runner and any judge: async, one call judges a group of requests.

In per-criterion mode a call holds one request; in per-turn mode every criterion of a turn; in
per-transcript mode every therapist turn. A judge returns one Judgment per request, in order, and
never turns a bad reply into a grade: a failure is `unscored` or `error` with its reason.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from evaluator.errors import EvaluatorError
from evaluator.models import Evidence, JudgeMode, Judgment, Message, Transcript, Usage
from evaluator.plan import JudgeRequest


@dataclass(frozen=True)
class JudgeCall:
    """Requests answered by one prompt; `messages` is what an LLM judge sends."""

    requests: tuple[JudgeRequest, ...]
    mode: JudgeMode = "per-criterion"
    messages: tuple[Message, ...] = ()
    template_hash: str | None = None
    prompt_hash: str | None = None


Reask = Callable[[Usage], bool]
"""Asked before a call sends a request beyond what was reserved for it (a re-ask, or a request the endpoint's
refusal left uncapped), with the tokens it may use more: False (a budget it would exceed) ends the call."""


class Judge(Protocol):
    name: str
    reads_prompt: bool
    """False for a judge that decides from the turn itself (the rules judge): the runner then renders no
    prompt for it, and its judgments name no template or prompt hash, as no prompt went into them."""

    def describe(self) -> dict[str, Any]:
        """Configuration for the run manifest; must never include a secret."""
        ...

    def estimate(self, call: JudgeCall) -> Usage:
        """The most tokens the call's first request may use, as this judge will send it (its reply counted
        at the cap it goes with, or at a ceiling when it goes uncapped): what `--max-cost` reserves."""
        ...

    async def judge(
        self, call: JudgeCall, in_flight: asyncio.Semaphore | None = None, reask: Reask | None = None
    ) -> list[Judgment]:
        """The call's judgments. `in_flight` holds the run's `--concurrency` slots for requests on the
        wire: a judge that sends requests holds one only while a request is out, so a call waiting for a
        slot is ready to go the moment one frees, and a reply is read after its slot is handed on. `reask`
        is asked before each re-ask after an invalid reply; refused, the requests without a verdict are
        returned as `error` (no judgment: `--resume` asks again), carrying what the call spent, or none are
        returned if the call had sent nothing yet."""
        ...

    async def aclose(self) -> None: ...


class JudgeFatalError(EvaluatorError, RuntimeError):
    """A failure no item can get past (bad key, unknown model): the run stops, with what to fix."""


def judgment_for(request: JudgeRequest, judge: str, call: JudgeCall | None = None, **fields: Any) -> Judgment:
    """A Judgment for `request` with its identity filled in, so judges only state the verdict."""
    item, rubric = request.item, request.rubric
    return Judgment(
        key=item.key,
        rubric_id=rubric.id,
        rubric_version=rubric.version,
        rubric_hash=rubric.hash,
        criterion_hash=rubric.criterion_hashes.get(item.criterion_id),
        transcript_id=item.transcript_id,
        turn_index=item.turn_index,
        criterion_id=item.criterion_id,
        sample=item.sample,
        template_hash=call.template_hash if call else None,
        prompt_hash=call.prompt_hash if call else None,
        judge=judge,
        **fields,
    )


_QUOTES = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "…": "..."})


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text.translate(_QUOTES)).strip().casefold()


_HAYSTACKS: OrderedDict[int, tuple[Transcript, str, re.Pattern[str]]] = OrderedDict()


def _haystack(transcript: Transcript) -> tuple[str, re.Pattern[str]]:
    """The transcript's normalised text, and a pattern for its speaker labels as a quote may carry them
    ("[3] Therapist:", "Counselor:"); computed once per transcript rather than once per judgment."""
    entry = _HAYSTACKS.get(id(transcript))
    if entry is None or entry[0] is not transcript:
        text = _normal("\n".join(t.text for t in transcript.turns))
        labels = sorted({_normal(name) for t in transcript.turns for name in (t.speaker, t.label) if name.strip()})
        names = "|".join(re.escape(label) for label in sorted(labels, key=len, reverse=True))
        entry = (transcript, text, re.compile(rf"(?:^|(?<=\s))(?:\[\d+\] ?)?(?:{names}) ?: ?"))
        _HAYSTACKS[id(transcript)] = entry
        if len(_HAYSTACKS) > 256:
            _HAYSTACKS.popitem(last=False)
    return entry[1], entry[2]


def check_evidence(quotes: tuple[str, ...] | list[str], transcript: Transcript) -> list[Evidence]:
    """Mark each quote found or not in the transcript, ignoring case, spacing and typographic quotes:
    a quote a judge invented is flagged, not silently trusted. A quote may carry the speaker labels the
    prompt shows ("Therapist: ...", "[3] Counselor: ..."), also where it runs on into the next turn."""
    haystack, labels = _haystack(transcript)
    return [Evidence(quote=q, found=_found(_normal(q), haystack, labels)) for q in quotes]


def _found(quote: str, haystack: str, labels: re.Pattern[str]) -> bool:
    if quote in haystack:
        return True
    unlabelled = " ".join(labels.sub(" ", quote).split())
    return bool(unlabelled) and unlabelled != quote and unlabelled in haystack
