"""`evaluator rubrics`: the rubrics `-r NAME` can find, local (./rubrics/) and installed with the
package, each with its criteria and scales, so a new user need not open the YAML to start."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from evaluator.cli.options import EXIT_ATTENTION, EXIT_OK
from evaluator.models import Rubric
from evaluator.rubrics import (
    LOCAL_RUBRICS,
    RubricError,
    bundled_rubrics_dir,
    discover_rubrics,
    load_rubric,
    scale_summary,
)


@dataclass(frozen=True)
class RubricEntry:
    name: str
    path: Path
    where: str
    """"local" (./rubrics/, found first) or "installed" (shipped with the package)."""
    shadowed: bool = False
    """An installed rubric that a local file of the same name hides from `-r NAME`."""


def available_rubrics() -> list[RubricEntry]:
    """Local rubrics first, as `-r NAME` looks them up; a folder seen twice (a source checkout run from
    its root, where ./rubrics/ is the installed folder) is listed once, as local."""
    entries: list[RubricEntry] = []
    seen: set[Path] = set()
    local_names: set[str] = set()
    for folder, where in ((LOCAL_RUBRICS, "local"), (bundled_rubrics_dir(), "installed")):
        if not folder.is_dir() or folder.resolve() in seen:
            continue
        seen.add(folder.resolve())
        for path in discover_rubrics([folder]):
            shadowed = where == "installed" and path.stem in local_names
            entries.append(RubricEntry(path.stem, path, where, shadowed))
            if where == "local":
                local_names.add(path.stem)
    return entries


def _describe(rubric: Rubric) -> list[str]:
    return [f"    {c.id}: {scale_summary(c)}" for c in rubric.criteria]


def cmd_rubrics(args: argparse.Namespace, console: Console) -> int:
    entries = available_rubrics()
    if not entries:
        console.print(f"No rubrics found in {LOCAL_RUBRICS}/ or {bundled_rubrics_dir()}", markup=False)
        return EXIT_OK
    broken = 0
    for entry in entries:
        note = " (hidden by the local one)" if entry.shadowed else ""
        try:
            rubric = load_rubric(entry.path)
        except RubricError as exc:
            broken += 1
            console.print(f"[red]{escape(entry.name)}[/red]  {entry.where}{note}  {escape(str(exc))}", highlight=False)
            continue
        console.print(
            f"[bold]{escape(entry.name)}[/bold]  {entry.where}{note}  {escape(str(entry.path))}\n"
            f"  {escape(rubric.title)} (v{escape(str(rubric.version))}), {len(rubric.criteria)} criteria:",
            highlight=False,
        )
        console.print("\n".join(_describe(rubric)), markup=False, highlight=False)
    return EXIT_ATTENTION if broken else EXIT_OK
