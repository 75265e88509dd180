"""`evaluator watch`: after a rubric edit the next iteration re-judges only the edited criterion's
items (the response cache answers the rest) and names what moved."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from evaluator.config import JudgeSettings, RunConfig
from evaluator.store import load_judgments
from evaluator.watch import WatchStep, watch, watched_files
from tests.conftest import IGNORING_SEED, REPO, SLOWING_SEED

OLD_ANCHOR = "3: Acknowledges the request in words but keeps the same pace or agenda."
NEW_ANCHOR = "3: Names the request but carries on with the same exercise or question."


def test_an_anchor_edit_between_iterations_rejudges_only_that_criterion(tmp_path: Path, fake_server) -> None:
    rubric = tmp_path / "pacing.yaml"
    rubric.write_text((REPO / "rubrics" / "pacing.yaml").read_text())
    assert OLD_ANCHOR in rubric.read_text()
    server = fake_server()
    judge = JudgeSettings(kind="openai", model="fake-judge", base_url=server.url, cache_path=tmp_path / "cache.sqlite")
    config = RunConfig(
        transcripts=[IGNORING_SEED, SLOWING_SEED],
        rubrics=[rubric],
        output=tmp_path / "results",
        judge=judge,
        show_progress=False,
        concurrency=16,
    )
    assert rubric in watched_files(config)
    sent: list[int] = []

    def edit_after_first(step: WatchStep) -> None:
        sent.append(len(server.received))
        if len(sent) == 1:
            rubric.write_text(rubric.read_text().replace(OLD_ANCHOR, NEW_ANCHOR))

    console = Console(record=True, width=200)
    steps = watch(config, console, poll_s=0.01, max_iterations=2, on_step=edit_after_first)

    assert len(steps) == 2 and all(s.error is None and s.run_dir is not None for s in steps)
    first_run, second_run = (s.run_dir for s in steps)
    assert first_run != second_run, "each save is a new run"
    second = [r.body for r in server.received[sent[0] :]]
    assert second, "the edited criterion is judged again"
    assert all(NEW_ANCHOR.split(": ", 1)[1] in str(body["messages"]) for body in second), "only the edited one"
    judged = [
        j for j in load_judgments(second_run) if j.criterion_id == "slow_down_responsiveness" and j.status == "ok"
    ]
    assert len(second) == len(judged) < sent[0], "one call per item of the edited criterion; the rest is cached"
    assert steps[1].moved == ("pacing/slow_down_responsiveness",)
    out = console.export_text()
    assert "pacing/slow_down_responsiveness [scale.anchors.3 edited]" in out
    assert "changed: pacing.yaml" in out


def test_a_stop_condition_ends_the_wait(tmp_path: Path) -> None:
    config = RunConfig(
        transcripts=[SLOWING_SEED],
        rubrics=[REPO / "rubrics" / "pacing.yaml"],
        output=tmp_path / "results",
        judge=JudgeSettings(kind="rules"),
        show_progress=False,
    )
    steps = watch(config, Console(record=True), poll_s=0.01, stop=lambda: True)
    assert len(steps) == 1 and steps[0].run_dir is not None


def test_watch_reads_the_run_options_as_run_does_subsets_included() -> None:
    from evaluator.cli.parser import build_parser
    from evaluator.cli.watch_command import watch_config

    args = build_parser().parse_args(
        ["watch", "--criterion", "pacing/questions_asked", "--turns", "3-7", "--no-report"]
    )
    args.argv = []
    config = watch_config(args)
    assert config.subset is not None and config.subset.criteria and config.write_report is False
