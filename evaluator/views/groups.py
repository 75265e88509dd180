"""How groups read (`report RUN --by FIELD`): a table per rubric in the terminal, and the group sections
of report.html (per criterion a row, per group its figures, then the forest plot of each group against
the first), from one analysis.groups.GroupSummary and the matching Contrast."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup
from rich.console import Console
from rich.markup import escape

from evaluator.analysis.contrast import Contrast, contrast_groups
from evaluator.analysis.groups import FEW_SESSIONS, FEW_SESSIONS_NOTE, GroupCell, GroupSummary, summarize_groups
from evaluator.analysis.stats import Estimate
from evaluator.results import RunData
from evaluator.store import write_atomic
from evaluator.views import format as fmt
from evaluator.views.forest import forest_svg

GROUPS_MD = "groups.md"
TERMINAL_COLUMNS = ("criterion", "group", "sessions", "turns", "mean [95% CI]", "meets [95% CI]")
# A group is named by metadata values, which can be any length: in the terminal a longer name is cut with an
# ellipsis (groups.md and report.html keep it whole), since a cell folded over hundreds of lines reads as nothing.
GROUP_CHARS = 120


def _estimate(e: Estimate | None) -> str:
    return fmt.MISSING if e is None else fmt.interval(e.value, e.low, e.high)


def _share(e: Estimate | None) -> str:
    return fmt.MISSING if e is None else f"{fmt.percent(e.value)} [{fmt.percent(e.low)}, {fmt.percent(e.high)}]"


def small_groups_warning(groups: GroupSummary, limit: int | None = None) -> str | None:
    small = groups.small
    if not small:
        return None
    listed = ", ".join(f"{g if limit is None else fmt.clip(g, limit)} ({groups.size(g)})" for g in small)
    return f"groups with under {FEW_SESSIONS} sessions: {listed}; {FEW_SESSIONS_NOTE}."


def print_groups(groups: GroupSummary, console: Console) -> None:
    """Per rubric, a row per criterion and group; what the figures are and the small-group warning after."""
    for rubric_id in dict.fromkeys(c.rubric_id for c in groups.criteria):
        rows = []
        for gc in (c for c in groups.criteria if c.rubric_id == rubric_id):
            for group, cell in gc.cells.items():
                rows.append([gc.criterion.id, fmt.clip(group, GROUP_CHARS), str(cell.sessions), str(cell.turns)])
                rows[-1] += [_estimate(cell.mean), _share(cell.share)]
        title = f"{rubric_id} by {', '.join(groups.fields)}"
        table = fmt.rich_table(TERMINAL_COLUMNS, rows, text_columns=2, title=title)
        table.columns[0].no_wrap = table.columns[1].no_wrap = False
        console.print(fmt.fit(table))
    warning = small_groups_warning(groups, GROUP_CHARS)
    if warning:
        console.print(f"[yellow]![/yellow] {escape(warning)}", highlight=False)
    console.print(escape(groups.method), style="dim", highlight=False)


# --- groups.md -----------------------------------------------------------------------------------------


def render_groups_markdown(groups: GroupSummary) -> str:
    """groups.md: the terminal's tables, one per rubric, with the same notes."""
    run = groups.run.manifest.run_id
    out = [f"# Run {run} by {', '.join(groups.fields)}", ""]
    out += [f"- {g}: {groups.size(g)} sessions" for g in groups.groups]
    warning = small_groups_warning(groups)
    out += ["", f"Warning: {warning}"] if warning else []
    for rubric_id in dict.fromkeys(c.rubric_id for c in groups.criteria):
        rows = [
            [gc.criterion.id, group, str(cell.sessions), str(cell.turns), _estimate(cell.mean), _share(cell.share)]
            for gc in groups.criteria
            if gc.rubric_id == rubric_id
            for group, cell in gc.cells.items()
        ]
        out += ["", f"## Rubric `{rubric_id}`", ""] + fmt.md_table(TERMINAL_COLUMNS, rows)
    out += ["", groups.method]
    return "\n".join(out) + "\n"


def write_groups(groups: GroupSummary, folder: Path) -> Path:
    path = folder / GROUPS_MD
    write_atomic(path, render_groups_markdown(groups))
    return path


# --- report.html --------------------------------------------------------------------------------------


@dataclass
class GroupCellView:
    mean: str
    interval: str
    share: str | None
    n: str


@dataclass
class GroupRowView:
    criterion_id: str
    name: str
    pass_text: str | None
    cells: list[GroupCellView]


@dataclass
class GroupsView:
    """Everything report.html needs for `--by`: sections, the forest plot, and each session's group."""

    fields: tuple[str, ...]
    groups: list[str]
    sizes: list[int]
    sections: list[tuple[str, list[GroupRowView]]]
    forest: Markup
    baseline: str | None
    warnings: list[str]
    notes: list[str]
    values: dict[str, tuple[str, ...]]
    members: dict[str, str]

    @property
    def columns(self) -> list[tuple[str, int]]:
        """Each group with its number of sessions, as the group table's header says it."""
        return list(zip(self.groups, self.sizes))

    def row_values(self, transcript_id: str) -> tuple[str, ...]:
        return self.values.get(transcript_id, tuple(fmt.MISSING for _ in self.fields))


def _cell_view(cell: GroupCell) -> GroupCellView:
    m = cell.mean
    interval = fmt.MISSING if m is None else f"[{fmt.number(m.low)}, {fmt.number(m.high)}]"
    share = None if cell.share is None else _share(cell.share)
    n = f"{cell.sessions} sessions · {cell.turns} turns"
    return GroupCellView(fmt.number(m.value if m else None), interval, share, n)


def report_groups(run: RunData, by: str | Sequence[str]) -> GroupsView:
    """The group figures of a run and, when there are two groups or more, each against the first."""
    groups = summarize_groups(run, by)
    contrast = contrast_groups(run, by) if len(groups.groups) > 1 else None
    return groups_view(groups, contrast)


def groups_view(groups: GroupSummary, contrast: Contrast | None) -> GroupsView:
    sections: dict[str, list[GroupRowView]] = {}
    for gc in groups.criteria:
        c = gc.criterion
        pass_text = None if c.pass_at is None else f"{'≥' if c.better == 'higher' else '≤'} {c.pass_at:g}"
        row = GroupRowView(c.id, c.name, pass_text, [_cell_view(gc.cells[g]) for g in groups.groups])
        sections.setdefault(gc.rubric_id, []).append(row)
    warnings = [w for w in [small_groups_warning(groups)] if w]
    notes = [groups.method]
    forest, baseline = Markup(""), None
    if contrast is not None:  # its notes say what groups.method says, and how the plot's differences are drawn
        forest, baseline = forest_svg(contrast.rows, contrast.baseline), contrast.baseline
        notes = contrast.notes
    return GroupsView(
        groups.fields,
        groups.groups,
        [groups.size(g) for g in groups.groups],
        list(sections.items()),
        forest,
        baseline,
        warnings,
        notes,
        groups.values,
        groups.members,
    )
