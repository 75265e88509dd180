"""What a call may cost before it is sent (estimate_call): its reply counted at the cap it goes with, under
either name, so --max-cost holds for a reasoning model capped by max_completion_tokens too."""

from __future__ import annotations

import pytest

from evaluator.config import JudgeSettings, RunConfig
from evaluator.judges.reserve import UNCAPPED_REPLY_TOKENS, estimate_call
from evaluator.rubrics import load_rubric
from evaluator.runner import run
from evaluator.store import load_judgments
from tests.conftest import IGNORING_SEED, REPO, SLOWING_SEED
from tests.test_judge_openai import RUBRIC, _call

REASONING = {"max_completion_tokens": 4000, "max_tokens": None}
"""The cap as the README tells reasoning-model users to pass it."""


@pytest.mark.parametrize(
    ("parameters", "rubric_parameters", "reserved"),
    [
        (REASONING, "", 4000),
        ({"max_tokens": None}, "parameters: {max_completion_tokens: 3000}\n", 3000),
        ({"max_completion_tokens": 5000}, "parameters: {max_completion_tokens: 3000, max_tokens: null}\n", 5000),
        ({"max_completion_tokens": 5000, "max_tokens": 700}, "", 5000),  # both go: either may be honoured
        ({"max_completion_tokens": 300, "max_tokens": 700}, "", 700),
        ({"max_tokens": None}, "", UNCAPPED_REPLY_TOKENS),  # no cap goes: reserved at the ceiling
        ({}, "parameters: {max_tokens: null}\n", UNCAPPED_REPLY_TOKENS),
    ],
)
def test_a_chosen_max_completion_tokens_is_the_completion_reserved(write, parameters, rubric_parameters, reserved):
    rubric = load_rubric(write("r.yaml", RUBRIC.replace("criteria:\n", rubric_parameters + "criteria:\n")))
    settings = JudgeSettings(kind="openai", model="fake-judge", base_url="http://127.0.0.1:9/v1", parameters=parameters)
    assert estimate_call(_call(rubric), settings).completion_tokens == reserved


def test_max_cost_holds_for_a_reasoning_model_capped_by_max_completion_tokens(tmp_path, write, fake_server) -> None:
    """Each reply spends 3,500 reasoning tokens within its 4,000 cap: calls reserved at the default verdict
    budget (464 tokens) would let the run spend several times the budget before it stopped."""
    server = fake_server(reasoning_tokens=3500)
    prices = write("prices.yaml", "fake-judge: {input: 0, cached_input: 0, output: 1000}\n")
    judge = JudgeSettings(
        kind="openai",
        model="fake-judge",
        base_url=server.url,
        cache_path=None,
        prices_file=prices,
        parameters=REASONING,
    )
    config = RunConfig(
        transcripts=[IGNORING_SEED, SLOWING_SEED],
        rubrics=[REPO / "rubrics" / "act_fidelity.yaml"],
        output=tmp_path / "results",
        judge=judge,
        max_cost=10.0,
        concurrency=4,
        show_progress=False,
    )
    result = run(config)
    judged = [j for j in load_judgments(result.run_dir) if j.attempts]
    assert judged and {j.status for j in judged} == {"ok"}
    assert min(j.usage.completion_tokens for j in judged) > 3500  # the replies did spend near their cap
    assert all("max_tokens" not in r.body and r.body["max_completion_tokens"] == 4000 for r in server.received)
    manifest = result.manifest
    assert manifest.stopped and "--max-cost 10.0" in manifest.stopped
    assert 0 < manifest.cost_usd <= 10.0
