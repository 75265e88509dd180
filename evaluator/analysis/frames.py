"""Judgments as pandas DataFrames, for notebooks and exports: one row per judgment, with the
transcript metadata alongside so any summary can be grouped by condition, model or site."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from evaluator.metadata import value_text
from evaluator.store import load_judgments, read_manifest, write_atomic

COLUMNS = (
    "key",
    "rubric_id",
    "rubric_version",
    "criterion_id",
    "transcript_id",
    "turn_index",
    "sample",
    "status",
    "score",
    "label",
    "weighted_score",
    "rationale",
    "evidence",
    "evidence_not_found",
    "judge",
    "model",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "latency_s",
    "attempts",
    "transport_retries",
    "from_cache",
    "unscored_reason",
    "error",
    "rubric_hash",
    "criterion_hash",
    "template_hash",
    "prompt_hash",
)


def load_results(run: Path | str) -> pd.DataFrame:
    """Every judgment of a run folder as a row (the latest one per key, as summaries count them)."""
    run_dir = Path(run)
    metadata = read_manifest(run_dir).transcript_metadata
    fields = sorted({key for meta in metadata.values() for key in meta})
    rows = []
    for j in load_judgments(run_dir):
        rows.append(
            {
                **{f"meta.{key}": metadata.get(j.transcript_id, {}).get(key) for key in fields},
                **j.model_dump(include=set(COLUMNS)),
                "evidence": " | ".join(e.quote for e in j.evidence),
                "evidence_not_found": sum(not e.found for e in j.evidence),
                "prompt_tokens": j.usage.prompt_tokens,
                "cached_tokens": j.usage.cached_tokens,
                "completion_tokens": j.usage.completion_tokens,
            }
        )
    frame = pd.DataFrame(rows, columns=[*COLUMNS, *(f"meta.{key}" for key in fields)])
    return frame.astype({"turn_index": "int64", "sample": "int64"}) if len(frame) else frame


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells that a spreadsheet would run as a formula (`=HYPERLINK(...)` in a rationale or a
    transcript) get a leading apostrophe, so opening an export never executes what a judge or a
    transcript wrote. Numbers stay numbers."""
    text_columns = frame.select_dtypes(exclude=["number", "bool"]).columns
    return frame.assign(
        **{
            column: frame[column].map(lambda v: f"'{v}" if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v)
            for column in text_columns
        }
    )


def cells_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """List and object cells (metadata such as tags: ["a", "b"]) as JSON, which any tool reads back, never
    as Python's repr; a metadata column whose values mix text and numbers becomes text throughout, as a
    Parquet column holds one type."""
    columns = {}
    for column in (c for c in frame.columns if frame[c].dtype == object):
        values = frame[column].map(lambda v: _json(v) if isinstance(v, (list, dict)) else v)
        kinds = {type(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))}
        if str in kinds and len(kinds) > 1:
            values = values.map(lambda v: v if v is None or isinstance(v, str) else value_text(v))
        columns[column] = values
    return frame.assign(**columns)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def export(run: Path | str, format: Literal["csv", "parquet"] = "csv") -> Path:
    """judgments.csv or judgments.parquet beside the judgments; written whole, then moved into place."""
    run_dir = Path(run)
    frame = cells_as_text(load_results(run_dir))
    target = run_dir / f"judgments.{format}"
    if format == "csv":
        write_atomic(target, neutralise_formulas(frame).to_csv(index=False))
    else:
        tmp = target.with_name(f".{target.name}.tmp")
        frame.to_parquet(tmp, index=False)
        tmp.replace(target)
    return target
