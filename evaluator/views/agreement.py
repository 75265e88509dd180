"""The agreement report shown: a terminal view and agreement.md, built from the same rows, so the two
always show the same figures formatted the same way (evaluator.views.format)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from evaluator.analysis.agreement import REASONS, AgreementReport, Comparison, Confusion, CriterionAgreement, agreement
from evaluator.labels import LabelsError, read_labels
from evaluator.results import open_run
from evaluator.store import write_atomic
from evaluator.views.format import fit, judge_label, md_table, number, percent, rich_table

__all__ = ["AGREEMENT_FILE", "LabelsError", "print_agreement", "render_agreement_markdown", "write_agreement"]

AGREEMENT_FILE = "agreement.md"
CONSENSUS_RULE = (
    "consensus of the raters: their mean rounded half up on ordinal scales (bias and rho use the unrounded "
    "mean), their majority on nominal scales (items where they tie are left out)"
)
LEGEND = (
    "kappa: Cohen's, quadratic-weighted on ordinal scales (likert, count), unweighted on nominal ones "
    "(binary, categorical); alpha: Krippendorff's at the scale's level; within-1: ordinal scales only; "
    "bias: mean of judge − human (> 0: the judge scores higher)"
)
STAT_COLUMNS = ("n", "exact", "within-1", "kappa", "alpha", "rho", "bias")
HUMAN_COLUMNS = ("h-h n", "h-h kappa", "h-h alpha")
UNMATCHED_COLUMNS = ("criterion", "labels", "matched", *REASONS, "judged, no label")
UNMATCHED_NOTE = (
    "labels, matched and the reasons count rating rows (one per rater and item); "
    "judged, no label counts items the judge scored that no rater rated"
)
MAIN_TITLE = "Judge against human ratings"
UNMATCHED_TITLE = "Labels not compared, and judged items without a label"
CONFUSION_CORNER = "human \\ judge"


def _comparison_cells(c: Comparison) -> list[str]:
    return [
        str(c.n),
        percent(c.exact),
        percent(c.within_one),
        number(c.kappa),
        number(c.alpha),
        number(c.rho),
        number(c.bias, signed=True),
    ]


def _columns_of(report: AgreementReport) -> tuple[str, ...]:
    return ("criterion", "scale", "vs", *STAT_COLUMNS, *(HUMAN_COLUMNS if report.several_raters else ()))


def _rows(report: AgreementReport) -> list[list[str]]:
    """One row per criterion (against the consensus or the only rater), then one per rater."""
    rows = []
    for ca in report.criteria:
        humans = ca.humans
        human_cells = [str(humans.n), number(humans.kappa), number(humans.alpha)] if humans else ["", "", ""]
        extra = human_cells if report.several_raters else []
        rows.append(
            [
                ca.criterion.id,
                f"{ca.criterion.scale.type} ({ca.level})",
                ca.comparison.against,
                *_comparison_cells(ca.comparison),
                *extra,
            ]
        )
        for c in ca.per_rater:
            rows.append(["", "", c.against, *_comparison_cells(c), *([""] * len(extra))])
    return rows


def _notes(report: AgreementReport) -> list[str]:
    notes = []
    for ca in report.criteria:
        for c in (ca.comparison, *ca.per_rater):
            notes += [f"{ca.criterion.id} vs {c.against}: {note}" for note in c.notes]
        if ca.humans:
            notes += [f"{ca.criterion.id} human-human: {note}" for note in ca.humans.notes]
    return notes


def _pair_lines(report: AgreementReport) -> list[str]:
    return [
        f"{ca.criterion.id} human-human kappa ({ca.kappa_kind}) by pair: "
        + ", ".join(f"{a}–{b} {number(k)}" for (a, b), k in ca.humans.pairs.items())
        for ca in report.criteria
        if ca.humans
    ]


def _header_lines(report: AgreementReport) -> list[str]:
    m = report.manifest
    lines = [
        (
            f"Run {m.run_id} (judge {judge_label(m)}) against {report.labels_path}: {report.labels} ratings "
            f"from {len(report.raters)} rater(s) ({', '.join(report.raters)})"
        ),
        LEGEND,
    ]
    if m.samples > 1:
        lines.append(f"judge verdicts folded over {m.samples} samples ({m.aggregate}); means rounded half up for kappa")
    if report.several_raters:
        lines.append(
            CONSENSUS_RULE + "; h-h: the raters against each other on the items the judge scored "
            "(kappa averaged over pairs, alpha across all raters)"
        )
    return lines


def _unmatched_rows(report: AgreementReport) -> list[list[str]]:
    return [
        [
            ca.criterion.id,
            str(ca.unmatched.labels),
            str(ca.unmatched.matched),
            *(str(ca.unmatched.reasons[r]) for r in REASONS),
            str(ca.unmatched.judged_unlabelled),
        ]
        for ca in report.criteria
    ]


def _confusion_header(confusion: Confusion) -> tuple[str, ...]:
    return (CONFUSION_CORNER, *(str(v) for v in confusion.values))


def _confusion_rows(confusion: Confusion) -> list[list[str]]:
    return [[str(value), *(str(n) for n in row)] for value, row in zip(confusion.values, confusion.counts)]


def _confusion_title(ca: CriterionAgreement) -> str:
    return f"{ca.criterion.id}: rows human ({ca.confusion.against}), columns judge"


def print_agreement(report: AgreementReport, console: Console) -> None:
    """The terminal view: the agreement table, its notes, the confusion matrices, then what did not match."""
    for line in _header_lines(report):
        console.print(escape(line), highlight=False)
    console.print(fit(rich_table(_columns_of(report), _rows(report), text_columns=3, title=MAIN_TITLE)))
    for line in _pair_lines(report) + _notes(report):
        console.print(escape(line), highlight=False)
    for ca in report.criteria:
        console.print(escape(_confusion_title(ca)), highlight=False)
        console.print(fit(rich_table(_confusion_header(ca.confusion), _confusion_rows(ca.confusion))))
    console.print(fit(rich_table(UNMATCHED_COLUMNS, _unmatched_rows(report), title=UNMATCHED_TITLE)))
    console.print(escape(UNMATCHED_NOTE), highlight=False)


def render_agreement_markdown(report: AgreementReport) -> str:
    """agreement.md: the terminal's figures, for a lab notebook or a pull request."""
    out = [f"# Agreement of run {report.manifest.run_id} with human ratings", ""]
    out += [f"- {line}" for line in _header_lines(report)]
    out += ["", f"## {MAIN_TITLE}", ""]
    out += md_table(_columns_of(report), _rows(report))
    extra = _pair_lines(report) + _notes(report)
    if extra:
        out += [""] + [f"- {line}" for line in extra]
    out += ["", "## Confusion matrices", ""]
    for ca in report.criteria:
        out += [f"### {_confusion_title(ca)}", ""]
        out += md_table(_confusion_header(ca.confusion), _confusion_rows(ca.confusion))
        out.append("")
    out += [f"## {UNMATCHED_TITLE}", "", UNMATCHED_NOTE + ".", ""]
    out += md_table(UNMATCHED_COLUMNS, _unmatched_rows(report))
    return "\n".join(out) + "\n"


def write_agreement(run_dir: Path, labels_path: Path) -> tuple[AgreementReport, Path]:
    """`evaluator agree`: read the run once and the labels, compare, and write agreement.md into the run."""
    report = agreement(open_run(run_dir), read_labels(labels_path), labels_path)
    path = run_dir / AGREEMENT_FILE
    write_atomic(path, render_agreement_markdown(report))
    return report, path
