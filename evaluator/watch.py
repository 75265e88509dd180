"""`evaluator watch`: re-run on every save of a rubric or template and print what moved.

Each re-run is an ordinary new run (same options, a new run id) with the response cache on, so only
the items whose prompt changed reach the judge; the rest are free. Files are polled (mtime, size and
content), which needs no dependency and works on every file system and editor save style. The loop is
split so it can be tested: `run_once` is one iteration, `watch` the loop with an injectable stop
condition, iteration cap and per-step hook.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from evaluator.api import run_async
from evaluator.config import RunConfig
from evaluator.errors import EvaluatorError
from evaluator.prompts import bundled_prompts_dir
from evaluator.rubrics import discover_rubrics
from evaluator.store import new_run_id

TEMPLATE_SUFFIXES = (".j2", ".jinja", ".jinja2")
Snapshot = dict[Path, tuple[int, int, str]]


@dataclass(frozen=True)
class WatchStep:
    """One iteration: the run it wrote (None if it could not start) and what went wrong, if anything."""

    run_dir: Path | None
    error: str | None = None
    moved: tuple[str, ...] = ()
    """`rubric/criterion` of each criterion that moved against the previous run."""


def watched_files(config: RunConfig) -> list[Path]:
    """The rubric files, and the templates they can use: every template beside a rubric (its own
    template and includes) and in the prompts folder. Re-listed on every poll, so a new file counts."""
    rubrics = [p for p in discover_rubrics(list(config.rubrics)) if p.is_file()]
    folders = {config.prompts_dir or bundled_prompts_dir(), *(p.parent for p in rubrics)}
    templates = [p for folder in sorted(folders) if folder.is_dir() for p in sorted(folder.iterdir())]
    return rubrics + [p for p in templates if p.suffix in TEMPLATE_SUFFIXES and p.is_file()]


def snapshot(files: list[Path]) -> Snapshot:
    """mtime and size say a file was saved; the content hash says it changed (a bare save does not re-run)."""
    found: Snapshot = {}
    for path in files:
        try:
            stat = path.stat()
            found[path] = (stat.st_mtime_ns, stat.st_size, hashlib.sha256(path.read_bytes()).hexdigest())
        except OSError:
            continue  # mid-save (removed and rewritten): seen on the next poll
    return found


def _changed(before: Snapshot, after: Snapshot) -> list[Path]:
    return sorted(
        p for p in before.keys() | after.keys() if before.get(p, (0, 0, ""))[2] != after.get(p, (0, 0, ""))[2]
    )


def run_once(config: RunConfig, previous: Path | None, console: Console) -> WatchStep:
    """One iteration: a new run with these options, then what moved against `previous`. A rubric saved
    half-edited is reported and waited on, not fatal. Ctrl-C propagates after naming the run to resume."""
    from evaluator.analysis.compare import compare
    from evaluator.results import open_run
    from evaluator.views.moves import print_moves

    run_id = new_run_id()
    try:
        outcome = asyncio.run(run_async(replace(config, run_id=run_id, resume=None), console))
    except KeyboardInterrupt:
        run_dir = config.output / run_id
        if run_dir.exists():
            console.print(
                f"interrupted; finished judgments are saved - continue with `evaluator run --resume {run_dir}`",
                markup=False,
                highlight=False,
            )
        raise
    except EvaluatorError as exc:
        console.print(f"[red]not run:[/red] {escape(str(exc))}", highlight=False)
        return WatchStep(None, str(exc))
    run_dir = outcome.run_dir
    counts = ", ".join(f"{n} {status}" for status, n in outcome.manifest.counts.items())
    console.print(f"run {run_dir}: {counts}", markup=False, highlight=False)
    if previous is None:
        return WatchStep(run_dir)
    comparison = compare(open_run(previous), open_run(run_dir))
    print_moves(comparison, console)
    moved = tuple(f"{c.rubric_id}/{c.criterion_id}" for c in comparison.criteria if c.moved)
    return WatchStep(run_dir, moved=moved)


def wait_for_change(
    config: RunConfig, seen: Snapshot, poll_s: float, stop: Callable[[], bool]
) -> tuple[Snapshot, list[Path]] | None:
    """Poll until a watched file's content changes; None when `stop()` says to end."""
    while not stop():
        current = snapshot(watched_files(config))
        changed = _changed(seen, current)
        if changed:
            return current, changed
        time.sleep(poll_s)
    return None


def watch(
    config: RunConfig,
    console: Console,
    *,
    poll_s: float = 0.5,
    max_iterations: int | None = None,
    stop: Callable[[], bool] = lambda: False,
    on_step: Callable[[WatchStep], None] | None = None,
) -> list[WatchStep]:
    """Run, then re-run after every change until Ctrl-C, `stop()` or `max_iterations` runs. Ctrl-C
    while waiting ends quietly; during a run the run is left resumable and the interrupt re-raised."""
    steps: list[WatchStep] = []
    previous: Path | None = None
    seen = snapshot(watched_files(config))
    while True:
        step = run_once(config, previous, console)
        steps.append(step)
        previous = step.run_dir or previous
        if on_step is not None:
            on_step(step)
        if max_iterations is not None and len(steps) >= max_iterations:
            return steps
        console.print(f"watching {len(seen)} rubric and template files; Ctrl-C to stop", style="dim", highlight=False)
        try:
            change = wait_for_change(config, seen, poll_s, stop)
        except KeyboardInterrupt:
            return steps
        if change is None:
            return steps
        seen, changed = change
        console.print(escape("changed: " + ", ".join(p.name for p in changed)), style="bold", highlight=False)
