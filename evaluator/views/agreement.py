"""The agreement report shown: a terminal view and agreement.md, built from the same rows, so the two
always show the same figures formatted the same way (evaluator.views.format)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from evaluator.analysis.agreement import (
    MIN_ITEMS,
    REASONS,
    AgreementReport,
    Confusion,
    CriterionAgreement,
    UnmatchedLabel,
    agreement,
)
from evaluator.analysis.agreement_against import AgainstReport, against
from evaluator.analysis.agreement_stats import MIN_SESSIONS, Comparison, KappaInterval
from evaluator.labels import LabelsError, read_labels
from evaluator.results import open_run
from evaluator.store import write_atomic
from evaluator.views.format import fit, interval, judge_label, md_escape, md_table, number, percent, rich_table

__all__ = [
    "AGREEMENT_FILE",
    "LabelsError",
    "print_against",
    "print_agreement",
    "render_against_markdown",
    "render_agreement_markdown",
    "write_against",
    "write_agreement",
]

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
VERDICT_TITLE = "Is the judge within human disagreement?"
VERDICT_COLUMNS = ("criterion", "items", "sessions", "judge-human kappa", "human-human kappa", "difference", "verdict")
VERDICT_RULE = (
    "verdict: on the items two or more raters rated and the judge scored, the judge's kappa with each rater "
    "(averaged) beside the raters' kappa with each other (averaged over pairs), each with a 95% interval from "
    f"resampling whole sessions (given {MIN_SESSIONS} or more); below human agreement when the interval of the difference (judge - human) lies "
    "wholly below 0, within human disagreement when it reaches 0; not enough items/raters to say with one "
    f"rater, fewer than {MIN_ITEMS} such items or {MIN_SESSIONS} sessions, or kappas undefined"
)
UNMATCHED_SHOWN = 5
UNMATCHED_ROW_COLUMNS = ("line", "transcript", "turn", "criterion", "rater", "reason")
UNMATCHED_ROWS_TITLE = "Label rows compared with nothing"
AGAINST_COLUMNS = ("criterion", "items", "sessions", "before", "after", "after - before")
AGAINST_FILE = "agreement-vs-{run_id}.md"
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


def _kappa(k: KappaInterval, signed: bool = False) -> str:
    return interval(k.value, k.low, k.high, signed=signed)


def _verdict_rows(report: AgreementReport) -> list[list[str]]:
    return [
        [
            ca.criterion.id,
            str(ca.ceiling.items),
            str(ca.ceiling.sessions),
            _kappa(ca.ceiling.judge),
            _kappa(ca.ceiling.humans),
            _kappa(ca.ceiling.difference, signed=True),
            ca.ceiling.verdict,
        ]
        for ca in report.criteria
    ]


def _verdict_notes(report: AgreementReport) -> list[str]:
    return [f"{ca.criterion.id}: {ca.ceiling.reason}" for ca in report.criteria if ca.ceiling.reason]


def _unmatched_label_rows(rows: list[UnmatchedLabel]) -> list[list[str]]:
    return [[str(r.line), r.transcript_id, str(r.turn_index), r.criterion_id, r.rater, r.reason] for r in rows]


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
    """The terminal view: the verdicts, the agreement table and its notes, the confusion matrices, then what
    did not match (the first few label rows; agreement.md lists them all)."""
    for line in _header_lines(report):
        console.print(escape(line), highlight=False)
    console.print(fit(rich_table(VERDICT_COLUMNS, _verdict_rows(report), title=VERDICT_TITLE)))
    for line in [VERDICT_RULE, *_verdict_notes(report)]:
        console.print(escape(line), highlight=False)
    console.print(fit(rich_table(_columns_of(report), _rows(report), text_columns=3, title=MAIN_TITLE)))
    for line in _pair_lines(report) + _notes(report):
        console.print(escape(line), highlight=False)
    for ca in report.criteria:
        console.print(escape(_confusion_title(ca)), highlight=False)
        console.print(fit(rich_table(_confusion_header(ca.confusion), _confusion_rows(ca.confusion))))
    console.print(fit(rich_table(UNMATCHED_COLUMNS, _unmatched_rows(report), title=UNMATCHED_TITLE)))
    console.print(escape(UNMATCHED_NOTE), highlight=False)
    rows = report.unmatched
    if rows:
        shown = rows[:UNMATCHED_SHOWN]
        title = f"{UNMATCHED_ROWS_TITLE}: {len(rows)}" + (
            f", the first {len(shown)} (all in {AGREEMENT_FILE})" if len(shown) < len(rows) else ""
        )
        console.print(fit(rich_table(UNMATCHED_ROW_COLUMNS, _unmatched_label_rows(shown), title=title)))


def render_agreement_markdown(report: AgreementReport) -> str:
    """agreement.md: the terminal's figures, for a lab notebook or a pull request, with every unmatched row."""
    out = [f"# Agreement of run {md_escape(report.manifest.run_id)} with human ratings", ""]
    out += [f"- {md_escape(line)}" for line in _header_lines(report)]
    out += ["", f"## {VERDICT_TITLE}", ""]
    out += md_table(VERDICT_COLUMNS, _verdict_rows(report))
    out += [""] + [f"- {md_escape(line)}" for line in [VERDICT_RULE, *_verdict_notes(report)]]
    out += ["", f"## {MAIN_TITLE}", ""]
    out += md_table(_columns_of(report), _rows(report))
    extra = _pair_lines(report) + _notes(report)
    if extra:
        out += [""] + [f"- {md_escape(line)}" for line in extra]
    out += ["", "## Confusion matrices", ""]
    for ca in report.criteria:
        out += [f"### {md_escape(_confusion_title(ca))}", ""]
        out += md_table(_confusion_header(ca.confusion), _confusion_rows(ca.confusion))
        out.append("")
    out += [f"## {UNMATCHED_TITLE}", "", UNMATCHED_NOTE + ".", ""]
    out += md_table(UNMATCHED_COLUMNS, _unmatched_rows(report))
    rows = report.unmatched
    out += ["", f"## {UNMATCHED_ROWS_TITLE} ({len(rows)})", ""]
    out += (
        md_table(UNMATCHED_ROW_COLUMNS, _unmatched_label_rows(rows))
        if rows
        else ["None: every label row met a verdict."]
    )
    return "\n".join(out) + "\n"


def write_agreement(run_dir: Path, labels_path: Path) -> tuple[AgreementReport, Path]:
    """`evaluator agree`: read the run once and the labels, compare, and write agreement.md into the run."""
    report = agreement(open_run(run_dir), read_labels(labels_path), labels_path)
    path = run_dir / AGREEMENT_FILE
    write_atomic(path, render_agreement_markdown(report))
    return report, path


# --- two runs against the same labels ------------------------------------------------------------------


def _against_header(report: AgainstReport) -> list[str]:
    before, after = report.before.manifest, report.after.manifest
    return [
        f"Before: run {before.run_id} (judge {judge_label(before)}); after: run {after.run_id} "
        f"(judge {judge_label(after)}); both against {report.before.labels_path}",
        "judge-human kappa (averaged over raters; quadratic-weighted on ordinal scales) on the labelled items "
        "both runs scored; 95% intervals resample whole sessions, the same resamples for both runs, so the "
        "difference is paired",
    ]


def _against_rows(report: AgainstReport) -> list[list[str]]:
    return [
        [
            s.criterion.id,
            str(s.items),
            str(s.sessions),
            _kappa(s.before),
            _kappa(s.after),
            _kappa(s.difference, signed=True),
        ]
        for s in report.shifts
    ]


def print_against(report: AgainstReport, console: Console) -> None:
    """`agree RUN LABELS --against RUN_B`: each criterion's agreement before and after, and the difference."""
    for line in _against_header(report):
        console.print(escape(line), highlight=False)
    console.print(fit(rich_table(AGAINST_COLUMNS, _against_rows(report), title="Agreement before and after")))
    for line in report.notes:
        console.print(escape(line), highlight=False)


def render_against_markdown(report: AgainstReport) -> str:
    before, after = (md_escape(r.manifest.run_id) for r in (report.before, report.after))
    out = [f"# Agreement with human ratings: run {before} (before) and run {after} (after)", ""]
    out += [f"- {md_escape(line)}" for line in _against_header(report)]
    out += [""] + md_table(AGAINST_COLUMNS, _against_rows(report))
    if report.notes:
        out += [""] + [f"- {md_escape(line)}" for line in report.notes]
    return "\n".join(out) + "\n"


def write_against(run_dir: Path, labels_path: Path, after_dir: Path) -> tuple[AgainstReport, Path]:
    """Both runs against the same labels; the side-by-side is written into the later run, as compare.md is."""
    labels = read_labels(labels_path)
    before, after = (agreement(open_run(d), labels, labels_path) for d in (run_dir, after_dir))
    report = against(before, after)
    path = after_dir / AGAINST_FILE.format(run_id=before.manifest.run_id)
    write_atomic(path, render_against_markdown(report))
    return report, path
