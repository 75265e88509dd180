"""The LLM judge against a real OpenAI-compatible server: llama.cpp's own llama-server.

The fake server in tests/fake_openai.py replays what we scripted; this suite sends the evaluator's
real requests (json_schema response formats, seeds, logprobs, grouped schemas) to llama-server
serving a tiny random-weight model the tests write (tests/llama_server/tiny_model.py). Its verdicts
are nonsense, but every reply is shaped by the server's grammar, so what is checked is the wire: every
planned item ends with a judgment, none is an error, and tokens, cached tokens and logprobs come back.

The binary is built once per machine by `bash tests/llama_server/build.sh` (`make test` does that
and passes its path as LLAMA_SERVER). Without it these tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import evaluator
from evaluator.cli import main
from evaluator.config import JudgeSettings
from evaluator.models import CategoricalScale, Judgment, RunManifest
from evaluator.rubrics import load_rubrics
from evaluator.store import load_judgments
from tests.conftest import REPO, SLOWING_SEED
from tests.llama_server.server import BUILD_HINT, LlamaServer, cached_binary, find_binary
from tests.llama_server.tiny_model import write_tiny_model

SLOTS = 4
CONTEXT_PER_SLOT = 16384  # a whole session with a rubric's criteria fits one slot (about 7,000 tokens)
TRANSCRIPTS = REPO / "transcripts"
RUBRICS = REPO / "rubrics"

COUNT_RUBRIC = """\
id: counting
version: 1
title: Counting
criteria:
  - id: questions_asked
    name: Number of questions asked
    question: How many questions does this therapist turn ask the patient?
    scale:
      type: count
      unit: questions
"""
SHORT_SESSION = """\
Patient: Everything feels like too much this week. Can we slow down a little?

Therapist: Of course. Let's take it slowly. Would you like to pause for a moment first?

Patient: Yes, please.

Therapist: Take all the time you need. I'm here.
"""


def corpus() -> str:
    """The text the judge will see, so the tiny model's tokenizer learns merges that fit it."""
    files = [path for folder in ("transcripts", "rubrics", "prompts") for path in sorted((REPO / folder).iterdir())]
    return "".join(path.read_text(encoding="utf-8") for path in files if path.is_file())


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    binary = find_binary()
    if binary is None:
        message = f"llama-server not found at {os.environ.get('LLAMA_SERVER') or cached_binary()}: {BUILD_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("llama-server")
    model = write_tiny_model(folder / "tiny.gguf", corpus())
    with LlamaServer(binary, model, folder / "server.log", context=SLOTS * CONTEXT_PER_SLOT, slots=SLOTS) as server:
        yield server


def settings(server: LlamaServer, **overrides: object) -> JudgeSettings:
    return JudgeSettings(kind="openai", model="tiny-random", base_url=server.base_url, cache_path=None, **overrides)


def judge_run(
    server: LlamaServer,
    folder: Path,
    mode: str,
    rubrics: tuple[Path, ...] = (RUBRICS,),
    transcripts: tuple[Path, ...] = (TRANSCRIPTS,),
    **judge: object,
) -> tuple[RunManifest, list[Judgment]]:
    """One run through the public API, as a notebook would start it."""
    config = evaluator.RunConfig(
        transcripts=transcripts,
        rubrics=rubrics,
        output=folder,
        judge=settings(server, **judge),
        mode=mode,
        concurrency=SLOTS,
        run_id="run",
        show_progress=False,
    )
    result = evaluator.run(config)
    return result.manifest, load_judgments(result.run_dir)


def assert_every_item_judged(manifest: RunManifest, judgments: list[Judgment]) -> None:
    """Every planned item has exactly one judgment, none an error, every unscored one says why, and
    the server really answered."""
    keys = [j.key for j in judgments]
    assert len(keys) == len(set(keys)) == manifest.items_planned
    assert manifest.complete and manifest.stopped is None
    errors = [(j.key, j.error) for j in judgments if j.status == "error"]
    assert errors == []
    assert all(j.unscored_reason for j in judgments if j.status == "unscored")
    assert manifest.counts["ok"] > 0
    assert manifest.usage.prompt_tokens > 0 and manifest.usage.completion_tokens > 0


@pytest.mark.usefixtures("no_llm_env")
def test_per_criterion_with_logprobs_judges_every_item_and_weighs_scores(
    llama_server: LlamaServer, tmp_path: Path
) -> None:
    manifest, judgments = judge_run(llama_server, tmp_path, "per-criterion", logprobs=True)

    assert_every_item_judged(manifest, judgments)
    assert manifest.usage.cached_tokens > 0  # llama-server reuses a slot's prompt prefix and says so
    criteria = {(r.id, c.id): c for r in load_rubrics([RUBRICS]) for c in r.criteria}
    weighted = [j for j in judgments if j.weighted_score is not None]
    assert weighted
    for judgment in weighted:
        assert judgment.status == "ok"
        scale = criteria[judgment.rubric_id, judgment.criterion_id].scale
        allowed = None if isinstance(scale, CategoricalScale) else scale.allowed()
        if allowed:
            assert min(allowed) <= judgment.weighted_score <= max(allowed)


@pytest.mark.usefixtures("no_llm_env")
def test_per_turn_judges_every_item_with_the_default_max_tokens(llama_server: LlamaServer, tmp_path: Path) -> None:
    manifest, judgments = judge_run(llama_server, tmp_path, "per-turn")

    assert_every_item_judged(manifest, judgments)


@pytest.mark.usefixtures("no_llm_env")
def test_per_transcript_judges_every_item_with_the_default_max_tokens(
    llama_server: LlamaServer, tmp_path: Path
) -> None:
    """One rubric of two criteria: a session-wide reply for every bundled rubric is thousands of
    grammar-checked tokens, which on a small CPU takes minutes without testing anything more."""
    rubric = RUBRICS / "mi_relational.yaml"
    manifest, judgments = judge_run(llama_server, tmp_path, "per-transcript", rubrics=(rubric,))

    assert_every_item_judged(manifest, judgments)
    assert {j.transcript_id for j in judgments if j.status == "ok"} == set(manifest.transcripts)


@pytest.mark.usefixtures("no_llm_env")
def test_a_reply_cut_off_by_max_tokens_is_unscored_with_the_reason(
    llama_server: LlamaServer, tmp_path: Path, write
) -> None:
    rubric = RUBRICS / "mi_relational.yaml"
    session = write("short.txt", SHORT_SESSION)
    manifest, judgments = judge_run(
        llama_server, tmp_path, "per-criterion", (rubric,), (session,), max_tokens=5, content_attempts=1
    )

    assert len(judgments) == manifest.items_planned > 0
    assert {j.status for j in judgments} == {"unscored"}
    assert all("cut off" in (j.unscored_reason or "") for j in judgments)


@pytest.mark.usefixtures("no_llm_env")
def test_json_object_mode_records_schema_less_replies_as_unscored_after_re_asking(
    llama_server: LlamaServer, tmp_path: Path, write
) -> None:
    """JSON mode constrains replies to some JSON object, not to the verdict's schema; what the server
    returns must end as ok or unscored with the reason, never as an error or a made-up grade."""
    session = write("short.txt", SHORT_SESSION)
    manifest, judgments = judge_run(
        llama_server, tmp_path, "per-criterion", (RUBRICS / "mi_relational.yaml",), (session,), output="json_object"
    )

    assert len(judgments) == manifest.items_planned > 0
    assert manifest.counts["error"] == 0 and manifest.usage.completion_tokens > 0
    for judgment in judgments:
        assert judgment.parameters["output"] == "json_object"
        if judgment.status == "unscored":
            assert judgment.attempts == 3 and judgment.unscored_reason


@pytest.mark.usefixtures("no_llm_env")
def test_a_reply_that_never_ends_is_capped_by_the_default_max_tokens(
    llama_server: LlamaServer, tmp_path: Path, write
) -> None:
    """Plain-text mode leaves the tiny model unconstrained, and it never stops by itself: without a cap
    sized by the judge, llama-server would generate until the slot's context is full."""
    session = write("short.txt", SHORT_SESSION)
    manifest, judgments = judge_run(
        llama_server,
        tmp_path,
        "per-criterion",
        (RUBRICS / "mi_relational.yaml",),
        (session,),
        output="text",
        content_attempts=1,
    )

    assert len(judgments) == manifest.items_planned > 0
    for judgment in judgments:
        cap = judgment.parameters["max_tokens"]
        assert isinstance(cap, int) and cap < CONTEXT_PER_SLOT // 4
        assert judgment.status == "unscored" and "cut off" in (judgment.unscored_reason or "")
        assert 0 < judgment.usage.completion_tokens <= cap


@pytest.mark.usefixtures("no_llm_env")
def test_a_huge_count_from_the_judge_is_not_a_grade_and_does_not_crash_the_run(
    llama_server: LlamaServer, tmp_path: Path, write
) -> None:
    """The tiny model answers a count with 16 digits (the count schema has no bound). This once ended
    the run with an internal error: the HTML report drew one bar per level up to the count."""
    rubric = write("counting.yaml", COUNT_RUBRIC)
    args = ["run", str(SLOWING_SEED), "-r", str(rubric), "-o", str(tmp_path / "out"), "--run-id", "run"]
    args += ["--judge", "openai", "--base-url", llama_server.base_url, "--model", "tiny-random"]
    args += ["--no-cache", "--no-progress", "--concurrency", str(SLOTS)]

    code = main(args)

    assert code == 0
    run_dir = tmp_path / "out" / "run"
    assert (run_dir / "report.html").is_file()
    judgments = load_judgments(run_dir)
    assert judgments and all(j.status == "unscored" or (j.score or 0) <= 1000 for j in judgments)
