"""A two-arm corpus with a known answer, judged offline by the rules judge (deterministic).

Twenty simulated patients, each answered once by `model-a` and once by `model-b` (the same patient
script, so the sessions pair on `patient_id`). Each patient draws how many questions any therapist
asks them per turn (0-2, a patient effect shared by both arms); `model-b` asks one question more on
every turn: the injected difference on `questions`. Whether a turn validates the feeling is drawn at a
rate per session from the same distribution in both arms: no difference on `validates`. Sessions
have 4 to 10 therapist turns, so turn- and session-weighted means differ.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from evaluator.config import JudgeSettings, RunConfig
from evaluator.runner import run

ARMS = ("model-a", "model-b")
PATIENTS = 20
QUESTIONS = "questions"
VALIDATES = "validates"
RUBRIC = f"""\
id: arms
version: 1
title: Two arms
context: {{before: 2, after: 0}}
criteria:
  - id: {QUESTIONS}
    name: Questions asked
    check: question_count
    better: lower
    pass_at: 1
    question: How many questions does this therapist turn ask?
    scale: {{type: count, unit: questions}}
  - id: {VALIDATES}
    name: Validates the feeling
    check: validates_emotion
    question: Does this therapist turn validate the patient's feeling?
    scale: {{type: binary, yes: validates, no: does not}}
"""
ASKED = (
    "What feels hardest about it?",
    "When did you first notice this?",
    "Who else knows about this?",
    "What would help right now?",
)
PATIENT_LINES = (
    "Work has been piling up and I lie awake going over it.",
    "My sister called again and I did not pick up.",
    "I keep thinking I should be further along by now.",
    "Mornings are the worst, I dread opening my inbox.",
)


def therapist_turn(questions: int, validates: bool) -> str:
    opening = "That makes sense." if validates else "Thank you for telling me."
    return " ".join([opening, *ASKED[:questions]])


def write_corpus(folder: Path, seed: int = 11) -> Path:
    """sessions.jsonl: one record per session with `model` and `patient_id` beside the chat messages."""
    rng = random.Random(seed)
    records = []
    for number in range(PATIENTS):
        patient = f"p{number:02d}"
        base = rng.randint(0, 2)
        turns = rng.randint(4, 10)
        for arm in ARMS:
            rate = rng.choice((0.2, 0.5, 0.8))
            extra = 1 if arm == "model-b" else 0
            messages = []
            for turn in range(turns):
                messages.append({"role": "user", "content": PATIENT_LINES[(number + turn) % len(PATIENT_LINES)]})
                asked = min(base + extra + rng.randint(0, 1), len(ASKED))
                messages.append({"role": "assistant", "content": therapist_turn(asked, rng.random() < rate)})
            records.append({"id": f"{patient}-{arm}", "model": arm, "patient_id": patient, "messages": messages})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sessions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (folder / "arms.yaml").write_text(RUBRIC, encoding="utf-8")
    return path


def judged_corpus(folder: Path, seed: int = 11) -> Path:
    """The corpus judged by the rules judge; returns the run folder."""
    transcripts = write_corpus(folder, seed)
    config = RunConfig(
        transcripts=[transcripts],
        rubrics=[folder / "arms.yaml"],
        output=folder / "results",
        judge=JudgeSettings(kind="rules"),
        show_progress=False,
        write_report=False,
    )
    return run(config).run_dir
