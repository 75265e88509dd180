"""The deterministic offline judge: runs each criterion's named check (`evaluator.checks`) on the turn.

No network and the same verdict every time; a criterion without a check is recorded unscored, and a
check that fails or answers off the scale is an error, never a grade.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from evaluator.checks import CHECKS, NO_CHECK_REASON, Check, RuleContext, check_fits, outside_scale
from evaluator.judges.base import JudgeCall, Reask, check_evidence, judgment_for
from evaluator.models import CategoricalScale, Judgment, Status, Usage
from evaluator.plan import JudgeRequest


class RulesJudge:
    """Judges with the deterministic checks; a criterion without a check is left unscored."""

    name = "rules"
    reads_prompt = False

    def __init__(self, checks: Mapping[str, Check] | None = None) -> None:
        self._checks = dict(CHECKS if checks is None else checks)

    def describe(self) -> dict[str, object]:
        return {"judge": self.name, "checks": sorted(self._checks)}

    def estimate(self, call: JudgeCall) -> Usage:
        """Nothing: the checks run here, offline."""
        return Usage()

    async def judge(
        self, call: JudgeCall, in_flight: asyncio.Semaphore | None = None, reask: Reask | None = None
    ) -> list[Judgment]:
        return [self._judge_one(request, call) for request in call.requests]

    async def aclose(self) -> None:
        return None

    def _judge_one(self, request: JudgeRequest, call: JudgeCall) -> Judgment:
        started = time.perf_counter()
        name = request.criterion.check
        if name is None:
            return self._judgment(request, call, started, "unscored", unscored_reason=NO_CHECK_REASON)
        misfit = check_fits(name, request.criterion, self._checks)
        if misfit is not None:
            return self._judgment(request, call, started, "error", error=misfit)
        context = RuleContext(
            transcript=request.transcript,
            turn=request.turn,
            previous_patient=request.transcript.previous_patient_turn(request.turn.index),
            criterion=request.criterion,
        )
        try:
            verdict = self._checks[name].fn(context)
        except Exception as exc:  # a failing check must become an error judgment, never a crash or a grade
            return self._judgment(request, call, started, "error", error=f"check {name} failed: {exc}")
        problem = outside_scale(request.criterion, verdict)
        if problem is not None:
            return self._judgment(request, call, started, "error", error=f"check {name} returned {problem}")
        scale = request.criterion.scale
        label = verdict.label if isinstance(scale, CategoricalScale) else None
        score = scale.value_of(label) if isinstance(scale, CategoricalScale) and label is not None else verdict.score
        return self._judgment(
            request,
            call,
            started,
            "ok",
            score=score,
            label=label,
            rationale=verdict.rationale,
            evidence=check_evidence(verdict.evidence, request.transcript),
        )

    def _judgment(
        self, request: JudgeRequest, call: JudgeCall, started: float, status: Status, **fields: object
    ) -> Judgment:
        return judgment_for(
            request, self.name, call, status=status, attempts=1, latency_s=time.perf_counter() - started, **fields
        )
