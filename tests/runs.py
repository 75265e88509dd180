"""Run folders written by hand: a manifest and exact judgments, so a test knows every figure of the
summary, the comparison or the agreement before the code under test computes it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from evaluator.models import AggregateMethod, Judgment, Rubric, RubricRecord, RunManifest, item_key
from evaluator.store import JUDGMENTS, write_manifest

RUBRIC_ID = "synthetic"
LIKERT = {
    "id": "honours_request",
    "name": "Honours the request",
    "question": "Does the turn honour the request?",
    "scale": {"type": "likert", "min": 1, "max": 5, "anchors": {1: "ignores it", 3: "in words only", 5: "slows down"}},
    "pass_at": 4,
}
BINARY = {
    "id": "acknowledges",
    "name": "Acknowledges the request",
    "question": "Does the turn acknowledge the request?",
    "scale": {"type": "binary", "yes": "acknowledged", "no": "not acknowledged"},
}
QUESTIONS = {
    "id": "questions",
    "name": "Questions asked",
    "question": "How many questions does the turn ask?",
    "scale": {"type": "count", "unit": "questions", "max": 6},
    "better": "lower",
    "pass_at": 1,
}


def make_rubric(*criteria: dict[str, Any], rubric_id: str = RUBRIC_ID) -> Rubric:
    return Rubric.model_validate({"id": rubric_id, "title": "Synthetic", "criteria": list(criteria or [LIKERT])})


def judgment(
    transcript: str,
    turn: int,
    score: float | None,
    *,
    criterion: str = LIKERT["id"],
    sample: int = 0,
    rubric_id: str = RUBRIC_ID,
    status: str = "ok",
    rationale: str = "",
) -> Judgment:
    return Judgment(
        key=item_key(rubric_id, transcript, turn, criterion, sample),
        rubric_id=rubric_id,
        rubric_version=1,
        rubric_hash="h",
        transcript_id=transcript,
        turn_index=turn,
        criterion_id=criterion,
        sample=sample,
        status=status,  # type: ignore[arg-type]
        score=score,
        rationale=rationale or f"sample {sample} says {score}",
        unscored_reason="the reply did not validate" if status == "unscored" else None,
        judge="openai",
        model="fake-judge",
    )


def sampled(transcript: str, turn: int, scores: Sequence[float], criterion: str = LIKERT["id"]) -> list[Judgment]:
    """One item judged len(scores) times, sample i scoring scores[i], written in sample order."""
    return [judgment(transcript, turn, s, criterion=criterion, sample=i) for i, s in enumerate(scores)]


def write_run(
    folder: Path,
    run_id: str,
    rubric: Rubric,
    judgments: Iterable[Judgment],
    *,
    samples: int = 1,
    aggregate: AggregateMethod = "auto",
) -> Path:
    judgments = list(judgments)
    run_dir = folder / run_id
    run_dir.mkdir(parents=True)
    transcripts = list(dict.fromkeys(j.transcript_id for j in judgments))
    manifest = RunManifest(
        run_id=run_id,
        created_at="2025-01-01T00:00:00+00:00",
        command=["evaluator", "run"],
        package_version="0",
        transcripts=transcripts,
        transcript_files=[],
        rubrics={
            rubric.id: RubricRecord(
                version=rubric.version, hash="h", file="", definition=rubric.model_dump(mode="json", by_alias=True)
            )
        },
        template_hashes={rubric.id: "t"},
        judge={"judge": "openai", "model": "fake-judge"},
        samples=samples,
        aggregate=aggregate,
        items_planned=len(judgments),
        complete=True,
    )
    write_manifest(run_dir, manifest)
    (run_dir / JUDGMENTS).write_text("".join(j.model_dump_json() + "\n" for j in judgments), encoding="utf-8")
    return run_dir
