"""Judgments as a DataFrame and as CSV/Parquet files: the same rows the summaries count."""

from __future__ import annotations

import pandas as pd

from evaluator.analysis.frames import load_results
from evaluator.cli import main
from evaluator.store import load_judgments
from tests.test_runner import seed_run  # noqa: F401  (module-scoped run shared with the runner tests)


def test_one_row_per_judgment_with_metadata_columns(seed_run) -> None:  # noqa: F811
    run_dir, _ = seed_run
    frame = load_results(run_dir)
    judgments = load_judgments(run_dir)
    assert len(frame) == len(judgments)
    assert list(frame["key"]) == [j.key for j in judgments]
    ok = frame[frame["status"] == "ok"]
    assert ok["score"].notna().all() or ok["label"].notna().all()
    assert "meta.source_format" in frame.columns and set(frame["meta.source_format"]) == {"text"}
    assert frame.groupby("transcript_id")["key"].count().sum() == len(judgments)


def test_export_writes_csv_and_parquet_that_read_back(seed_run, capsys) -> None:  # noqa: F811
    run_dir, _ = seed_run
    assert main(["export", str(run_dir)]) == 0
    assert main(["export", str(run_dir), "--format", "parquet"]) == 0
    assert "judgments.parquet" in capsys.readouterr().out
    expected = load_results(run_dir)
    from_csv = pd.read_csv(run_dir / "judgments.csv")
    from_parquet = pd.read_parquet(run_dir / "judgments.parquet")
    assert len(from_csv) == len(from_parquet) == len(expected)
    assert list(from_parquet["key"]) == list(expected["key"])
    assert from_csv["score"].sum() == expected["score"].sum()


def test_csv_cells_a_spreadsheet_would_run_are_neutralised(judge_session) -> None:
    import csv

    run_dir = judge_session({"session_id": '=HYPERLINK("http://x")', "site": "@SUM(A1)", "arm": "+1"}, "-Of course.")
    assert main(["export", str(run_dir)]) == 0
    with (run_dir / "judgments.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row.values())
    assert {row["transcript_id"] for row in rows} == {'\'=HYPERLINK("http://x")'}
    assert {row["meta.site"] for row in rows} == {"'@SUM(A1)"}
    scored = [row for row in rows if row["score"]]
    assert scored and all(float(row["score"]) >= 0 for row in scored)
