"""The per-transcript index of a large report.html: one compact JSON array of rows, which the page's
script (index.js) pages, searches and sorts, so a run of thousands of sessions adds kilobytes of data
to report.html, not a table of thousands of rows to lay out.

A row: [id, link to its page, metadata as text, group values, item counts by status, one cell per
criterion]; a cell: [mean or null, tone initial, note], the same figures as a single-file report's
per-transcript table.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from markupsafe import Markup

from evaluator.analysis.summary import Cell, RunSummary
from evaluator.models import STATUSES
from evaluator.views import format as fmt
from evaluator.views.groups import GroupsView

PAGE_ROWS = 100
STATUS_LABELS = {"ok": "ok", "not_applicable": "n/a", "unscored": "unscored", "error": "error"}


def cell_note(cell: Cell) -> str:
    """Under a transcript's mean: how many turns it averages (and the share meeting pass_at), or why none."""
    ok = cell.counts.get("ok", 0)
    if ok:
        return f"n={ok}" + (f" · {fmt.percent(cell.pass_share)}" if cell.pass_share is not None else "")
    return ", ".join(f"{n} {STATUS_LABELS[s]}" for s, n in cell.counts.items() if n) or "no items"


@dataclass
class TranscriptIndex:
    data: Markup
    """The rows as JSON, safe inside <script type="application/json">."""
    columns: dict[str, list[str]]
    """Per rubric id, the column code (`c<i>`) of each of its criteria, in rubric order."""
    total: int


def transcript_index(
    summary: RunSummary, ids: list[str], links: dict[str, str], grouping: GroupsView | None
) -> TranscriptIndex:
    criteria = [(rs, c) for rs in summary.rubrics for c in rs.rubric.criteria]
    columns: dict[str, list[str]] = {}
    for number, (rs, _) in enumerate(criteria):
        columns.setdefault(rs.rubric.id, []).append(f"c{number}")
    metadata = summary.manifest.transcript_metadata
    rows = []
    for tid in ids:
        counts: Counter[str] = Counter()
        cells = []
        for rs, criterion in criteria:
            cell = rs.by_transcript.get(tid, {}).get(criterion.id) or Cell(criterion)
            counts.update(cell.counts)
            mean = None if cell.mean is None else round(cell.mean, 4)
            cells.append([mean, rs.mean_tone(cell)[0], cell_note(cell)])
        meta = ", ".join(f"{k}: {v}" for k, v in metadata.get(tid, {}).items())
        groups = list(grouping.row_values(tid)) if grouping else []
        rows.append([tid, links.get(tid, ""), meta, groups, [counts.get(s, 0) for s in STATUSES], cells])
    data = json.dumps({"page": PAGE_ROWS, "statuses": [STATUS_LABELS[s] for s in STATUSES], "rows": rows})
    return TranscriptIndex(Markup(_script_safe(data)), columns, len(rows))


def _script_safe(data: str) -> str:
    """JSON that no transcript id or metadata can end the <script> element holding it early."""
    return data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
