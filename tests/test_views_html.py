"""report.html from a real offline run: checked as text, then driven in a real headless Chromium.

The browser tests need Debian's chromium (never a downloaded browser). Without it they skip locally
and fail in CI, where it is installed. `EVALUATOR_WRITE_DOCS_SCREENSHOT=1` also rewrites
docs/report.png from the bundled seeds, which normal runs leave alone.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from scipy.stats import binom

from evaluator.analysis.stats import cluster_bootstrap_mean
from evaluator.analysis.summary import summarize
from evaluator.config import JudgeSettings, RunConfig
from evaluator.models import Evidence, Judgment
from evaluator.runner import run
from evaluator.store import JUDGMENTS, MANIFEST, TRANSCRIPTS, load_judgments
from evaluator.views.html import HTML_FILE, render_html, write_html_report
from evaluator.views.pages import PAGES_DIR, SINGLE_FILE_SESSIONS
from evaluator.views.transcript_index import PAGE_ROWS
from tests.conftest import IGNORING_SEED, REPO, SLOWING_SEED
from tests.runs import LIKERT, QUESTIONS, judgment, make_rubric, sampled, write_run

DOCS_SCREENSHOT = REPO / "docs" / "report.png"
HOSTILE_ID = "hostile"
HOSTILE = """Patient: Too fast <script>alert(1)</script> and {{ x }} and "quotes" & 'apostrophes'. Can we slow down?

Therapist: You said <b>too fast</b>. Let's slow down and take a pause. What do you notice right now?

Patient: Thank you. That helps a bit.

Therapist: I'm glad. We can stay here as long as you need, there is no rush.
"""
HEADLINE = "pacing:slow_down_responsiveness"


def _judge_run(transcripts: list[Path], output: Path, rubrics: Path = REPO / "rubrics") -> Path:
    config = RunConfig(
        transcripts=transcripts,
        rubrics=[rubrics],
        output=output,
        judge=JudgeSettings(kind="rules"),
        show_progress=False,
    )
    return run(config).run_dir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both seeds and a transcript full of markup, judged by the real pipeline with the rules judge."""
    folder = tmp_path_factory.mktemp("html-report")
    hostile = folder / f"{HOSTILE_ID}.txt"
    hostile.write_text(HOSTILE, encoding="utf-8")
    return _judge_run([IGNORING_SEED, SLOWING_SEED, hostile], folder / "results")


@pytest.fixture(scope="module")
def page_html(run_dir: Path) -> str:
    return write_html_report(run_dir).read_text(encoding="utf-8")


@pytest.fixture
def variant(run_dir: Path, tmp_path: Path) -> Callable[..., str]:
    """Render a copy of the run with its manifest or judgments edited, leaving the shared run intact."""

    def _render(
        manifest: Callable[[dict], None] | None = None,
        judgments: Callable[[list[Judgment]], None] | None = None,
        snapshot: bool = True,
    ) -> str:
        copy = tmp_path / "run"
        shutil.copytree(run_dir, copy)
        if not snapshot:  # as written before runs kept their transcripts
            (copy / TRANSCRIPTS).unlink()
        if manifest is not None:
            data = json.loads((copy / MANIFEST).read_text())
            manifest(data)
            (copy / MANIFEST).write_text(json.dumps(data))
        if judgments is not None:
            loaded = load_judgments(copy)
            judgments(loaded)
            (copy / JUDGMENTS).write_text("".join(j.model_dump_json() + "\n" for j in loaded))
        return render_html(copy)

    return _render


def _cards(text: str) -> dict[str, str]:
    """Each criterion card's HTML by its rubric:criterion key."""
    parts = text.split('<article class="card" data-card="')[1:]
    return {part.split('"', 1)[0]: part.split("</article>", 1)[0] for part in parts}


# --- the page as text ----------------------------------------------------------------------------


def test_the_page_is_self_contained(page_html: str) -> None:
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page_html, re.IGNORECASE)
    assert not re.search(r"<link\b|@import|url\(\s*['\"]?(?:https?:)?//", page_html, re.IGNORECASE)
    assert page_html.count("<style>") == 1 and page_html.count("<script>") == 1


def test_every_criterion_with_scores_has_its_chart(run_dir: Path, page_html: str) -> None:
    cards = _cards(page_html)
    summary = summarize(run_dir)
    scored = {
        f"{rs.rubric.id}:{cid}" for rs in summary.rubrics for cid, cell in rs.overall.items() if cell.counts["ok"]
    }
    assert set(cards) == {f"{rs.rubric.id}:{c.id}" for rs in summary.rubrics for c in rs.rubric.criteria}
    assert scored and {key for key, card in cards.items() if "<svg" in card} == scored
    unscored = cards["mi_relational:empathy"]
    assert "<svg" not in unscored and "No scored items" in unscored and "no LLM judge configured" in unscored


def test_counts_means_and_intervals_match_the_summary(run_dir: Path, page_html: str) -> None:
    summary = summarize(run_dir)
    for status, n in summary.counts.items():
        assert f'data-count-status="{status}"><b>{n}</b>' in page_html
    cards = _cards(page_html)
    for rs in summary.rubrics:
        for cid, cell in rs.overall.items():
            card = cards[f"{rs.rubric.id}:{cid}"]
            for status in ("ok", "not_applicable", "unscored", "error"):
                assert f'data-count="{status}"><b>{cell.counts.get(status, 0)}</b>' in card, (cid, status)
    pacing = next(rs for rs in summary.rubrics if rs.rubric.id == "pacing")
    by_session = {t: cells["slow_down_responsiveness"].scores for t, cells in pacing.by_transcript.items()}
    estimate = cluster_bootstrap_mean(by_session)
    headline = cards[HEADLINE]
    assert f"<b>{estimate.value:.2f}</b>" in headline and f"[{estimate.low:.2f}, {estimate.high:.2f}]" in headline
    assert f"{pacing.overall['slow_down_responsiveness'].pass_share:.0%}" in headline
    assert page_html.count('<div class="judgment ') == len(load_judgments(run_dir))


def test_per_transcript_table_has_a_row_per_transcript(run_dir: Path, page_html: str) -> None:
    table = page_html.split('<table class="by-transcript" data-rubric="pacing">', 1)[1].split("</table>", 1)[0]
    for transcript_id in (IGNORING_SEED.stem, SLOWING_SEED.stem, HOSTILE_ID):
        assert f">{transcript_id}</a></th>" in table
    pacing = next(rs for rs in summarize(run_dir).rubrics if rs.rubric.id == "pacing")
    cell = pacing.by_transcript[IGNORING_SEED.stem]["slow_down_responsiveness"]
    assert f"{cell.mean:.2f}" in table and f"n={cell.counts['ok']} · {cell.pass_share:.0%}" in table


def test_transcript_text_is_escaped(page_html: str) -> None:
    assert "<script>alert(1)</script>" not in page_html and "<b>too fast</b>" not in page_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page_html
    assert "{{ x }}" in page_html and "&quot;quotes&quot; &amp; &#x27;apostrophes&#x27;" in page_html


def test_evidence_is_highlighted_after_escaping_and_unfound_quotes_are_flagged(variant: Callable[..., str]) -> None:
    found, invented = "You said <b>too fast</b>.", 'I never said "<img src=x onerror=alert(1)>"'

    def add_evidence(judgments: list[Judgment]) -> None:
        target = next(j for j in judgments if j.transcript_id == HOSTILE_ID and j.turn_index == 1 and j.status == "ok")
        target.evidence = [Evidence(quote=found, found=True), Evidence(quote=invented, found=False)]

    text = variant(judgments=add_evidence)
    mark = r'<mark class="evidence" data-judgments="[^"]+">' + re.escape(html.escape(found)) + "</mark>"
    assert re.search(mark, text)
    assert "<img src=x" not in text and "<b>too fast</b>" not in text
    flagged = re.search(r'<li class="quote not-found" title="quote not found in transcript">([^<]*)<', text)
    assert flagged and html.unescape(flagged.group(1)).startswith(f"⚠ “{invented}”")


def _move_hostile(manifest: dict) -> None:
    manifest["transcript_files"] = [
        f if not f.endswith(f"{HOSTILE_ID}.txt") else "/nonexistent/hostile.txt" for f in manifest["transcript_files"]
    ]


def test_the_conversation_comes_from_the_run_snapshot_not_the_files(variant: Callable[..., str]) -> None:
    text = variant(manifest=_move_hostile)
    section = text.split(f'data-transcript="{HOSTILE_ID}"', 1)[1].split("</section>", 1)[0]
    assert "could not be read" not in section and "(turn text unavailable)" not in section
    assert "&lt;script&gt;" in section and "<script>alert" not in section


def test_an_old_run_without_snapshot_and_a_missing_file_shows_the_judgments_without_the_conversation(
    run_dir: Path, variant: Callable[..., str]
) -> None:
    text = variant(manifest=_move_hostile, snapshot=False)
    section = text.split(f'data-transcript="{HOSTILE_ID}"', 1)[1].split("</section>", 1)[0]
    assert "could not be read" in section and "/nonexistent/hostile.txt: file not found" in section
    assert "shown without the conversation" in section and "(turn text unavailable)" in section
    hostile = [j for j in load_judgments(run_dir) if j.transcript_id == HOSTILE_ID]
    assert section.count('<div class="judgment ') == len(hostile) > 0
    assert "alert(1)" not in section


def test_an_incomplete_run_and_skipped_files_are_announced(variant: Callable[..., str]) -> None:
    def interrupt(manifest: dict) -> None:
        manifest.update(
            complete=False,
            stopped="budget of $0.01 reached",
            skipped_files=[{"path": "in/<bad>.txt", "error": "in/<bad>.txt, line 3: unknown speaker"}],
        )

    text = variant(manifest=interrupt)
    assert 'id="incomplete-notice"' in text and "budget of $0.01 reached" in text and "--resume" in text
    assert 'id="skipped-notice"' in text and "in/&lt;bad&gt;.txt" in text


def test_an_outlandish_count_in_a_run_does_not_blow_up_the_chart(variant: Callable[..., str]) -> None:
    """Runs written before counts were bounded may hold any count; the chart shows observed levels."""

    def outlandish(judgments: list[Judgment]) -> None:
        index = next(i for i, j in enumerate(judgments) if j.criterion_id == "questions_asked" and j.status == "ok")
        judgments[index] = judgments[index].model_copy(update={"score": 10.0**15})

    card = _cards(variant(judgments=outlandish))["pacing:questions_asked"]
    assert "<svg" in card and "1000000000000000" in card


SVG = "{http://www.w3.org/2000/svg}"


def _chart(card: str) -> ET.Element:
    """A card's chart parsed as XML: it must be well-formed to be parsed at all."""
    return ET.fromstring(re.search(r"<svg.*?</svg>", card, re.DOTALL).group(0))  # type: ignore[union-attr]


def _bars(chart: ET.Element) -> dict[str, tuple[float | None, str | None]]:
    """Each bar's title (`value: n items`) -> its centre x (None for an empty level) and its count label."""
    shown = {}
    for group in chart.iter(f"{SVG}g"):
        rect, count = group.find(f"{SVG}rect"), group.find(f"{SVG}text[@class='bar-count']")
        centre = float(rect.get("x", 0)) + float(rect.get("width", 0)) / 2 if rect is not None else None
        shown[group.findtext(f"{SVG}title", "")] = (centre, None if count is None else count.text)
    return shown


def _level_x(chart: ET.Element, level: str) -> float:
    return next(
        float(t.get("x", 0)) for t in chart.iter(f"{SVG}text") if t.get("class") == "bar-level" and t.text == level
    )


def test_each_chart_shows_every_verdict_count_and_names_itself(run_dir: Path, page_html: str) -> None:
    cards = _cards(page_html)
    for rs in summarize(run_dir).rubrics:
        for criterion in rs.rubric.criteria:
            cell = rs.overall[criterion.id]
            if not cell.counts["ok"]:
                continue
            chart = _chart(cards[f"{rs.rubric.id}:{criterion.id}"])
            assert chart.findtext(f"{SVG}title", "").startswith(criterion.name) and chart.get("aria-label")
            counts = {title.split(": ")[0]: n for title, (_, n) in _bars(chart).items() if n is not None}
            assert counts == {value: str(n) for value, n in cell.verdicts.items()}, criterion.id


def test_folded_scores_between_levels_stand_between_them(tmp_path: Path) -> None:
    """With `--samples 2 --aggregate mean` a turn scored 2 and 3 is a 2.5: its bar stands halfway between
    the levels 2 and 3, not on either, and the whole levels keep their own counts."""
    judgments = [*sampled("a", 1, [2, 3]), *sampled("a", 3, [3, 2]), *sampled("b", 1, [4, 4]), *sampled("b", 3, [1, 2])]
    run_dir = write_run(tmp_path, "folded", make_rubric(LIKERT), judgments, samples=2, aggregate="mean")
    chart = _chart(_cards(render_html(run_dir))["synthetic:honours_request"])
    bars = _bars(chart)
    assert bars["2.50: 2 items"][1] == "2" and bars["4: 1 item"][1] == "1" and bars["1.50: 1 item"][1] == "1"
    assert bars["2: 0 items"] == bars["3: 0 items"] == (None, None)
    two, three = _level_x(chart, "2"), _level_x(chart, "3")
    centre = bars["2.50: 2 items"][0]
    assert centre is not None and abs(centre - (two + three) / 2) < 0.2
    assert "; mean 2.6" in (chart.findtext(f"{SVG}title") or "")  # (2.5 + 2.5 + 4 + 1.5) / 4


def test_rubric_text_in_a_chart_is_escaped(tmp_path: Path) -> None:
    hostile = '<script>alert("x")</script> & more'
    criterion = {
        "id": "length",
        "name": f"Length {hostile}",
        "question": "How long is the turn?",
        "scale": {
            "type": "categorical",
            "categories": [{"label": hostile, "description": "d"}, {"label": "ok", "description": "d"}],
        },
    }
    labelled = judgment("a", 1, None, criterion="length", status="not_applicable").model_dump()
    judgments = [Judgment.model_validate({**labelled, "status": "ok", "label": hostile})]
    card = _cards(render_html(write_run(tmp_path, "hostile", make_rubric(criterion), judgments)))["synthetic:length"]
    svg = card.split("<svg", 1)[1]
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    chart = _chart(card)
    assert f"Length {hostile}" in (chart.findtext(f"{SVG}title") or "")
    assert _bars(chart)[f"{hostile}: 1 item"][1] == "1"


def test_repeated_samples_are_summarised_as_items_and_shown_one_by_one(tmp_path: Path) -> None:
    config = RunConfig(
        transcripts=[SLOWING_SEED],
        rubrics=[REPO / "rubrics" / "pacing.yaml"],
        output=tmp_path,
        judge=JudgeSettings(kind="rules"),
        samples=2,
        show_progress=False,
    )
    run_dir = run(config).run_dir
    text = render_html(run_dir)
    summary = summarize(run_dir)
    assert "items (samples folded) by status" in text
    assert f'data-count-status="ok"><b>{summary.counts["ok"]}</b>' in text
    assert text.count('<div class="judgment ') == len(load_judgments(run_dir)) == 2 * sum(summary.counts.values())
    assert "· sample 1</span>" in text


def test_the_headline_interval_is_95_percent_and_resamples_whole_sessions(tmp_path: Path) -> None:
    """Ten sessions of three turns, every turn of a session scored alike (5 in five sessions, 1 in the
    others): ten independent observations, not thirty. Resampling sessions, the bootstrap mean is
    1 + 4 * Binomial(10, 1/2) / 10, whose 2.5% and 97.5% points are read off the binomial here."""
    judgments = [judgment(f"s{i}", turn, 5.0 if i < 5 else 1.0) for i in range(10) for turn in (1, 3, 5)]
    card = _cards(render_html(write_run(tmp_path, "clustered", make_rubric(LIKERT), judgments)))[
        "synthetic:honours_request"
    ]
    low, high = (1 + 4 * binom(10, 0.5).ppf(q) / 10 for q in (0.025, 0.975))
    assert (low, high) == (1.8, 4.2)  # an 80% interval would be [2.20, 3.80]; resampled turns, about [2.5, 3.5]
    assert "<b>3.00</b>" in card and f"[{low:.2f}, {high:.2f}]" in card
    assert "30 turns · 10 sessions" in card


def test_a_lower_is_better_criterion_meets_at_or_below_pass_at(tmp_path: Path) -> None:
    counts = {("t1", 1): 0, ("t1", 3): 0, ("t1", 5): 3, ("t2", 1): 1, ("t2", 3): 0}  # 4 of 5 ask <= 1 question
    judgments = [judgment(t, turn, n, criterion=QUESTIONS["id"]) for (t, turn), n in counts.items()]
    card = _cards(render_html(write_run(tmp_path, "questions", make_rubric(QUESTIONS), judgments)))[
        "synthetic:questions"
    ]
    assert "meets at ≤ 1" in card and '<dd class="share">80%</dd>' in card


def test_the_report_is_written_into_the_run_folder(run_dir: Path, page_html: str) -> None:
    assert (run_dir / HTML_FILE).read_text(encoding="utf-8") == page_html
    assert not list(run_dir.glob(".*.tmp"))


def test_a_small_run_is_one_file_with_every_session_inline(run_dir: Path, page_html: str) -> None:
    assert not (run_dir / PAGES_DIR).exists()
    for transcript_id in (IGNORING_SEED.stem, SLOWING_SEED.stem, HOSTILE_ID):
        assert '<section class="session" id="' in page_html and f'data-transcript="{transcript_id}"' in page_html
    assert 'id="transcript-rows"' not in page_html and "Self-contained" in page_html


def test_the_header_says_whether_the_judge_was_blind(page_html: str, variant: Callable[..., str]) -> None:
    assert "blind: the judge saw no transcript ids or metadata" in page_html and "unblind" not in page_html

    def unblind(manifest: dict) -> None:
        manifest["unblind"] = True

    assert "unblind: the judge saw transcript ids and metadata" in variant(manifest=unblind)


def test_cards_show_the_logprob_weighted_mean_and_self_consistency(tmp_path: Path) -> None:
    judgments = [*sampled("a", 1, [4, 4]), *sampled("a", 3, [2, 3]), *sampled("b", 1, [5, 5])]
    for j, weighted in zip(judgments, [4.2, 3.8, 2.6, 2.4, 4.9, 5.0]):
        j.weighted_score = weighted
    run_dir = write_run(tmp_path, "sampled", make_rubric(LIKERT), judgments, samples=2, aggregate="mean")
    card = _cards(render_html(run_dir))["synthetic:honours_request"]
    cell = summarize(run_dir).rubrics[0].overall["honours_request"]
    assert cell.self_consistency == 2 / 3 and cell.weighted_mean is not None
    assert '<dd class="consistency">67% <span class="n">of 3 items</span>' in card
    assert f'<dd class="weighted">{cell.weighted_mean:.2f} ' in card
    plain = _cards(render_html(write_run(tmp_path, "plain", make_rubric(LIKERT), [judgment("a", 1, 4.0)])))
    card = plain["synthetic:honours_request"]
    assert "self-consistent" not in card and "logprob" not in card


# --- the page in a real browser ------------------------------------------------------------------


def _visible(page, selector: str) -> list[dict[str, str]]:
    """data-* of the elements a reader can see."""
    return page.eval_on_selector_all(selector, "els => els.filter(e => e.checkVisibility()).map(e => ({...e.dataset}))")


def test_the_report_works_in_a_browser(browser, run_dir: Path, page_html: str, tmp_path: Path) -> None:
    judgments = load_judgments(run_dir)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.goto((run_dir / HTML_FILE).resolve().as_uri())

    scored = {key for key, card in _cards(page_html).items() if "<svg" in card}
    assert page.locator(".card figure.chart svg").count() == len(scored) > 0
    hostile = page.locator(f'.session[data-transcript="{HOSTILE_ID}"] .turn[data-turn="0"] .text').inner_text()
    assert "<script>alert(1)</script>" in hostile and "{{ x }}" in hostile

    page.select_option("#filter-criterion", HEADLINE)
    shown = _visible(page, ".judgment")
    expected = [j for j in judgments if (j.rubric_id, j.criterion_id) == tuple(HEADLINE.split(":"))]
    assert {(d["rubric"], d["criterion"]) for d in shown} == {tuple(HEADLINE.split(":"))}
    assert len(shown) == len(expected)
    page.select_option("#filter-score", "4")
    assert {d["score"] for d in _visible(page, ".judgment")} == {"4"}
    assert len(_visible(page, ".judgment")) == sum(j.status == "ok" and j.score == 4 for j in expected)
    page.click("#filter-reset")
    page.select_option("#filter-status", "unscored")
    assert len(_visible(page, ".judgment")) == sum(j.status == "unscored" for j in judgments)
    page.click("#filter-reset")
    assert len(_visible(page, ".judgment")) == len(judgments)

    quoted = next(
        j
        for j in judgments
        if j.transcript_id == IGNORING_SEED.stem and j.evidence and j.criterion_id == "persuasion_without_permission"
    )
    turn = page.locator(f'.session[data-transcript="{quoted.transcript_id}"] .turn[data-turn="{quoted.turn_index}"]')
    marks = turn.locator(".bubble mark.evidence")
    assert any(quoted.evidence[0].quote in text for text in marks.all_inner_texts())
    background = marks.first.evaluate("m => getComputedStyle(m).backgroundColor")
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")

    page.select_option("#filter-session", label=HOSTILE_ID)  # the whole page, one short session: quick to capture
    page.screenshot(path=tmp_path / "report.png", full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert problems == []


@pytest.fixture(scope="module")
def seeds_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled seeds as `make run` judges them, from the repository with relative paths (built before
    the browser starts its event loop)."""
    output = tmp_path_factory.mktemp("seeds") / "results"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO)
        return write_html_report(
            _judge_run([Path("transcripts") / IGNORING_SEED.name, Path("transcripts") / SLOWING_SEED.name], output)
        )


@pytest.mark.skipif(
    not os.environ.get("EVALUATOR_WRITE_DOCS_SCREENSHOT"),
    reason="set EVALUATOR_WRITE_DOCS_SCREENSHOT=1 to rewrite docs/report.png",
)
def test_write_docs_screenshot(seeds_report: Path, browser) -> None:
    """docs/report.png: the bundled seeds, all four rubrics, 1280 px wide; the headline rubric open,
    the others folded, and the start of the turn viewer."""
    report = seeds_report
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(report.resolve().as_uri())
    page.eval_on_selector_all("details.rubric:not(#rubric-pacing)", "els => els.forEach(e => e.open = false)")
    viewer = page.eval_on_selector("#conversations", "e => e.getBoundingClientRect().top + window.scrollY")
    page.set_viewport_size({"width": 1280, "height": round(viewer) + 760})  # a tall viewport, not a full page: quick
    DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=DOCS_SCREENSHOT)
    assert DOCS_SCREENSHOT.stat().st_size > 10_000


# --- a large run: report.html with an index, a page per transcript ------------------------------------

LARGE_SESSIONS = PAGE_ROWS + 20  # more than one page of the index, and more than one file holds
ODD_ID = "site 3/<b>odd</b> ü"
LARGE_RUBRIC = """id: large
title: Large run
criteria:
  - id: checks_in
    name: Checks in
    check: checks_in
    question: Does the turn check in?
    scale: {type: binary, "yes": "it does", "no": "it does not"}
  - id: question_count
    name: Questions
    check: question_count
    question: How many questions?
    scale: {type: count, unit: questions}
"""


def _large_id(number: int) -> str:
    return ODD_ID if number == 7 else f"case-{number:03d}"


@pytest.fixture(scope="module")
def large_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LARGE_SESSIONS sessions of two therapist turns in two arms, judged by the rules judge; report
    written with `--by arm` over a report written before (so its folder is replaced)."""
    folder = tmp_path_factory.mktemp("large-report")
    assert LARGE_SESSIONS > SINGLE_FILE_SESSIONS
    records = []
    for n in range(LARGE_SESSIONS):
        pace = "How is this pace for you?" if n % 3 else "Let us try a breathing exercise. Ready? Now?"
        messages = [
            {"role": "user", "content": f"Session {n}: it is too much, can we slow down?"},
            {"role": "assistant", "content": f"Yes, we can slow down. {pace}"},
            {"role": "user", "content": "Thank you."},
            {"role": "assistant", "content": "Take your time, is this pace all right?"},
        ]
        arm = "treatment" if n % 2 else "control"
        records.append(json.dumps({"id": _large_id(n), "arm": arm, "messages": messages}))
    sessions = folder / "sessions.jsonl"
    sessions.write_text("\n".join(records) + "\n", encoding="utf-8")
    rubric = folder / "large.yaml"
    rubric.write_text(LARGE_RUBRIC, encoding="utf-8")
    run_dir = _judge_run([sessions], folder / "results", rubrics=rubric)
    write_html_report(run_dir)
    (run_dir / PAGES_DIR / "stale.html").write_text("from an earlier report")
    write_html_report(run_dir, by=["arm"])
    return run_dir


def _index_rows(report: str) -> list[list]:
    data = re.search(r'<script type="application/json" id="transcript-rows">(.*?)</script>', report, re.DOTALL)
    assert data is not None
    return json.loads(data.group(1))["rows"]


def _hrefs(text: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'(?:href|src)="([^"#]*)(?:#[^"]*)?"', text) if h]


def test_a_large_run_writes_a_small_report_and_a_page_per_transcript(large_run: Path) -> None:
    report = (large_run / HTML_FILE).read_text(encoding="utf-8")
    pages = sorted((large_run / PAGES_DIR).glob("*.html"))
    judgments = load_judgments(large_run)
    assert len(pages) == LARGE_SESSIONS and not (large_run / PAGES_DIR / "stale.html").exists()
    assert '<div class="judgment ' not in report and '<section class="session"' not in report
    assert len(report) < sum(p.stat().st_size for p in pages) / 10
    assert 'id="groups"' in report and len(_cards(report)) == 2  # the figures stay in report.html
    rows = _index_rows(report)
    assert [r[0] for r in rows] == [_large_id(n) for n in range(LARGE_SESSIONS)]
    assert {r[3][0] for r in rows} == {"control", "treatment"} and all(r[4][0] == 4 for r in rows)
    for row in rows:
        page = (large_run / row[1]).read_text(encoding="utf-8")
        mine = [j for j in judgments if j.transcript_id == row[0]]
        assert page.count('<div class="judgment ') == len(mine) == 4
        assert f'data-transcript="{html.escape(row[0])}"' in page
    assert not list(large_run.glob(f".{PAGES_DIR}*")) and not list(large_run.glob(".*.tmp"))


def test_every_link_of_a_large_report_resolves_to_a_file(large_run: Path) -> None:
    report = large_run / HTML_FILE
    targets = [(report, href) for href in _hrefs(report.read_text(encoding="utf-8"))]
    targets += [(report, row[1]) for row in _index_rows(report.read_text(encoding="utf-8"))]
    for page in (large_run / PAGES_DIR).glob("*.html"):
        targets += [(page, href) for href in _hrefs(page.read_text(encoding="utf-8"))]
    assert len(targets) > 4 * LARGE_SESSIONS
    for source, href in targets:
        assert "://" not in href and not href.startswith("/"), (source.name, href)
        assert (source.parent / href).is_file(), (source.name, href)


def test_an_odd_transcript_id_is_escaped_in_the_index_and_its_page(large_run: Path) -> None:
    report = (large_run / HTML_FILE).read_text(encoding="utf-8")
    assert "<b>odd</b>" not in report and "\\u003cb\\u003eodd" in report
    row = next(r for r in _index_rows(report) if r[0] == ODD_ID)
    assert re.fullmatch(r"report/\d{5}-[A-Za-z0-9_-]+\.html", row[1])
    assert "&lt;b&gt;odd&lt;/b&gt; ü" in (large_run / row[1]).read_text(encoding="utf-8")


def test_a_small_report_over_a_large_one_removes_its_pages(large_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(large_run, copy)
    text = write_html_report(copy, single_file=True).read_text(encoding="utf-8")
    assert not (copy / PAGES_DIR).exists() and text.count('<section class="session"') == LARGE_SESSIONS


def _index_ids(page, index: str) -> list[str]:
    return page.eval_on_selector_all(f"#{index} tbody tr", "rows => rows.map(r => r.dataset.transcript)")


def test_the_index_pages_searches_and_sorts_in_a_browser(browser, large_run: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto((large_run / HTML_FILE).resolve().as_uri())
    ids = [_large_id(n) for n in range(LARGE_SESSIONS)]

    assert _index_ids(page, "transcript-index") == ids[:PAGE_ROWS]
    assert page.locator("#transcript-index .tindex-prev").is_disabled()
    page.click("#transcript-index .tindex-next")
    assert _index_ids(page, "transcript-index") == ids[PAGE_ROWS:]
    assert page.locator("#transcript-index .tindex-next").is_disabled()

    page.fill("#transcript-index .tindex-search", "case-04")
    assert _index_ids(page, "transcript-index") == [f"case-{n:03d}" for n in range(40, 50)]
    page.fill("#transcript-index .tindex-search", "treatment case-1")
    assert _index_ids(page, "transcript-index") == [f"case-{n:03d}" for n in range(100, LARGE_SESSIONS) if n % 2]
    assert "of 120" in page.locator("#transcript-index .tindex-info").inner_text()

    rubric_index = "rubric-large-index"  # sort by mean questions, highest first: sessions asking 3 then 1
    page.click(f"#{rubric_index} thead th:last-child button")
    page.click(f"#{rubric_index} thead th:last-child button")
    first = _index_ids(page, rubric_index)
    assert first[:40] == [i for n, i in enumerate(ids) if n % 3 == 0][:40]

    page.fill("#transcript-index .tindex-search", "")
    page.click('#transcript-index tbody tr[data-transcript="case-000"] a')
    page.wait_for_load_state()
    assert page.locator("#transcript-id").inner_text() == "case-000"
    assert page.locator(".session .turn").count() == 4 and page.locator(".judgment").count() == 4
    marks = page.locator(".turn .bubble mark.evidence")
    assert marks.count() >= 2 and "is this pace all right?" in " ".join(marks.all_inner_texts())
    page.select_option("#filter-criterion", "large:checks_in")
    assert {d["criterion"] for d in _visible(page, ".judgment")} == {"checks_in"}
    page.click("#next")
    assert page.locator("#transcript-id").inner_text() == "case-001"
    assert problems == []


def test_pages_of_a_run_without_snapshot_reread_the_files(large_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(large_run, copy)
    (copy / TRANSCRIPTS).unlink()
    report = write_html_report(copy).read_text(encoding="utf-8")
    row = _index_rows(report)[3]
    page = (copy / row[1]).read_text(encoding="utf-8")
    assert page.count('<div class="turn ') == 4 and "Session 3: it is too much" in page
