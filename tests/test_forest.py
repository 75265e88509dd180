"""The forest plot of a contrast (hand-written SVG) and report.html with `--by`: group sections, the plot,
group columns and the group filter, checked as markup and in a real headless Chromium (skipped without
Debian's chromium, failing under CI: the browser fixture of tests/conftest.py)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from evaluator.analysis.contrast import contrast_groups
from evaluator.models import RunManifest
from evaluator.store import MANIFEST
from evaluator.views.forest import PLOT_LEFT, PLOT_RIGHT, forest_svg
from evaluator.views.html import HTML_FILE, write_html_report
from tests.arms import ARMS, QUESTIONS, VALIDATES, judged_corpus
from tests.runs import LIKERT, judgment, make_rubric, write_run

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert("x")</script> & co'


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return judged_corpus(tmp_path_factory.mktemp("arms"))


def _rows(svg: str) -> dict[str, ET.Element]:
    """Each plotted row by its criterion, from the SVG parsed as XML (so it must be well-formed)."""
    root = ET.fromstring(svg)
    return {g.get("data-criterion", ""): g for g in root.iter(f"{SVG}g") if g.get("class") == "forest-row"}


def _x(row: ET.Element) -> tuple[float, float, float]:
    """(low, point, high) x positions of a row's whisker and dot."""
    line, dot = row.find(f"{SVG}line"), row.find(f"{SVG}circle")
    assert line is not None and dot is not None
    return float(line.get("x1", 0)), float(dot.get("cx", 0)), float(line.get("x2", 0))


def test_each_criterion_is_a_row_on_the_side_of_zero_its_interval_says(corpus: Path) -> None:
    contrast = contrast_groups(corpus, "model")
    rows = _rows(forest_svg(contrast.rows, contrast.baseline))
    assert set(rows) == {f"arms:{QUESTIONS}", f"arms:{VALIDATES}"}
    zero = (PLOT_LEFT + PLOT_RIGHT) / 2
    low, point, high = _x(rows[f"arms:{QUESTIONS}"])
    assert zero < low < point < high  # model-b asks more questions: the whole interval right of zero
    low, point, high = _x(rows[f"arms:{VALIDATES}"])
    assert low < zero < high
    assert rows[f"arms:{QUESTIONS}"].get("data-verdict") == "worse"
    figure = "".join(rows[f"arms:{QUESTIONS}"].itertext())
    d = next(r for r in contrast.rows if r.criterion.id == QUESTIONS).difference
    assert d is not None and f"{d.value:+.2f} [{d.low:+.2f}, {d.high:+.2f}]" in figure


def test_user_text_in_the_plot_is_escaped(tmp_path: Path) -> None:
    criterion = {**LIKERT, "name": f"Honours {HOSTILE}"}
    judgments = [judgment(f"s{n}", t, 2 + n % 2 + (n >= 4)) for n in range(8) for t in (1, 3)]
    run_dir = write_run(tmp_path, "r", make_rubric(criterion), judgments)
    manifest = RunManifest.model_validate_json((run_dir / MANIFEST).read_text(encoding="utf-8"))
    manifest.transcript_metadata = {f"s{n}": {"arm": "plain" if n < 4 else HOSTILE} for n in range(8)}
    (run_dir / MANIFEST).write_text(manifest.model_dump_json(), encoding="utf-8")
    contrast = contrast_groups(run_dir, "arm", baseline="plain")
    svg = str(forest_svg(contrast.rows, contrast.baseline))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    row = next(iter(_rows(svg).values()))
    assert row.get("data-arm") == HOSTILE and HOSTILE in (row.findtext(f"{SVG}title") or "")


def test_report_by_field_has_groups_forest_columns_and_filter(corpus: Path) -> None:
    page = write_html_report(corpus, by=["model"]).read_text(encoding="utf-8")
    assert page.count('class="forest"') == 1 and 'id="filter-group"' in page
    assert page.count('<th class="group-col">model</th>') == 1
    assert all(f'data-group="{arm}"' in page for arm in ARMS)
    plain = write_html_report(corpus).read_text(encoding="utf-8")
    assert 'id="groups"' not in plain and 'id="filter-group"' not in plain


def test_report_by_field_in_a_browser(browser, corpus: Path) -> None:  # type: ignore[no-untyped-def]
    write_html_report(corpus, by=["model"])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto((corpus / HTML_FILE).resolve().as_uri())

    plot = page.locator("#groups svg.forest")
    box = plot.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 60
    assert page.locator("#groups svg.forest g.forest-row").count() == 2
    dot = page.locator(f'#groups g.forest-row[data-criterion="arms:{QUESTIONS}"] circle').bounding_box()
    assert dot is not None and dot["x"] > box["x"] + box["width"] * (PLOT_LEFT + PLOT_RIGHT) / 2 / 760
    assert page.locator("table.by-group th[data-group]").all_inner_texts() == ["model-a (20)", "model-b (20)"]

    sessions = page.locator(".session")
    page.select_option("#filter-group", "model-b")
    shown = page.eval_on_selector_all(
        ".session", "els => els.filter(e => e.checkVisibility()).map(e => e.dataset.group)"
    )
    assert shown == ["model-b"] * 20 and sessions.count() == 40
    judged_b = page.locator('.session[data-group="model-b"] .judgment').count()
    assert page.locator("#filter-count").inner_text().startswith(f"{judged_b} of ")
    page.click("#filter-reset")
    assert len(page.eval_on_selector_all(".session", "els => els.filter(e => e.checkVisibility())")) == 40

    who = set(page.locator(".session .turn .who").all_text_contents())
    assert who == {"Patient", "Therapist"}  # the JSONL says user/assistant
    assert problems == []
