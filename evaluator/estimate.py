"""`evaluator run --dry-run`: what a run would send and cost, computed from the rendered prompts,
before any money is spent. Criteria that wait for another criterion's verdict are counted as if it
said yes, so the figures are an upper bound."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evaluator.config import DEFAULT_MODEL, RunConfig
from evaluator.judges.pricing import token_counter
from evaluator.judges.reserve import UNCAPPED_REPLY_TOKENS, estimate_call, reply_cap
from evaluator.judges.select import judge_price
from evaluator.models import Rubric, SkippedFile, Subset, Usage
from evaluator.plan import JudgeRequest, group_requests, select_work, static_applicability, work_units
from evaluator.prompts import PromptRenderer
from evaluator.runner import make_call, shelve_inputs
from evaluator.terminal import fit
from evaluator.transcript_shelf import TranscriptShelf


@dataclass
class RubricEstimate:
    items: int = 0
    decided_by_rules: int = 0
    calls: int = 0
    usage: Usage = field(default_factory=Usage)


@dataclass
class DryRun:
    judge: str
    model: str | None
    mode: str
    transcripts: int
    skipped_files: int
    counting: str
    per_rubric: dict[str, RubricEstimate]
    cost_usd: float | None
    subset: Subset | None = None
    uncapped_calls: int = 0
    """Calls whose reply goes with no cap (--param max_tokens=null): counted at UNCAPPED_REPLY_TOKENS, as
    --max-cost reserves them."""

    @property
    def total(self) -> RubricEstimate:
        total = RubricEstimate()
        for e in self.per_rubric.values():
            total.items += e.items
            total.decided_by_rules += e.decided_by_rules
            total.calls += e.calls
            total.usage = total.usage + e.usage
        return total


async def dry_run(config: RunConfig) -> DryRun:
    """What a run would judge and cost, planned as the run plans it, with the sessions on a shelf (a dry run
    of a million judgments holds no more than the run would)."""
    rubrics, shelf, skipped, _ = shelve_inputs(config)
    try:
        return _estimate(config, rubrics, shelf, skipped)
    finally:
        shelf.close()


def _estimate(
    config: RunConfig, rubrics: list[Rubric], transcripts: TranscriptShelf, skipped: list[SkippedFile]
) -> DryRun:
    renderer = PromptRenderer(config.prompts_dir)
    llm = config.judge.uses_llm()
    selection = select_work(transcripts, rubrics, config.samples, config.subset)
    transcripts = selection.transcripts
    estimates = {r.id: RubricEstimate() for r in rubrics if r.id in selection.rubric_ids}
    output = "json_schema" if config.judge.output == "auto" else config.judge.output
    uncapped = 0
    for unit in work_units(selection.plans, config.mode):
        estimate = estimates[unit[0].rubric.id]
        for stage in range(len(unit[0].stages)):
            for sample in range(unit[0].samples):
                pending: list[JudgeRequest] = []
                for plan in unit:
                    for criterion in plan.stages[stage]:
                        estimate.items += 1
                        if static_applicability(criterion, plan.transcript, plan.turn) is not None:
                            estimate.decided_by_rules += 1
                            continue
                        pending.append(plan.request(criterion, sample))
                for group in group_requests(pending, config.mode):
                    estimate.calls += 1
                    if llm:
                        call = make_call(renderer, group, config.mode)
                        estimate.usage = estimate.usage + estimate_call(call, config.judge)
                        uncapped += reply_cap(call, config.judge, output) is None
    price = judge_price(config.judge)
    result = DryRun(
        judge="openai" if llm else "rules",
        model=(config.judge.model or DEFAULT_MODEL) if llm else None,
        mode=config.mode,
        transcripts=len(transcripts),
        skipped_files=len(skipped),
        counting=token_counter()[1] if llm else "no tokens: the rules judge runs offline",
        per_rubric=estimates,
        cost_usd=None,
        subset=selection.subset,
        uncapped_calls=uncapped,
    )
    result.cost_usd = price.cost(result.total.usage) if price else (0.0 if not llm else None)
    return result


def print_dry_run(estimate: DryRun, console: Console) -> None:
    judge = estimate.judge + (f" ({estimate.model})" if estimate.model else "")
    console.print(
        f"Dry run: {estimate.transcripts} transcripts, judge {escape(judge)}, mode {estimate.mode}; nothing is sent.",
        highlight=False,
    )
    if estimate.skipped_files:
        console.print(f"[red]{estimate.skipped_files} file(s) would be skipped (see above)[/red]")
    table = Table(title_justify="left")
    for column in ("rubric", "items", "decided by rules", "calls (at most)", "prompt tokens", "completion tokens"):
        table.add_column(column, justify="left" if column == "rubric" else "right", no_wrap=column == "rubric")
    for rubric_id, e in [*estimate.per_rubric.items(), ("total", estimate.total)]:
        table.add_row(
            escape(rubric_id),
            f"{e.items:,}",
            f"{e.decided_by_rules:,}",
            f"{e.calls:,}",
            f"{e.usage.prompt_tokens:,}",
            f"{e.usage.completion_tokens:,}",
        )
    console.print(fit(table))
    cost = (
        "unknown (no price for this model; pass --prices FILE)"
        if estimate.cost_usd is None
        else f"${estimate.cost_usd:.4f}"
    )
    console.print(f"Estimated cost: {cost}. Tokens counted by {estimate.counting}.", highlight=False)
    if estimate.uncapped_calls:
        console.print(
            f"Replies go uncapped in {estimate.uncapped_calls:,} call(s) (no max_tokens or max_completion_tokens): "
            f"each is counted at {UNCAPPED_REPLY_TOKENS:,} completion tokens, as --max-cost reserves it.",
            highlight=False,
        )
