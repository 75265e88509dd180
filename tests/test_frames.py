"""Judgments as a DataFrame and as CSV/Parquet files: the same rows the summaries count."""

from __future__ import annotations

import io

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


def test_metadata_is_one_column_per_field_and_lists_are_json_never_repr(judge_session) -> None:
    import csv
    import json

    run_dir = judge_session({"session_id": "s1", "arm": {"model": "m", "config": {"t": 0.5}}, "tags": ["a", "b"]})
    assert main(["export", str(run_dir)]) == 0
    assert main(["export", str(run_dir), "--format", "parquet"]) == 0
    with (run_dir / "judgments.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    parquet = pd.read_parquet(run_dir / "judgments.parquet")
    for row in [*rows, *parquet.to_dict("records")]:
        assert row["meta.arm.model"] == "m" and float(row["meta.arm.config.t"]) == 0.5
        assert json.loads(row["meta.tags"]) == ["a", "b"] and row["meta.tags"] == '["a", "b"]'
    assert "meta.arm" not in parquet.columns and "['a', 'b']" not in (run_dir / "judgments.csv").read_text()


def test_nested_metadata_of_an_older_run_is_flattened_on_export(judge_session) -> None:
    import json

    run_dir = judge_session({"session_id": "s1"})
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["transcript_metadata"]["s1"] = {"arm": {"model": "m"}, "mixed": 1}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    frame = load_results(run_dir)
    assert set(frame["meta.arm.model"]) == {"m"} and "meta.arm" not in frame.columns


def test_a_metadata_column_mixing_text_and_numbers_exports_as_text() -> None:
    """A Parquet column holds one type: "7" from a sidecar beside 3 from a record would not write."""
    from evaluator.analysis.frames import cells_as_text

    frame = pd.DataFrame({"meta.seed": ["7", 3, None], "meta.n": [1, 2, 3], "meta.tags": [["x"], {"k": 1}, None]})
    text = cells_as_text(frame)
    assert list(text["meta.seed"][:2]) == ["7", "3"] and text["meta.seed"].isna()[2]
    assert list(text["meta.n"]) == [1, 2, 3]
    assert list(text["meta.tags"][:2]) == ['["x"]', '{"k": 1}'] and text["meta.tags"].isna()[2]
    text.to_parquet(io.BytesIO())
