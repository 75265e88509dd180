"""How a contrast reads: a table per arm in the terminal (whole figures at 80 columns), contrast.md,
and contrast.html with the forest plot, all from one analysis.contrast.Contrast, so they cannot disagree.
The notes on averaging, intervals and multiplicity and the few-sessions warnings go wherever the
figures go."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from evaluator.analysis.contrast import Contrast, CriterionContrast
from evaluator.store import write_atomic
from evaluator.views import format as fmt
from evaluator.views.forest import forest_svg
from evaluator.views.templating import asset, page_environment

CONTRAST_MD = "contrast.md"
CONTRAST_HTML = "contrast.html"
TERMINAL_COLUMNS = ("criterion", "sessions", "mean A → B", "B − A [95% CI]", "p Holm", "verdict")


def p_text(p: float | None) -> str:
    """A p-value as the tables show it: three decimals, `<0.001` below that."""
    if p is None:
        return fmt.MISSING
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _name(row: CriterionContrast, rubrics: int) -> str:
    return row.criterion.id if rubrics == 1 else f"{row.rubric_id}/{row.criterion.id}"


def _difference(row: CriterionContrast) -> str:
    d = row.difference
    return fmt.MISSING if d is None else fmt.interval(d.value, d.low, d.high, signed=True)


def _sessions(row: CriterionContrast) -> str:
    """Pairs used, or sessions scored in the baseline and the arm: `20/20`."""
    return str(row.pairs) if row.pairs is not None else f"{row.baseline.sessions}/{row.arm.sessions}"


def _rubric_count(contrast: Contrast) -> int:
    return len({r.rubric_id for r in contrast.rows})


def _heading(contrast: Contrast, arm: str) -> str:
    return f"{arm} − {contrast.baseline} (baseline)"


def unscored_line(contrast: Contrast) -> str | None:
    """The criteria no arm has a score on, named once instead of a row of dashes each."""
    names = list(dict.fromkeys(_name(r, _rubric_count(contrast)) for r in contrast.rows if not r.scored))
    return f"Not scored in any arm (left out): {', '.join(names)}." if names else None


def header_lines(contrast: Contrast) -> list[str]:
    sizes = ", ".join(f"{arm}: {n} sessions" for arm, n in contrast.sizes.items())
    return [f"Contrast of {contrast.title}", f"Arms ({'/'.join(contrast.by)}): {sizes}"]


# --- terminal -----------------------------------------------------------------------------------------


def print_contrast(contrast: Contrast, console: Console) -> None:
    """A table per arm against the baseline (and per rubric, so a row is a criterion id), then the
    warnings and how to read the figures."""
    for line in header_lines(contrast):
        console.print(escape(line), highlight=False)
    rubrics = list(dict.fromkeys(r.rubric_id for r in contrast.rows))
    for arm in contrast.compared():
        for rubric_id in rubrics:
            rows = [
                [
                    r.criterion.id,
                    _sessions(r),
                    f"{fmt.number(r.baseline.mean)} → {fmt.number(r.arm.mean)}",
                    _difference(r),
                    p_text(r.p_holm),
                    r.verdict,
                ]
                for r in contrast.rows
                if r.arm.label == arm and r.rubric_id == rubric_id and r.scored
            ]
            if not rows:
                continue
            title = _heading(contrast, arm) + (f", rubric {rubric_id}" if len(rubrics) > 1 else "")
            columns = ("criterion", "pairs" if contrast.paired else "sessions", *TERMINAL_COLUMNS[2:])
            table = fmt.rich_table(columns, rows, title=title)
            table.columns[0].no_wrap, table.columns[0].overflow = False, "fold"
            console.print(fmt.fit(table))
    unscored = unscored_line(contrast)
    if unscored:
        console.print(escape(unscored), highlight=False)
    for warning in contrast.warnings:
        console.print(f"[yellow]![/yellow] {escape(warning)}", highlight=False)
    for note in contrast.notes:
        console.print(escape(note), style="dim", highlight=False)


# --- contrast.md --------------------------------------------------------------------------------------


def _md_columns(contrast: Contrast) -> tuple[str, ...]:
    sessions = ("pairs",) if contrast.paired else ("sessions A", "sessions B")
    return (
        "criterion",
        *sessions,
        "turns A",
        "turns B",
        "mean A",
        "mean B",
        "B − A [95% CI]",
        "p",
        "p Holm",
        "verdict",
    )


def _md_row(row: CriterionContrast, rubrics: int, paired: bool) -> list[str]:
    sessions = [str(row.pairs)] if paired else [str(row.baseline.sessions), str(row.arm.sessions)]
    return [
        _name(row, rubrics),
        *sessions,
        str(row.baseline.turns),
        str(row.arm.turns),
        fmt.number(row.baseline.mean),
        fmt.number(row.arm.mean),
        _difference(row),
        p_text(row.p_value),
        p_text(row.p_holm),
        row.verdict,
    ]


def render_contrast_markdown(contrast: Contrast) -> str:
    out = [f"# {header_lines(contrast)[0]}", "", f"- {header_lines(contrast)[1]}"]
    out += [f"- Baseline (A): {contrast.baseline}"]
    if contrast.warnings:
        out += ["", "## Warnings", ""] + [f"- {w}" for w in contrast.warnings]
    rubrics = _rubric_count(contrast)
    for arm in contrast.compared():
        rows = [_md_row(r, rubrics, contrast.paired) for r in contrast.rows if r.arm.label == arm and r.scored]
        out += ["", f"## {_heading(contrast, arm)} (B = {arm})", ""]
        out += fmt.md_table(_md_columns(contrast), rows)
    unscored = unscored_line(contrast)
    out += ["", unscored] if unscored else []
    out += ["", "## How to read it", ""] + [f"- {note}" for note in contrast.notes]
    return "\n".join(out) + "\n"


# --- contrast.html ------------------------------------------------------------------------------------


def render_contrast_html(contrast: Contrast) -> str:
    rubrics = _rubric_count(contrast)
    tables = [
        (
            _heading(contrast, arm),
            [
                _md_row(r, rubrics, contrast.paired) + [r.verdict]
                for r in contrast.rows
                if r.arm.label == arm and r.scored
            ],
        )
        for arm in contrast.compared()
    ]
    return (
        page_environment()
        .get_template("contrast.html.j2")
        .render(
            css=asset("report.css"),
            contrast=contrast,
            header=header_lines(contrast),
            forest=forest_svg(contrast.rows, contrast.baseline),
            unscored=unscored_line(contrast),
            columns=_md_columns(contrast),
            tables=tables,
        )
    )


def write_contrast(contrast: Contrast, folder: Path) -> tuple[Path, Path]:
    """contrast.md and contrast.html, atomically, into the run folder (run B's for two runs)."""
    folder.mkdir(parents=True, exist_ok=True)
    md, page = folder / CONTRAST_MD, folder / CONTRAST_HTML
    write_atomic(md, render_contrast_markdown(contrast))
    write_atomic(page, render_contrast_html(contrast))
    return md, page
