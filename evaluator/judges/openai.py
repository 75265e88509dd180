"""The LLM judge: any OpenAI-compatible endpoint (OpenAI, Azure OpenAI, vLLM, Ollama, llama.cpp).

One call answers a JudgeCall. Replies are asked for as strict JSON schema; where an endpoint refuses
that, the judge falls back to JSON mode and then to plain text with the schema in the prompt, and
remembers what works per endpoint and model. Every reply is validated against the scale: an invalid
reply, a refusal or a cut-off reply is re-asked a bounded number of times and then recorded as
unscored with the reason. Transport failures (429, 5xx, timeouts) are retried separately, with
backoff that honours Retry-After; client errors fail fast with what to fix.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import openai
import orjson

from evaluator.config import DEFAULT_MODEL, JudgeConfigError, JudgeSettings, OutputMode
from evaluator.judges.base import (
    JudgeCall,
    JudgeFatalError,
    Reask,
    check_evidence,
    judgment_for,
)
from evaluator.judges.cache import ResponseCache, cache_key
from evaluator.judges.endpoint import Endpoint, http_client, redacted_url
from evaluator.judges.limits import RateLimiter
from evaluator.judges.pricing import token_counter
from evaluator.judges.replies import Layout, Reply, weighted_score
from evaluator.judges.reserve import UNCAPPED_REPLY_TOKENS, estimate_call, reply_cap
from evaluator.judges.retry import (
    RETRYABLE,
    never_sent,
    retryable,
    transport_retrying,
    waited_in_vain,
)
from evaluator.judges.shape import RequestShape, sent_cap
from evaluator.judges.verdicts import (
    ReplyProblem,
    Verdict,
    extract_json,
    reply_token_budget,
)
from evaluator.models import Judgment, Usage

JSON_HEADERS: Any = {"headers": {"Content-Type": "application/json"}}
DEFAULT_BASE_URL = "https://api.openai.com/v1"
CONSECUTIVE_FAILURES = 5
"""Calls in a row that get no answer at all (connection refused, timed out), each after its retries,
before the run stops: by then the endpoint is down, not flaky."""
LAYOUT_CACHE_SIZE = 1024
OVER_BUDGET = "not judged: the run's --max-cost would not cover its next request; --resume judges it again"
"""Why a call stopped before a request its budget refused (see Judge.judge) has no verdict: an `error`, which
is no judgment, so a resume asks again, and which carries what the call did spend."""
EMPTY_REPLY = "(no text)"
"""The assistant turn of a re-ask after a reply that had no text (see reask_messages)."""
FATAL: tuple[type[openai.APIStatusError], ...] = (
    openai.AuthenticationError,
    openai.PermissionDeniedError,
    openai.NotFoundError,
)
# What ends a call without a reply once its retries are spent: an error judgment, not a stopped run.
CALL_FAILURES: tuple[type[BaseException], ...] = (openai.APIStatusError, *RETRYABLE)
FIX_HINTS = {
    openai.AuthenticationError: "check the API key in {env}",
    openai.PermissionDeniedError: "the key in {env} has no access to this model or endpoint",
    openai.NotFoundError: "check --model and --base-url (the base URL usually ends in /v1)",
}


class _Reshaped(Exception):
    """A request built before the endpoint refused something, to be built again in the adapted shape."""


class _OverBudget(Exception):
    """A request that would not fit in what the run may still spend (see Judge.judge's `reask`)."""


@dataclass
class _Tally:
    """The requests one call sent: how many in all, and how many were the first send of a reply asked
    for; the rest repeated a request (a transport failure, or a format the endpoint refused)."""

    output: OutputMode
    max_tokens: int | None = None
    system_role: bool = True
    """False once the call's instructions went folded into the user message (see RequestShape.adapt)."""
    sent: int = 0
    asked: int = 0
    unanswered_since: int | None = None
    """The endpoint's answer count when this round's first request got no answer."""
    in_flight: asyncio.Semaphore | None = None
    """The run's slots for requests on the wire (see Judge.judge); None: no limit."""
    adaptations: int = 0
    """The judge's adaptations to refusals when this call's body was built (see OpenAIJudge._send)."""
    reask: Reask | None = None
    """Asked for more before a request would use more than is reserved for it (see Judge.judge)."""
    covered: int = 0
    """Reply tokens reserved for the request being asked: the runner reserves the first at judge.estimate."""

    @property
    def repeats(self) -> int:
        return self.sent - self.asked


class OpenAIJudge:
    """A judge as a small object around one AsyncOpenAI client, reused for every call of the run."""

    name = "openai"
    reads_prompt = True

    def __init__(self, settings: JudgeSettings, offline: bool = False) -> None:
        """`offline`: the judge only builds requests and reads replies (a batch file for vLLM), so it needs
        neither a key nor a base URL."""
        self.settings = settings
        endpoint = Endpoint.parse(settings.resolved_base_url())
        self.base_url = endpoint.base_url
        self._key = settings.api_key()
        self._redactor = settings.redactor()
        if self._key is None and self.base_url is None and not offline:
            raise JudgeConfigError(
                f"no API key: set {settings.api_key_env}, or pass --base-url for a local server that needs none"
            )
        self.model = settings.model or DEFAULT_MODEL
        self.client = openai.AsyncOpenAI(
            api_key=self._key or "unused",
            base_url=self.base_url,
            max_retries=0,
            timeout=settings.timeout_s,
            http_client=settings.http_client or http_client(),
            default_headers=endpoint.headers,
            default_query=endpoint.query,
        )
        self.shape = RequestShape(settings, self.model, self._redact)
        self.cache = ResponseCache(settings.cache_path) if settings.cache_path else None
        self.requests_per_minute = RateLimiter(settings.rpm)
        self.tokens_per_minute = RateLimiter(settings.tpm)
        self._layouts: dict[tuple[Any, ...], Layout] = {}
        self._answers = 0
        self._unreachable_streak = 0
        self._adaptations = 0
        self._down: str | None = None

    @property
    def output(self) -> OutputMode:
        """The output format in force: the chosen one, or where auto stepped down to."""
        return self.shape.output

    @output.setter
    def output(self, value: OutputMode) -> None:
        self.shape.output = value

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {
            "judge": self.name,
            "model": self.model,
            "base_url": redacted_url(self.settings.resolved_base_url()) or "https://api.openai.com/v1",
            "api_key_env": s.api_key_env,
            "temperature": s.temperature,
            "seed": s.seed,
            "max_tokens": s.max_tokens,
            "parameters": s.parameters,
            "output": s.output,
            "content_attempts": s.content_attempts,
            "transport_attempts": s.transport_attempts,
            "logprobs": s.logprobs,
            "rpm": s.rpm,
            "tpm": s.tpm,
            "cache": str(s.cache_path) if s.cache_path else None,
        }

    async def aclose(self) -> None:
        await self.client.close()
        if self.cache is not None:
            self.cache.close()

    def _redact(self, text: str) -> str:
        return self._redactor(text)

    def _layout(self, call: JudgeCall) -> Layout:
        """Layouts are built once per criterion (or group) and reused for every turn."""
        key = Layout.key(call)
        layout = self._layouts.get(key)
        if layout is None:
            if len(self._layouts) >= LAYOUT_CACHE_SIZE:
                self._layouts.clear()
            layout = self._layouts[key] = Layout.of(call)
        return layout

    def estimate(self, call: JudgeCall) -> Usage:
        """The call's first request as it would go now: in the output format in force, and with the reply
        uncapped (reserved at the ceiling) once the endpoint refused the default cap."""
        return estimate_call(call, self.settings, self.output, default_cap=not self.shape.cap_refused)

    def _reply_reserve(self, call: JudgeCall) -> int:
        """The reply tokens `estimate` counts, without counting the prompt's."""
        cap = reply_cap(call, self.settings, self.output, not self.shape.cap_refused)
        return cap if cap is not None else UNCAPPED_REPLY_TOKENS

    def _reask_estimate(self, call: JudgeCall, conversation: list[dict[str, Any]]) -> Usage:
        """A re-ask's tokens: the first request's, plus the invalid replies and complaints it carries."""
        first = self.estimate(call)
        count, _ = token_counter()
        added = sum(count(m["content"] or "") + 4 for m in conversation[len(call.messages) :])
        return first.model_copy(update={"prompt_tokens": first.prompt_tokens + added})

    async def judge(
        self, call: JudgeCall, in_flight: asyncio.Semaphore | None = None, reask: Reask | None = None
    ) -> list[Judgment]:
        self._raise_if_down()
        started = time.perf_counter()
        layout = self._layout(call)
        sample = call.requests[0].item.sample
        conversation = _message_dicts(call)
        found: dict[int, Verdict] = {}
        covered = self._reply_reserve(call) if reask is not None else 0
        tally = _Tally(self.output, in_flight=in_flight, reask=reask, covered=covered)
        usage, attempts, from_cache = Usage(), 0, True
        problem = "no reply"
        weighted: dict[int, float] = {}
        while attempts < self.settings.content_attempts and len(found) < len(call.requests):
            if attempts:
                more = self._reask_estimate(call, conversation)
                if not _reserved(tally, more):
                    return self._judgments(
                        call, started, attempts, tally, usage, found, weighted, OVER_BUDGET, False, True
                    )
                tally.covered = more.completion_tokens
            attempts += 1
            try:
                reply, cached = await self._ask(call, conversation, layout, sample, tally)
            except _OverBudget:
                if not found and usage == Usage():
                    return []  # nothing sent, nothing spent: left unjudged, as a call the budget did not start
                return self._judgments(call, started, attempts, tally, usage, found, weighted, OVER_BUDGET, False, True)
            except ReplyProblem as exc:
                problem = str(exc)
                continue
            except FATAL as exc:
                hint = FIX_HINTS[type(exc)].format(env=self.settings.api_key_env)
                raise JudgeFatalError(
                    f"the judge endpoint said {exc.status_code}: {self._redact(exc.message)}; {hint}"
                ) from None
            except CALL_FAILURES as exc:
                error = f"{type(exc).__name__}: {self._redact(str(exc))}"
                return self._judgments(
                    call, started, attempts, tally, usage, found, weighted, error, False, failed=True
                )
            from_cache = from_cache and cached
            if not cached:
                usage = usage + reply.usage
            problem = self.read_reply(reply, call, found, weighted)
            if len(found) < len(call.requests):
                conversation = conversation + reask_messages(reply.content, problem)
        return self._judgments(call, started, attempts, tally, usage, found, weighted, problem, from_cache)

    def read_reply(self, reply: Reply, call: JudgeCall, found: dict[int, Verdict], weighted: dict[int, float]) -> str:
        """Take the valid verdicts out of a reply; return what was wrong with the rest ("" if nothing)."""
        layout = self._layout(call)
        if reply.refusal:
            return f"the judge refused: {reply.refusal}"
        if reply.finish_reason == "length":
            return "the reply was cut off (finish_reason=length); raise max_tokens"
        try:
            data = extract_json(reply.content)
        except ReplyProblem as exc:
            return str(exc)
        problems = []
        for index, result in enumerate(layout.verdicts(data, call.requests)):
            if isinstance(result, ReplyProblem):
                problems.append(str(result))
            elif index not in found:
                found[index] = result
                if call.mode == "per-criterion" and result.score is not None and reply.logprobs:
                    score = weighted_score(reply, call.requests[index], result)
                    if score is not None:
                        weighted[index] = score
        return "; ".join(problems)

    def request_body(self, call: JudgeCall, reasks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The body of a call's request exactly as it would be sent (for batch files, benchmarks and audits):
        the first one, or with `reasks` (see reask_messages) the re-ask after invalid replies."""
        conversation = _message_dicts(call) + (reasks or [])
        return self.shape.body(call, conversation, self._layout(call), call.requests[0].item.sample, self.output)

    def judgments_for(
        self,
        call: JudgeCall,
        found: dict[int, Verdict],
        weighted: dict[int, float],
        problem: str,
        *,
        attempts: int,
        usage: Usage,
        max_tokens: int | None,
        from_cache: bool = False,
        failed: bool = False,
    ) -> list[Judgment]:
        """The judgments of a call whose replies came by another road (a batch queue), recorded exactly as
        the live judge records its own."""
        tally = _Tally(self.output, max_tokens, sent=attempts, asked=attempts)
        return self._judgments(
            call, time.perf_counter(), attempts, tally, usage, found, weighted, problem, from_cache, failed
        )

    async def _ask(
        self, call: JudgeCall, conversation: list[dict[str, Any]], layout: Layout, sample: int, tally: _Tally
    ) -> tuple[Reply, bool]:
        """A reply from the cache, else from the endpoint within the rate limits and retry policy; a
        request the endpoint refuses for its format or the default reply cap is adapted and sent again.

        Calls do not wait for a first reply to show that the request's shape works (that cost every run
        one reply's latency): the calls in flight when an endpoint refuses something are each refused
        and sent again as adapted, and the adaptation itself is made once (RequestShape.adapt steps the
        format down only from the one in force), so at most --concurrency requests are refused.

        The body goes out as JSON bytes through the client's generic `post`, and the reply comes back
        as text: `chat.completions.create` would walk every message through the SDK's parameter
        transformer, deep-copy it, and build a typed response object, which together cost more CPU
        than the whole rest of a judgment."""
        fresh = True
        while True:
            output = self.output
            body = self.shape.body(call, conversation, layout, sample, output)
            tally.output, tally.max_tokens = output, body.get("max_tokens")
            tally.system_role = body["messages"][0]["role"] == "system"
            key = cache_key(body, self.base_url or "", sample) if self.cache is not None else ""
            if self.cache is not None and (hit := self.cache.get(key)) is not None:
                return Reply.parse(hit), True
            cap = sent_cap(body)
            reserve = cap if cap is not None else UNCAPPED_REPLY_TOKENS
            if reserve > tally.covered:  # the shape changed since the reservation (a refused cap left out)
                if not _reserved(tally, Usage(completion_tokens=reserve - tally.covered)):
                    raise _OverBudget
                tally.covered = reserve
            reply_tokens = cap if cap is not None else reply_token_budget(len(call.requests), output)
            estimate = sum(len(m["content"] or "") for m in body["messages"]) // 4 + reply_tokens
            await self.requests_per_minute.acquire(1)
            await self.tokens_per_minute.acquire(estimate)
            tally.asked += fresh
            fresh = False
            tally.adaptations = self._adaptations
            try:
                raw = await self._post(orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), tally)
            except _Reshaped:
                self.requests_per_minute.refund(1)
                self.tokens_per_minute.refund(estimate)
                continue
            except openai.APIStatusError as exc:
                if self.shape.adapt(exc, call, body, output):
                    self._adaptations += 1
                    continue
                raise
            reply = Reply.parse(raw)
            used = reply.usage.prompt_tokens + reply.usage.completion_tokens
            self.tokens_per_minute.refund(estimate - used)
            if self.cache is not None:
                self.cache.put(key, raw)
            return reply, False

    async def _post(self, payload: bytes, tally: _Tally) -> str:
        """The raw reply, within the retry policy. Calls that get no answer at all after their retries
        (connection refused or dropped, or timed out) count towards CONSECUTIVE_FAILURES in a row, across
        calls, which stop the run. A request that could not connect, when no other call got an answer
        meanwhile, goes round again instead of becoming an error judgment, so a down endpoint ends in a
        stopped run that `--resume` completes. A request the server did not answer in time does not:
        resending it would only queue the same slow work again on the server."""
        rounds = 0
        while True:
            self._raise_if_down()
            tally.unanswered_since = None
            try:
                return await self._retried(payload, tally)
            except openai.APIConnectionError as exc:
                self._unreachable(exc)
                rounds += 1
                if not never_sent(exc) or rounds >= CONSECUTIVE_FAILURES or self._answers != tally.unanswered_since:
                    raise  # or the endpoint answers other calls, and the trouble is this request's own

    async def _retried(self, payload: bytes, tally: _Tally) -> str:
        """Most calls succeed at once, so the first attempt goes out directly; only a retryable failure
        starts the retry policy, which counts that failure as its first attempt and waits as it asks
        (Retry-After included)."""
        try:
            return await self._send(payload, tally)
        except RETRYABLE as exc:
            if not retryable(exc):
                raise
            failed: BaseException | None = exc
        async for attempt in transport_retrying(self.settings.transport_attempts, self.settings.backoff_s):
            with attempt:
                if failed is not None:
                    failure, failed = failed, None
                    raise failure
                raw = await self._send(payload, tally)
        return raw

    async def _send(self, payload: bytes, tally: _Tally) -> str:
        """One request; counts it, and notes whether the endpoint answered at all. A body built before
        the endpoint refused something (while it waited for a slot) is not sent but built again."""
        async with tally.in_flight or nullcontext():
            if tally.adaptations != self._adaptations:
                raise _Reshaped
            tally.sent += 1
            try:
                raw = await self.client.post("/chat/completions", content=payload, cast_to=str, options=JSON_HEADERS)
            except openai.APIStatusError:
                self._answered()
                raise
            except openai.APIConnectionError:
                if tally.unanswered_since is None:
                    tally.unanswered_since = self._answers
                raise
        self._answered()
        # Let the call that took the freed slot go out before this reply is read: replies arrive in waves,
        # and reading each one first would hold every next request back behind the whole wave.
        await asyncio.sleep(0)
        return raw

    def _answered(self) -> None:
        self._answers += 1
        self._unreachable_streak = 0

    def _unreachable(self, exc: openai.APIConnectionError) -> None:
        """Count a request that got no answer after its retries; stop the run once too many in a row did."""
        self._unreachable_streak += 1
        if self._unreachable_streak >= CONSECUTIVE_FAILURES and self._down is None:
            url = redacted_url(self.base_url) or DEFAULT_BASE_URL
            if waited_in_vain(exc):
                why = f"no reply within --timeout {self.settings.timeout_s:g} s"
                fix = "if the server is busy, raise --timeout or lower --concurrency"
            else:
                why = f"could not connect: {exc.__cause__ or exc}"
                fix = "check that the server is running and that --base-url points at it"
            self._down = (
                f"the judge endpoint {url} gave no answer {self._unreachable_streak} times in a row, each after "
                f"its retries ({self._redact(why)}); {fix}"
            )
        self._raise_if_down()

    def _raise_if_down(self) -> None:
        if self._down is not None:
            raise JudgeFatalError(self._down) from None

    def _call_fields(
        self, call: JudgeCall, started: float, attempts: int, tally: _Tally, usage: Usage, from_cache: bool
    ) -> list[dict[str, Any]]:
        """Per request, what the call cost and how it went; the call's usage is charged to its first
        request only, so sums over judgments stay true."""
        latency = time.perf_counter() - started
        parameters = self.shape.parameters(call, self._layout(call), tally.output, tally.max_tokens, tally.system_role)
        return [
            {
                "model": self.model,
                "parameters": parameters,
                "usage": usage if index == 0 else Usage(),
                "latency_s": latency,
                "attempts": attempts,
                "transport_retries": tally.repeats,
                "from_cache": from_cache,
            }
            for index in range(len(call.requests))
        ]

    def _judgments(
        self,
        call: JudgeCall,
        started: float,
        attempts: int,
        tally: _Tally,
        usage: Usage,
        found: dict[int, Verdict],
        weighted: dict[int, float],
        problem: str,
        from_cache: bool,
        failed: bool = False,
    ) -> list[Judgment]:
        """One Judgment per request: its verdict, or why it has none. Verdicts a grouped call already
        has are kept when a later request of the call fails; only the missing ones carry the failure."""
        judgments = []
        fields = self._call_fields(call, started, attempts, tally, usage, from_cache)
        for index, (request, common) in enumerate(zip(call.requests, fields)):
            verdict = found.get(index)
            if verdict is None and failed:
                judgments.append(judgment_for(request, self.name, call, status="error", error=problem, **common))
                continue
            if verdict is None:
                reason = f"no valid reply after {attempts} attempt(s): {problem or 'unknown problem'}"
                judgments.append(
                    judgment_for(request, self.name, call, status="unscored", unscored_reason=reason, **common)
                )
                continue
            evidence = check_evidence(verdict.evidence, request.transcript)
            if not verdict.applicable:
                judgments.append(
                    judgment_for(
                        request,
                        self.name,
                        call,
                        status="not_applicable",
                        rationale=verdict.rationale,
                        evidence=evidence,
                        **common,
                    )
                )
                continue
            judgments.append(
                judgment_for(
                    request,
                    self.name,
                    call,
                    status="ok",
                    score=verdict.score,
                    label=verdict.label,
                    rationale=verdict.rationale,
                    evidence=evidence,
                    weighted_score=weighted.get(index),
                    **common,
                )
            )
        return judgments


def _reserved(tally: _Tally, usage: Usage) -> bool:
    """Whether the run may spend `usage` more on this call (always, without a budget)."""
    return tally.reask is None or tally.reask(usage)


def reask_messages(content: str, problem: str) -> list[dict[str, Any]]:
    """What follows an invalid reply in the conversation: the reply itself, and what was wrong with it. A reply
    with no text (a refusal, or a reasoning model's cap spent before it wrote) goes as EMPTY_REPLY: several
    endpoints refuse an assistant message with empty content, and leaving the turn out would put two user
    messages in a row, which chat templates that alternate turns refuse."""
    return [
        {"role": "assistant", "content": content if content.strip() else EMPTY_REPLY},
        {
            "role": "user",
            "content": f"Your reply could not be used: {problem}. Reply again with only the JSON object described above.",
        },
    ]


def _message_dicts(call: JudgeCall) -> list[dict[str, Any]]:
    return [{"role": m.role, "content": m.content} for m in call.messages]
