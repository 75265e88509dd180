"""Reading a labels CSV written by hand or saved by a spreadsheet: every layout a spreadsheet writes is
read, and every row the reader would have to guess at is refused with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluator.labels import LabelsError, read_labels

ROWS = ["transcript,turn,criterion,score,rater", "s1,3,asked,1,ann", 's1,5,asked,"0",bob']


def _write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "labels.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def _read(path: Path) -> list[tuple[str, int, str, str, str, int]]:
    return [(x.transcript_id, x.turn_index, x.criterion_id, x.score, x.rater, x.line) for x in read_labels(path)]


EXPECTED = [("s1", 3, "asked", "1", "ann", 2), ("s1", 5, "asked", "0", "bob", 3)]


@pytest.mark.parametrize(
    "content",
    [
        "\r".join(ROWS) + "\r",  # old Mac line ends: "new-line character seen in unquoted field", line 0
        "\r\n".join(ROWS).replace(",", ";").encode("utf-8-sig"),  # Excel in a comma-decimal locale
        "\n".join(ROWS).replace(",", "\t").encode("utf-16"),  # Excel's "Unicode text"
    ],
    ids=["cr", "semicolon-bom", "utf16-tab"],
)
def test_labels_saved_by_spreadsheets_are_read(tmp_path: Path, content: str | bytes) -> None:
    assert _read(_write(tmp_path, content)) == EXPECTED


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [*ROWS, "s1,7,asked,1,ann,extra"],
            "line 4: the row has 6 fields but the header has 5; check its quoting and commas",
        ),
        (
            ["transcript,turn,criterion,score,Score", "s1,3,asked,1,0"],
            "line 1: the header names score more than once; keep one column",
        ),
        (
            [ROWS[0], 's1,3,asked,"1,ann', "s1,5,asked,0,bob"],
            'line 2: malformed CSV: unexpected end of data; a quote (") opened on this row is probably never closed',
        ),
        (
            [ROWS[0], "s1," + "9" * 5000 + ",asked,1,ann"],
            "line 2: turn '" + "9" * 40 + "...' is not a turn index",
        ),
    ],
    ids=["extra-field", "score-twice", "open-quote", "long-cell"],
)
def test_a_row_that_would_be_guessed_at_is_refused_with_its_line(tmp_path: Path, rows: list[str], message: str) -> None:
    """An extra field was dropped, a second score column silently won, and an open quote swallowed the
    rows after it into one score."""
    path = _write(tmp_path, "\n".join(rows) + "\n")
    with pytest.raises(LabelsError) as caught:
        read_labels(path)
    assert str(caught.value).startswith(f"{path}, {message}")
