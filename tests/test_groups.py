"""Groups by metadata: per group and criterion the sessions, turns, mean and share meeting pass_at, each
with an interval over whole sessions, from a two-arm corpus judged offline and from hand-written runs."""

from __future__ import annotations

import io
import json
from collections import defaultdict
from pathlib import Path

import pytest
from rich.console import Console
from rich.highlighter import Highlighter
from rich.text import Text

from evaluator.analysis.groups import GroupingError, summarize_groups
from evaluator.models import RunManifest
from evaluator.store import MANIFEST, load_judgments
from evaluator.views.groups import GROUP_CHARS, print_groups, render_groups_markdown
from tests.arms import QUESTIONS, RUBRIC, VALIDATES, judged_corpus
from tests.runs import LIKERT, judgment, make_rubric, sampled, write_run


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return judged_corpus(tmp_path_factory.mktemp("arms"))


def _scores(run_dir: Path, criterion: str) -> dict[str, dict[str, list[float]]]:
    """Per arm (from the transcript id), per session, the scores in judgments.jsonl: read independently."""
    found: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for j in load_judgments(run_dir):
        if j.criterion_id == criterion and j.status == "ok" and j.score is not None:
            found[j.transcript_id.split("-", 1)[1]][j.transcript_id].append(j.score)
    return found


def test_each_group_counts_its_sessions_and_turns_and_means_over_turns(corpus: Path) -> None:
    groups = summarize_groups(corpus, "model")
    assert groups.groups == ["model-a", "model-b"] and groups.fields == ("model",)
    questions = next(c for c in groups.criteria if c.criterion.id == QUESTIONS)
    for arm, sessions in _scores(corpus, QUESTIONS).items():
        cell = questions.cells[arm]
        scores = [s for v in sessions.values() for s in v]
        assert (cell.sessions, cell.turns) == (20, len(scores))
        assert cell.mean is not None and cell.mean.value == pytest.approx(sum(scores) / len(scores))
        assert cell.mean.low < cell.mean.value < cell.mean.high and cell.mean.sessions == 20
        assert cell.share is not None and cell.share.value == pytest.approx(sum(s <= 1 for s in scores) / len(scores))
    validates = next(c for c in groups.criteria if c.criterion.id == VALIDATES)
    assert all(cell.share is None for cell in validates.cells.values())  # no pass_at, no share


def test_session_weighting_averages_each_sessions_mean_once(corpus: Path) -> None:
    groups = summarize_groups(corpus, "model", weight="sessions")
    cell = next(c for c in groups.criteria if c.criterion.id == QUESTIONS).cells["model-b"]
    sessions = _scores(corpus, QUESTIONS)["model-b"]
    means = [sum(v) / len(v) for v in sessions.values()]
    assert cell.mean is not None and cell.mean.value == pytest.approx(sum(means) / len(means))
    assert "over sessions" in groups.method


def test_several_fields_make_one_group_per_combination(corpus: Path) -> None:
    groups = summarize_groups(corpus, "model,patient_id")
    assert len(groups.groups) == 40 and groups.groups[0] == "model-a · p00"
    assert all(g.sessions == 1 for c in groups.criteria for g in c.cells.values())
    assert len(groups.small) == 40


def _with_metadata(run_dir: Path, metadata: dict[str, dict]) -> Path:
    manifest = RunManifest.model_validate_json((run_dir / MANIFEST).read_text(encoding="utf-8"))
    manifest.transcript_metadata = metadata
    (run_dir / MANIFEST).write_text(manifest.model_dump_json(), encoding="utf-8")
    return run_dir


def test_a_field_no_transcript_has_is_an_error_naming_the_fields_that_exist(corpus: Path) -> None:
    with pytest.raises(GroupingError) as error:
        summarize_groups(corpus, "therapist")
    message = str(error.value)
    assert "'therapist'" in message and "model" in message and "patient_id" in message


def test_a_field_some_transcripts_lack_names_them(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, "r", make_rubric(LIKERT), [judgment("a", 1, 4), judgment("b", 1, 2)])
    _with_metadata(run_dir, {"a": {"model": "x", "site": "1"}, "b": {"site": "2"}})
    with pytest.raises(GroupingError, match=r"1 of 2 transcripts .* lack the metadata field 'model' \(b\).*site"):
        summarize_groups(run_dir, "model")


def test_nested_metadata_is_reached_as_a_dotted_field(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, "r", make_rubric(LIKERT), [judgment("a", 1, 4), judgment("b", 1, 2)])
    _with_metadata(run_dir, {"a": {"therapist": {"model": "x"}}, "b": {"therapist": {"model": "y"}}})
    groups = summarize_groups(run_dir, "therapist.model")
    assert groups.groups == ["x", "y"] and groups.members == {"a": "x", "b": "y"}
    # a record is read flat, as a run of today records it: the whole record is no field, its parts are
    with pytest.raises(GroupingError, match=r"'therapist'.*therapist\.model"):
        summarize_groups(run_dir, "therapist")


def test_group_intervals_resample_sessions_not_turns(tmp_path: Path) -> None:
    """Ten sessions of 40 identical turns each, half scoring 1 and half 5: resampling sessions gives an
    interval about ±1.2 wide around 3; resampling the 400 turns would give about ±0.2."""
    judgments = [judgment(f"s{s}", t, 1 if s % 2 else 5) for s in range(10) for t in range(40)]
    run_dir = write_run(tmp_path, "r", make_rubric(LIKERT), judgments)
    _with_metadata(run_dir, {f"s{s}": {"arm": "one"} for s in range(10)})
    cell = summarize_groups(run_dir, "arm").criteria[0].cells["one"]
    assert cell.mean is not None and cell.mean.value == 3
    assert cell.mean.high - cell.mean.low > 1.5


def test_the_terminal_table_keeps_every_figure_at_80_columns_and_says_sessions_are_resampled(corpus: Path) -> None:
    console = Console(width=80, record=True, force_terminal=False)
    groups = summarize_groups(corpus, "model")
    print_groups(groups, console)
    text = console.export_text()
    cell = next(c for c in groups.criteria if c.criterion.id == QUESTIONS).cells["model-b"]
    assert cell.mean is not None
    assert f"{cell.mean.value:.2f} [{cell.mean.low:.2f}, {cell.mean.high:.2f}]" in text
    assert "resample whole sessions" in text and "turns of one session are not independent" in text
    assert max(len(line) for line in text.splitlines() if "│" in line) <= 80


def test_report_by_field_prints_groups_and_writes_the_report(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evaluator.cli.main import main

    assert main(["report", str(corpus), "--by", "model"]) == 0
    out = capsys.readouterr().out
    assert "arms by model" in out and "model-b" in out and "groups.md" in out
    md = (corpus / "groups.md").read_text(encoding="utf-8")
    assert "| questions | model-b | 20 |" in md and "resample whole sessions" in md
    page = (corpus / "report.html").read_text(encoding="utf-8")
    assert 'id="groups"' in page and json.dumps("model-a")[1:-1] in page


def test_a_nested_field_of_a_judged_record_groups_by_its_dotted_name(tmp_path: Path) -> None:
    from evaluator.config import JudgeSettings, RunConfig
    from evaluator.runner import run

    lines = [
        {
            "id": f"s{n}",
            "therapist": {"model": f"m{n % 2}"},
            "messages": [
                {"role": "user", "content": "Hi."},
                {"role": "assistant", "content": "What brings you here?" * (1 + n % 2)},
            ],
        }
        for n in range(4)
    ]
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    (tmp_path / "r.yaml").write_text(RUBRIC, encoding="utf-8")
    config = RunConfig(
        transcripts=[tmp_path / "s.jsonl"],
        rubrics=[tmp_path / "r.yaml"],
        output=tmp_path / "results",
        judge=JudgeSettings(kind="rules"),
        show_progress=False,
        write_report=False,
    )
    groups = summarize_groups(run(config).run_dir, "therapist.model")
    cells = next(c for c in groups.criteria if c.criterion.id == QUESTIONS).cells
    assert groups.groups == ["m0", "m1"] and cells["m1"].mean.value == 2 and cells["m0"].mean.value == 1


def test_repeated_samples_count_once_as_their_folded_item(tmp_path: Path) -> None:
    """With --samples 2 and the mean fold, s0 turn 1 scored (2, 4) is one turn scoring 3, not two turns."""
    judgments = [*sampled("s0", 1, [2, 4]), *sampled("s0", 3, [5, 5]), *sampled("s1", 1, [1, 2])]
    run_dir = _with_metadata(
        write_run(tmp_path, "r", make_rubric(LIKERT), judgments, samples=2, aggregate="mean"),
        {"s0": {"arm": "x"}, "s1": {"arm": "x"}},
    )
    cell = summarize_groups(run_dir, "arm").criteria[0].cells["x"]
    assert (cell.sessions, cell.turns) == (2, 3)
    assert cell.mean is not None and cell.mean.value == pytest.approx((3 + 5 + 1.5) / 3)


class _SeenHighlighter(Highlighter):
    """Records what rich asks to highlight: its regexes take minutes on one long cell (5 KB took 1.1 s)."""

    def __init__(self) -> None:
        self.longest = 0

    def highlight(self, text: Text) -> None:
        self.longest = max(self.longest, len(text.plain))


def test_a_group_named_by_a_100000_character_value_is_cut_in_the_terminal_and_never_highlighted(
    tmp_path: Path,
) -> None:
    long_value = "7" * 100_000  # digits: the highlighter's number patterns were the slowest on them
    run_dir = write_run(tmp_path, "r", make_rubric(LIKERT), [judgment("a", 1, 4), judgment("b", 1, 2)])
    _with_metadata(run_dir, {"a": {"model": long_value}, "b": {"model": "short"}})
    seen = _SeenHighlighter()
    console = Console(width=80, record=True, file=io.StringIO(), highlighter=seen)
    groups = summarize_groups(run_dir, "model")
    print_groups(groups, console)
    text = console.export_text()
    assert seen.longest < 1_000
    assert GROUP_CHARS <= text.count("7") < 3 * GROUP_CHARS and "…" in text  # cut (in the table and the warning)
    assert len(text) < 10_000 and "short" in text
    assert long_value in render_groups_markdown(groups)  # groups.md keeps the value whole
