"""A batch reply into judgments, read as the live judge reads its own: validated, re-asked in a
follow-up batch while attempts are left, then recorded; a request the endpoint refused is an error
(unless it was refused for its output format and the run can step down, see batch_run.step_down, or for
the default seed, which the run then leaves out, see batch_run.leave_out_seed, or for its system message,
which the run then folds into the first user message, see batch_run.fold_system_from)."""

from __future__ import annotations

from typing import Any

import httpx2
import openai

from evaluator.batch_files import ENDPOINT, Result
from evaluator.batch_run import BatchRun
from evaluator.judges.base import JudgeCall
from evaluator.judges.cache import cache_key
from evaluator.judges.openai import reask_messages
from evaluator.judges.replies import Reply
from evaluator.judges.retry import refuses_output_format, refuses_system_role
from evaluator.judges.verdicts import ReplyProblem, Verdict
from evaluator.models import BatchCall, Judgment, Message, Usage


def _earlier_verdicts(run: BatchRun, batch_call: BatchCall, call: JudgeCall) -> dict[int, Verdict]:
    """The verdicts earlier replies of a re-asked call already gave (a grouped reply keeps its good parts):
    read again from the replies the conversation holds."""
    found: dict[int, Verdict] = {}
    for message in batch_call.reasks:
        if message.role == "assistant":
            reply = Reply(message.content, None, "stop", Usage(), ())
            run.judge.read_reply(reply, call, found, {})
    return found


def settle(
    run: BatchRun, batch_call: BatchCall, call: JudgeCall, raw: str, from_cache: bool = False
) -> tuple[list[Judgment], BatchCall | None]:
    """A reply read as the live judge reads it: the judgments, or (while attempts are left and some
    verdict is missing or invalid) the re-ask to send in a follow-up batch instead."""
    judge = run.judge
    found = _earlier_verdicts(run, batch_call, call)
    weighted: dict[int, float] = {}
    usage = batch_call.usage
    followup: list[Message] = []
    try:
        reply = Reply.parse(raw)
    except ReplyProblem as exc:
        problem = str(exc)
    else:
        usage = usage if from_cache else usage + reply.usage
        problem = judge.read_reply(reply, call, found, weighted)
        followup = [Message.model_validate(m) for m in reask_messages(reply.content, problem)]
    if len(found) < len(call.requests) and batch_call.attempt < judge.settings.content_attempts:
        return [], batch_call.model_copy(
            update={"attempt": batch_call.attempt + 1, "reasks": [*batch_call.reasks, *followup], "usage": usage}
        )
    body = request_body(run, call, batch_call)
    judgments = judge.judgments_for(
        call,
        found,
        weighted,
        problem,
        attempts=batch_call.attempt,
        usage=usage,
        max_tokens=body.get("max_tokens"),
        from_cache=from_cache,
    )
    return as_sent(judgments, body), None


def failed(run: BatchRun, batch_call: BatchCall, call: JudgeCall, error: str) -> list[Judgment]:
    """A request the queue ran and the endpoint refused: an `error` judgment, which the next submit sends again."""
    body = request_body(run, call, batch_call)
    judgments = run.judge.judgments_for(
        call,
        {},
        {},
        error,
        attempts=batch_call.attempt,
        usage=batch_call.usage,
        max_tokens=body.get("max_tokens"),
        failed=True,
    )
    return as_sent(judgments, body)


def as_sent(judgments: list[Judgment], body: dict[str, Any]) -> list[Judgment]:
    """Judgments recording `system_role: false` where their line went folded, as the live judge records it."""
    if body["messages"][0]["role"] == "system":
        return judgments
    return [j.model_copy(update={"parameters": {**j.parameters, "system_role": False}}) for j in judgments]


def request_body(run: BatchRun, call: JudgeCall, batch_call: BatchCall) -> dict[str, Any]:
    """The body of a batch line: the call's prompt, and a re-ask's conversation after it."""
    return run.judge.request_body(call, [m.model_dump() for m in batch_call.reasks])


def reply_cache_key(run: BatchRun, call: JudgeCall, batch_call: BatchCall) -> str:
    """The response cache's key for a batch line: the live judge's key for the same body."""
    return cache_key(request_body(run, call, batch_call), run.judge.base_url or "", call.requests[0].item.sample)


def refused_seed(result: Result) -> bool:
    """Whether the endpoint refused a line for its seed, told as the live judge tells it (a 400 or 422 naming
    the parameter)."""
    return result.status in (400, 422) and result.param == "seed"


def refused_system_role(result: Result) -> bool:
    """Whether the endpoint's chat template refused a line's system message, told as the live judge tells it:
    from the error the openai client raises for the same status (400 where the line names none) and message."""
    return result.reply is None and refuses_system_role(_status_error(result, result.status or 400))


def refused_format(result: Result) -> bool:
    """Whether the endpoint refused a line for its output format, told as the live judge tells it: from the
    error the openai client raises for the same status and message."""
    if result.status is None:
        return False
    return refuses_output_format(_status_error(result, result.status))


def _status_error(result: Result, status: int) -> openai.APIStatusError:
    """The error the openai client raises for a refused line's status and message."""
    response = httpx2.Response(status, request=httpx2.Request("POST", ENDPOINT))
    return openai.APIStatusError(result.error or "", response=response, body=None)
