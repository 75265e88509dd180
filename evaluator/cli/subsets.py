"""Judging part of the plan from the command line: the subset options of `run` and `render`, and
`render --mode`, which prints the prompts exactly as the runner would group them.

Kept apart from parser.py and commands.py so those stay a list of commands; the selection itself is
evaluator.plan.select_plans, shared by the runner, the dry run and `render`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.rule import Rule

from evaluator.cli.options import EXIT_OK, CliError, read_options, rubric_paths, subset
from evaluator.models import JudgeMode, Subset, Transcript
from evaluator.plan import JudgeRequest, group_requests, select_plans, static_applicability, work_units
from evaluator.prompts import PromptRenderer
from evaluator.reading import ReadOptions
from evaluator.rubrics import load_rubric
from evaluator.transcript_shelf import shelve
from evaluator.transcripts import read_transcripts

if TYPE_CHECKING:
    from evaluator.judges.base import JudgeCall


def print_subset_note(chosen: Subset | None, console: Console) -> None:
    if chosen is not None:
        console.print(f"[yellow]subset:[/yellow] {escape(chosen.describe())}", highlight=False)


def _pick_transcript(path: Path, transcript_id: str | None, options: ReadOptions) -> Transcript:
    transcripts = read_transcripts(path, options)
    if transcript_id is None:
        if len(transcripts) > 1:
            ids = ", ".join(t.id for t in transcripts)
            raise CliError(f"{path} holds {len(transcripts)} transcripts; pick one with --transcript-id ({ids})")
        return transcripts[0]
    for transcript in transcripts:
        if transcript.id == transcript_id:
            return transcript
    raise CliError(f"{path} has no transcript {transcript_id!r}; it has: {', '.join(t.id for t in transcripts)}")


def render_calls(
    transcript: Transcript, rubric_path: Path, chosen: Subset | None, mode: JudgeMode
) -> tuple[list[JudgeCall], list[str]]:
    """The judge calls a run in `mode` would make for the selection, and the items rules decide
    without a call (grouped modes leave those out of the prompt, as the runner does). A criterion
    whose applies_when reads a verdict is shown as if its prerequisite allowed it. The session is
    planned from a shelf, as a run plans its sessions."""
    from evaluator.runner import make_call  # the runner's imports load only for this command

    rubric = load_rubric(rubric_path)
    shelf = shelve([transcript])
    try:
        selection = select_plans(shelf, [rubric], 1, chosen)  # the plans hold the session they read
    finally:
        shelf.close()
    renderer = PromptRenderer()
    calls: list[JudgeCall] = []
    decided: list[str] = []
    for unit in work_units(selection.plans, mode):
        stages = max(len(plan.stages) for plan in unit)
        for stage in range(stages):
            pending: list[JudgeRequest] = []
            for plan in unit:
                for criterion in plan.stages[stage] if stage < len(plan.stages) else ():
                    reason = static_applicability(criterion, plan.transcript, plan.turn)
                    if mode != "per-criterion" and reason is not None:
                        decided.append(f"{criterion.id} on turn {plan.turn.index}: {reason}")
                        continue
                    pending.append(plan.request(criterion))
            calls += [make_call(renderer, group, mode) for group in group_requests(pending, mode)]
    # A prerequisite is planned so the runner can judge what depends on it; `render` shows only the
    # prompts asked for, except where a grouped prompt holds both.
    added = set(selection.subset.prerequisites) if selection.subset is not None else set()
    calls = [c for c in calls if not all(f"{r.rubric.id}/{r.criterion.id}" in added for r in c.requests)]
    return calls, decided


def cmd_render(args: argparse.Namespace, console: Console) -> int:
    """Print the exact messages of each judge call for the chosen turns, criteria and mode."""
    (rubric_path,) = rubric_paths([args.rubric])
    transcript = _pick_transcript(args.transcript, args.transcript_id, read_options(args))
    therapist = ", ".join(str(t.index) for t in transcript.therapist_turns())
    if args.turn is not None:
        if not 0 <= args.turn < len(transcript.turns) or transcript.turns[args.turn].speaker != "therapist":
            raise CliError(
                f"turn {args.turn} of {transcript.id} is not a therapist turn; therapist turns are: {therapist}"
            )
        if args.turns is not None:
            raise CliError("give either --turn N or --turns A-B, not both")
        args.turns = (args.turn, args.turn)
    if args.turns is None and args.limit is None and args.mode != "per-transcript":
        raise CliError(f"pick a turn with --turn N or --turns A-B (therapist turns of {transcript.id}: {therapist})")
    chosen = subset(args, with_transcripts=False)
    calls, decided = render_calls(transcript, rubric_path, chosen, args.mode)
    if args.json:
        payload = [
            {
                "criteria": [r.criterion.id for r in call.requests],
                "turns": sorted({r.turn.index for r in call.requests}),
                **({"criterion": call.requests[0].criterion.id} if len(call.requests) == 1 else {}),
                "messages": [m.model_dump() for m in call.messages],
            }
            for call in calls
        ]
        print(json.dumps(payload if len(payload) != 1 else payload[0], indent=2, ensure_ascii=False))
        return EXIT_OK
    for call in calls:
        first = call.requests[0]
        criteria = ", ".join(dict.fromkeys(r.criterion.id for r in call.requests))
        turns = ", ".join(str(t) for t in sorted({r.turn.index for r in call.requests}))
        label = "turn" if "," not in turns else "turns"
        console.print(Rule(escape(f"{first.rubric.id} / {criteria} on {transcript.id} {label} {turns} ({args.mode})")))
        for message in call.messages:
            console.print(f"[bold]--- {message.role} ---[/bold]")
            console.print(message.content, markup=False, highlight=False)
    for line in decided:
        console.print(f"[dim]no call, decided by rules: {escape(line)}[/dim]", highlight=False)
    return EXIT_OK
