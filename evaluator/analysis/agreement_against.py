"""Two runs' agreement with the same labels, criterion by criterion (`evaluator agree RUN LABELS --against
RUN_B`, e.g. before and after a rubric edit): the judge's kappa with the raters in each run on the
labelled items both runs scored, and the difference, from one session bootstrap so it is paired."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluator.analysis.agreement import AgreementReport, CriterionAgreement
from evaluator.analysis.agreement_stats import KappaInterval, Level, SessionBootstrap
from evaluator.analysis.stats import DEFAULT_RESAMPLES
from evaluator.labels import Code
from evaluator.models import Criterion


@dataclass
class Shift:
    """One criterion's agreement with the same labels in two runs (before and after a rubric edit), on the
    labelled items both runs scored; the difference (after - before) resamples the same sessions."""

    rubric_id: str
    criterion: Criterion
    items: int
    sessions: int
    before: KappaInterval
    after: KappaInterval
    difference: KappaInterval


@dataclass
class AgainstReport:
    before: AgreementReport
    after: AgreementReport
    shifts: list[Shift]
    notes: list[str]


def _union(a: list[Code], b: list[Code], level: Level) -> list[Code]:
    merged = list(dict.fromkeys([*a, *b]))
    return sorted(merged, key=int) if level == "ordinal" else merged


def shift(before: CriterionAgreement, after: CriterionAgreement, resamples: int, seed: int) -> Shift:
    """Judge-vs-human kappa (averaged over raters) of two runs on the labelled items both scored."""
    items = sorted(before.judged.keys() & after.judged.keys() & before.ratings.keys() & after.ratings.keys())
    level = after.level
    boot = SessionBootstrap(items, _union(before.domain, after.domain, level), level, resamples, seed)

    def draws(ca: CriterionAgreement) -> np.ndarray:
        raters = sorted({r for item in items for r in ca.ratings[item]})
        judge = {item: ca.judged[item].code for item in items}
        return boot.mean_kappa(
            [(judge, {i: ca.ratings[i][r].code for i in items if r in ca.ratings[i]}) for r in raters]
        )

    old, new = draws(before), draws(after)
    return Shift(
        after.rubric_id,
        after.criterion,
        len(items),
        len(boot.sessions),
        boot.interval(old),
        boot.interval(new),
        boot.interval(new - old),
    )


def against(
    before: AgreementReport, after: AgreementReport, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> AgainstReport:
    """Agreement with the same labels before and after a rubric edit (run A, run B), criterion by criterion."""
    later = {(ca.rubric_id, ca.criterion.id): ca for ca in after.criteria}
    shifts, notes = [], []
    for ca in before.criteria:
        other = later.pop((ca.rubric_id, ca.criterion.id), None)
        if other is None:
            notes.append(f"{ca.criterion.id}: labelled, but not judged in run {after.manifest.run_id}")
        elif other.level != ca.level or other.criterion.scale.type != ca.criterion.scale.type:
            notes.append(
                f"{ca.criterion.id}: the scale changed ({ca.criterion.scale.type} to {other.criterion.scale.type}), "
                "so the two kappas are not comparable"
            )
        else:
            shifts.append(shift(ca, other, resamples, seed))
    notes += [f"{cid}: labelled, but not judged in run {before.manifest.run_id}" for _, cid in later]
    return AgainstReport(before, after, shifts, notes)
