"""The contract between the runner and any judge: async, one call judges a group of requests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from evaluator.models import Criterion, Item, Judgment, Message, Rubric, Transcript, Turn


@dataclass(frozen=True)
class JudgeRequest:
    """Everything a judge may need for one item; the rules judge reads the turns, an LLM judge the messages."""

    item: Item
    rubric: Rubric
    criterion: Criterion
    transcript: Transcript
    turn: Turn
    messages: Sequence[Message] = field(default_factory=tuple)
    template_hash: str | None = None
    prompt_hash: str | None = None


class Judge(Protocol):
    """A judge answers a group of requests from one call (one request per group in per-criterion mode).

    It returns one Judgment per request, in order, and never raises for a bad reply: a failure is a
    judgment with status `unscored` or `error` and its reason, never a grade.
    """

    name: str

    def describe(self) -> dict[str, Any]:
        """Configuration for the run manifest; must never include a secret."""
        ...

    async def judge(self, requests: Sequence[JudgeRequest]) -> list[Judgment]: ...

    async def aclose(self) -> None: ...



def judgment_for(request: JudgeRequest, judge: str, **fields: Any) -> Judgment:
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
        template_hash=request.template_hash,
        prompt_hash=request.prompt_hash,
        judge=judge,
        **fields,
    )
