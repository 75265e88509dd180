"""Agreement with human labels, on runs of the real pipeline with the offline rules judge.

Expected figures are computed here by a different path than the module's (kappa and nominal alpha
from their textbook formulas over the confusion counts), so a wrong pairing, a wrong weighting or a
swapped level shows as a mismatch.
"""

from __future__ import annotations

import csv
import random
import re
from collections import Counter
from pathlib import Path
from statistics import mean

import krippendorff
import numpy as np
import pytest
from rich.console import Console

from evaluator.analysis import agreement as analysis
from evaluator.analysis.agreement import AgreementReport, CriterionAgreement
from evaluator.analysis.agreement_against import against
from evaluator.config import JudgeSettings, RunConfig
from evaluator.labels import LabelsError, read_labels
from evaluator.models import Judgment
from evaluator.results import open_run
from evaluator.runner import run
from evaluator.store import JudgmentWriter, load_judgments
from evaluator.views.agreement import print_agreement, render_agreement_markdown, write_agreement
from evaluator.views.format import interval as fmt_interval
from tests.conftest import IGNORING_SEED, REPO, SLOWING_SEED
from tests.runs import BINARY, LIKERT, judgment, make_rubric, sampled, write_run

PACING = REPO / "rubrics" / "pacing.yaml"
SEED_LABELS = REPO / "labels" / "seed_ratings.csv"
HEADER = ["transcript", "turn", "criterion", "score", "rater"]


def _run(output: Path, transcripts: list[Path], rubric: Path, samples: int = 1) -> Path:
    config = RunConfig(
        transcripts=transcripts,
        rubrics=[rubric],
        output=output,
        show_progress=False,
        judge=JudgeSettings(kind="rules", cache_path=None),
        samples=samples,
    )
    return run(config).run_dir


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("agree"), [IGNORING_SEED, SLOWING_SEED], PACING)


def agreement(run_dir: Path, labels_path: Path) -> AgreementReport:
    """What `evaluator agree` computes: the run read once, the labels read, then compared."""
    return analysis.agreement(open_run(run_dir), read_labels(labels_path), labels_path)


def _ok(run_dir: Path, criterion_id: str) -> list[Judgment]:
    """The judge's ok verdicts of one criterion, in a fixed order."""
    found = [j for j in load_judgments(run_dir) if j.criterion_id == criterion_id and j.status == "ok"]
    return sorted(found, key=lambda j: (j.transcript_id, j.turn_index))


def _write(path: Path, rows: list[list[object]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _criterion(report: AgreementReport, criterion_id: str) -> CriterionAgreement:
    return next(ca for ca in report.criteria if ca.criterion.id == criterion_id)


def _printed(report: AgreementReport) -> str:
    console = Console(record=True, width=160)
    print_agreement(report, console)
    return console.export_text()


def _kappa_by_hand(a: list[int], b: list[int], values: list[int], weighted: bool) -> float:
    """Cohen's kappa from the confusion counts: 1 - sum(w * observed) / sum(w * expected by chance)."""
    position = {v: i for i, v in enumerate(values)}
    observed = np.zeros((len(values), len(values)))
    for x, y in zip(a, b):
        observed[position[x], position[y]] += 1
    observed /= observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    weights = np.array(
        [[(i - j) ** 2 if weighted else float(i != j) for j in range(len(values))] for i in range(len(values))]
    )
    return float(1 - (weights * observed).sum() / (weights * expected).sum())


def _nominal_alpha_by_hand(a: list[int], b: list[int]) -> float:
    """Krippendorff's nominal alpha for two coders and no missing data, from the coincidence counts."""
    values = Counter(a + b)
    n = len(a) + len(b)
    disagreeing = 2 * sum(x != y for x, y in zip(a, b))
    expected = sum(values[c] * values[k] for c in values for k in values if c != k)
    return 1 - (n - 1) * disagreeing / expected


# --- (1) labels equal to the judge's own verdicts ---------------------------------------------------


def test_labels_equal_to_the_judge_agree_perfectly(seed_run: Path, tmp_path: Path) -> None:
    criteria = ("slow_down_responsiveness", "acknowledges_request", "questions_asked", "relative_length")
    rows = []
    for cid in criteria:
        for index, j in enumerate(_ok(seed_run, cid)):
            # categories given by label and by value alike; the results' own column names, no rater column
            score = j.label if j.label is not None and index % 2 else j.score
            rows.append([j.transcript_id, j.turn_index, cid, score])
    labels = _write(tmp_path / "own.csv", rows, ["transcript_id", "turn_index", "criterion_id", "score"])
    report = agreement(seed_run, labels)
    assert report.raters == ["human"] and not report.several_raters
    assert [ca.criterion.id for ca in report.criteria] == list(criteria)
    for ca in report.criteria:
        c = ca.comparison
        assert c.n == len(_ok(seed_run, ca.criterion.id)) > 10
        assert (c.exact, c.kappa, c.alpha, c.rho) == (1.0, 1.0, pytest.approx(1.0), pytest.approx(1.0)), ca.criterion.id
        assert c.bias == 0.0
        assert c.within_one == (1.0 if ca.level == "ordinal" else None)
        assert sum(ca.confusion.counts[i][i] for i in range(len(ca.confusion.values))) == c.n
        assert ca.unmatched.judged_unlabelled == 0 and not ca.unmatched.reasons
        assert ca.per_rater == [] and ca.humans is None
    assert _criterion(report, "relative_length").level == "nominal"
    assert _criterion(report, "slow_down_responsiveness").kappa_kind == "quadratic-weighted"


# --- (2) labels at chance, checked against figures computed here ----------------------------------


def test_labels_independent_of_the_judge_agree_at_chance(seed_run: Path, tmp_path: Path) -> None:
    acknowledges = _ok(seed_run, "acknowledges_request")
    alternating = [i % 2 for i in range(len(acknowledges))]
    responsiveness = _ok(seed_run, "slow_down_responsiveness")
    shuffled = [int(j.score) for j in responsiveness]
    random.Random(7).shuffle(shuffled)
    rows = [[j.transcript_id, j.turn_index, "acknowledges_request", h, "r1"] for j, h in zip(acknowledges, alternating)]
    rows += [
        [j.transcript_id, j.turn_index, "slow_down_responsiveness", h, "r1"] for j, h in zip(responsiveness, shuffled)
    ]
    report = agreement(seed_run, _write(tmp_path / "chance.csv", rows))

    judged = [int(j.score) for j in acknowledges]
    binary = _criterion(report, "acknowledges_request").comparison
    assert binary.kappa == pytest.approx(_kappa_by_hand(alternating, judged, [0, 1], weighted=False))
    assert binary.alpha == pytest.approx(_nominal_alpha_by_hand(judged, alternating))
    assert binary.exact == pytest.approx(mean(float(h == j) for h, j in zip(alternating, judged)))
    assert binary.bias == pytest.approx(mean(judged) - mean(alternating))
    assert abs(binary.kappa) < 0.2
    confusion = _criterion(report, "acknowledges_request").confusion  # rows human, columns judge
    assert confusion.counts == [
        [sum(h == r and j == c for h, j in zip(alternating, judged)) for c in (0, 1)] for r in (0, 1)
    ]

    judged = [int(j.score) for j in responsiveness]
    ordinal = _criterion(report, "slow_down_responsiveness")
    assert ordinal.comparison.kappa == pytest.approx(_kappa_by_hand(shuffled, judged, [1, 2, 3, 4, 5], weighted=True))
    assert abs(ordinal.comparison.kappa) < 0.3
    assert ordinal.comparison.bias == pytest.approx(0.0)  # a permutation keeps the mean: no leniency
    assert ordinal.comparison.within_one == pytest.approx(
        mean(float(abs(h - j) <= 1) for h, j in zip(shuffled, judged))
    )
    assert ordinal.confusion.values == [1, 2, 3, 4, 5]
    # alpha at the ordinal level, not interval: a level swapped for another changes it
    expected_alpha = krippendorff.alpha(
        reliability_data=[judged, shuffled], level_of_measurement="ordinal", value_domain=[1, 2, 3, 4, 5]
    )
    assert ordinal.comparison.alpha == pytest.approx(expected_alpha)


def test_categories_are_compared_as_nominal(seed_run: Path, tmp_path: Path) -> None:
    lengths = _ok(seed_run, "relative_length")
    categories = ["shorter", "similar", "longer"]
    human = [categories[i % 3] for i in range(len(lengths))]
    rows = [[j.transcript_id, j.turn_index, "relative_length", h, "r1"] for j, h in zip(lengths, human)]
    c = agreement(seed_run, _write(tmp_path / "lengths.csv", rows)).criteria[0].comparison
    judged = [categories.index(str(j.label)) for j in lengths]
    coded = [categories.index(h) for h in human]
    assert c.kappa == pytest.approx(_kappa_by_hand(coded, judged, [0, 1, 2], weighted=False))
    assert c.alpha == pytest.approx(_nominal_alpha_by_hand(judged, coded))
    assert c.within_one is None and c.bias == pytest.approx(mean(judged) - mean(coded))  # values 0, 1, 2 in the rubric


# --- (3) two raters: judge against each, the consensus, and the raters against each other ---------


def test_two_raters_give_human_ceiling_beside_the_judge(seed_run: Path, tmp_path: Path) -> None:
    items = _ok(seed_run, "acknowledges_request")[:10]
    r1 = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    r2 = [1, 1, 1, 0, 0, 0, 0, 0, 0, 1]  # disagree on items 3 and 9
    rows = [[j.transcript_id, j.turn_index, "acknowledges_request", a, "r1"] for j, a in zip(items, r1)]
    rows += [[j.transcript_id, j.turn_index, "acknowledges_request", b, "r2"] for j, b in zip(items, r2)]
    graded = _ok(seed_run, "slow_down_responsiveness")[:6]
    rows += [[j.transcript_id, j.turn_index, "slow_down_responsiveness", int(j.score), "r1"] for j in graded]
    rows += [[j.transcript_id, j.turn_index, "slow_down_responsiveness", int(j.score) + 1, "r2"] for j in graded]
    report = agreement(seed_run, _write(tmp_path / "two.csv", rows))
    assert report.raters == ["r1", "r2"]

    binary = _criterion(report, "acknowledges_request")
    assert binary.humans is not None and binary.humans.n == 10
    # po = 0.8, pe = 0.4*0.4 + 0.6*0.6 = 0.52: kappa = 0.28 / 0.48; alpha from coincidences: 1 - 19*4/192
    assert binary.humans.kappa == pytest.approx(0.28 / 0.48)
    assert binary.humans.pairs == {("r1", "r2"): pytest.approx(0.28 / 0.48)}
    assert binary.humans.alpha == pytest.approx(1 - 19 * 4 / 192)
    assert [c.against for c in binary.per_rater] == ["r1", "r2"] and all(c.n == 10 for c in binary.per_rater)
    judged = [int(j.score) for j in items]
    assert binary.per_rater[0].exact == pytest.approx(mean(float(a == j) for a, j in zip(r1, judged)))
    majority = [(a, j) for a, b, j in zip(r1, r2, judged) if a == b]  # ties are left out
    assert binary.comparison.against == "consensus" and binary.comparison.n == 8
    assert binary.comparison.exact == pytest.approx(mean(float(a == j) for a, j in majority))
    assert any("tie" in note for note in binary.comparison.notes)

    graded_ca = _criterion(report, "slow_down_responsiveness")
    # r2 = r1 + 1 everywhere: the mean r1 + 0.5 rounds half up to r2; bias uses the unrounded mean
    assert graded_ca.comparison.exact == 0.0 and graded_ca.comparison.bias == pytest.approx(-0.5)
    assert [(c.against, c.exact, c.bias) for c in graded_ca.per_rater] == [("r1", 1.0, 0.0), ("r2", 0.0, -1.0)]
    first = [int(j.score) for j in graded]
    expected = _kappa_by_hand(first, [s + 1 for s in first], [1, 2, 3, 4, 5], weighted=True)
    assert graded_ca.humans is not None and graded_ca.humans.kappa == pytest.approx(expected)

    text = _printed(report)
    assert "h-h kappa" in text and f"{binary.humans.kappa:.2f}" in text and f"{binary.humans.alpha:.2f}" in text


# --- (4) labels that match nothing, and degenerate comparisons ---------------------------------------


def test_unmatched_labels_are_counted_with_their_reasons(seed_run: Path, tmp_path: Path) -> None:
    ignoring = IGNORING_SEED.stem
    rows = [
        ["999_not_judged", 9, "slow_down_responsiveness", 3, "r1"],
        [ignoring, 8, "slow_down_responsiveness", 1, "r1"],  # a patient turn
        [ignoring, 1, "slow_down_responsiveness", 2, "r1"],  # no request before it: not applicable
        [ignoring, 9, "slow_down_responsiveness", 3, "r1"],
    ]
    report = agreement(seed_run, _write(tmp_path / "unmatched.csv", rows))
    ca = _criterion(report, "slow_down_responsiveness")
    assert ca.unmatched.labels == 4 and ca.unmatched.matched == 1
    assert ca.unmatched.reasons == Counter(
        {"transcript not in run": 1, "no such item": 1, "judge said not applicable": 1}
    )
    assert ca.unmatched.judged_unlabelled == len(_ok(seed_run, "slow_down_responsiveness")) - 1
    assert ca.comparison.n == 1 and ca.comparison.kappa is None and ca.comparison.alpha is None
    assert any("n < 2" in note for note in ca.comparison.notes)
    text = _printed(report)
    for reason in ("transcript not in run", "no such item", "judge said not applicable", "n < 2"):
        assert reason in text
    assert not re.search(r"\bnan\b", text + render_agreement_markdown(report), re.IGNORECASE)


def test_unscored_items_are_reported_not_compared(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, [SLOWING_SEED], REPO / "rubrics" / "mi_relational.yaml")  # no offline rule: unscored
    rows = [[SLOWING_SEED.stem, 1, "empathy", 4, "r1"], [SLOWING_SEED.stem, 3, "empathy", 3, "r1"]]
    report = agreement(run_dir, _write(tmp_path / "empathy.csv", rows))
    ca = _criterion(report, "empathy")
    assert ca.unmatched.reasons == Counter({"unscored": 2}) and ca.unmatched.matched == 0
    assert ca.comparison.n == 0 and ca.comparison.exact is None and ca.comparison.notes
    assert "unscored" in _printed(report)


def test_a_constant_column_gives_none_with_a_note(seed_run: Path, tmp_path: Path) -> None:
    ones = [j for j in _ok(seed_run, "questions_asked") if j.score == 1][:4]
    rows = [[j.transcript_id, j.turn_index, "questions_asked", 1, "r1"] for j in ones]
    report = agreement(seed_run, _write(tmp_path / "constant.csv", rows))
    c = _criterion(report, "questions_asked").comparison
    assert (c.n, c.exact, c.kappa, c.alpha, c.rho) == (4, 1.0, None, None, None)
    assert {note.split(" undefined")[0] for note in c.notes} == {"kappa", "alpha", "rho"}
    assert not re.search(r"\bnan\b", _printed(report), re.IGNORECASE)


def test_repeated_samples_are_folded_before_matching(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, [SLOWING_SEED], PACING, samples=2)
    judged = [j for j in _ok(run_dir, "slow_down_responsiveness") if j.sample == 0]
    rows = [[j.transcript_id, j.turn_index, "slow_down_responsiveness", int(j.score), "r1"] for j in judged]
    c = agreement(run_dir, _write(tmp_path / "folded.csv", rows)).criteria[0].comparison
    assert c.n == len(judged) and c.kappa == 1.0


def test_labels_meet_the_folded_verdict_not_sample_0(tmp_path: Path) -> None:
    """With --samples 3 a label is compared with the samples' mean, not with the first sample alone.

    The rules judge is deterministic, so samples 1 and 2 are re-judged here two points away from sample 0
    (the latest judgment of a key wins): the folded mean then sits 4/3 away and rounds to another value.
    """
    run_dir = _run(tmp_path, [SLOWING_SEED], PACING, samples=3)
    criterion = "slow_down_responsiveness"
    judged = [j for j in _ok(run_dir, criterion) if j.sample == 0]
    shifted = {(j.transcript_id, j.turn_index): j.score + (2 if j.score <= 3 else -2) for j in judged}
    writer = JudgmentWriter(run_dir)
    for j in _ok(run_dir, criterion):
        if j.sample > 0:
            writer.append(j.model_copy(update={"score": shifted[(j.transcript_id, j.turn_index)]}))
    writer.close()
    rows = [[j.transcript_id, j.turn_index, criterion, int(j.score), "r1"] for j in judged]
    c = agreement(run_dir, _write(tmp_path / "sample0.csv", rows)).criteria[0].comparison
    folded_minus_first = [(2 * shifted[(j.transcript_id, j.turn_index)] - 2 * j.score) / 3 for j in judged]
    assert len(judged) >= 2 and c.n == len(judged)
    assert c.exact == 0.0 and c.within_one == 1.0
    assert c.bias == pytest.approx(mean(folded_minus_first))


# Three samples per item, written in sample order; the judge's verdict per item is their mean (likert)
# or majority (yes/no). Sample 0 and the last sample differ from that verdict on most items, so matching
# labels to raw samples instead of the folded verdict shows as disagreement.
SAMPLED = {("t1", 1): [2, 5, 2], ("t1", 3): [5, 2, 5], ("t2", 1): [1, 4, 1], ("t2", 3): [4, 1, 4], ("t2", 5): [1, 2, 2]}
FOLDED = {("t1", 1): 3.0, ("t1", 3): 4.0, ("t2", 1): 2.0, ("t2", 3): 3.0, ("t2", 5): 5 / 3}  # 5/3 rounds to 2
SAMPLED_VOTES = {("t1", 1): [1, 0, 0], ("t1", 3): [0, 1, 1], ("t2", 1): [1, 1, 0], ("t2", 3): [1, 0, 0]}
FOLDED_VOTES = {("t1", 1): 0, ("t1", 3): 1, ("t2", 1): 1, ("t2", 3): 0}


@pytest.fixture
def sampled_run(tmp_path: Path) -> Path:
    judgments = [j for (t, turn), scores in SAMPLED.items() for j in sampled(t, turn, scores)]
    judgments += [
        j for (t, turn), votes in SAMPLED_VOTES.items() for j in sampled(t, turn, votes, criterion=BINARY["id"])
    ]
    return write_run(tmp_path, "sampled", make_rubric(LIKERT, BINARY), judgments, samples=3)


def test_labels_are_matched_to_the_folded_verdict_of_sampled_items(sampled_run: Path, tmp_path: Path) -> None:
    rows = [[t, turn, LIKERT["id"], round(score), "r1"] for (t, turn), score in FOLDED.items()]
    rows += [[t, turn, BINARY["id"], vote, "r1"] for (t, turn), vote in FOLDED_VOTES.items()]
    report = agreement(sampled_run, _write(tmp_path / "folded.csv", rows))
    likert = _criterion(report, LIKERT["id"]).comparison
    assert likert.n == 5 and likert.exact == 1.0 and likert.kappa == pytest.approx(1.0)
    assert likert.bias == pytest.approx((5 / 3 - 2) / 5)  # the unrounded mean 5/3 against the label 2
    votes = _criterion(report, BINARY["id"]).comparison
    assert votes.n == 4 and votes.exact == 1.0 and votes.kappa == pytest.approx(1.0)


def test_labels_disagreeing_with_folded_verdicts_get_the_kappa_of_the_folded_verdicts(
    sampled_run: Path, tmp_path: Path
) -> None:
    labels = {("t1", 1): 3, ("t1", 3): 5, ("t2", 1): 2, ("t2", 3): 2, ("t2", 5): 2}
    rows = [[t, turn, LIKERT["id"], score, "r1"] for (t, turn), score in labels.items()]
    c = _criterion(agreement(sampled_run, _write(tmp_path / "labels.csv", rows)), LIKERT["id"]).comparison
    judge = [3, 4, 2, 3, 2]  # FOLDED, rounded half up
    human = list(labels.values())
    assert c.exact == pytest.approx(3 / 5)
    assert c.kappa == pytest.approx(_kappa_by_hand(human, judge, [1, 2, 3, 4, 5], weighted=True))
    assert c.bias == pytest.approx(mean(FOLDED[k] - labels[k] for k in labels))


# --- (5) bad labels files -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["transcript,turn,criterion,rater", "s,9,questions_asked,r1"], ["line 1", "missing column 'score'"]),
        (
            [",".join(HEADER), "{seed},9,slow_down_responsiveness,2,r1", "{seed},13,slow_down_responsiveness,high,r1"],
            ["line 3", "'high'", "not a number", "from 1 to 5"],
        ),
        (
            [",".join(HEADER), "{seed},9,slowness,2,r1"],
            ["line 2", "unknown criterion 'slowness'", "slow_down_responsiveness"],
        ),
        ([",".join(HEADER), "{seed},9,slow_down_responsiveness,6,r1"], ["line 2", "outside the scale"]),
        ([",".join(HEADER), "{seed},9,relative_length,huge,r1"], ["line 2", "shorter, similar, longer"]),
        ([",".join(HEADER), "{seed},nine,questions_asked,1,r1"], ["line 2", "'nine'", "0-based index"]),
        ([",".join(HEADER), "{seed},9,questions_asked,,r1"], ["line 2", "no value in column 'score'"]),
        ([",".join(HEADER), "{seed},9,questions_asked,1,r1", "{seed},9,questions_asked,2,r1"], ["line 3", "on line 2"]),
        ([",".join(HEADER)], ["no ratings"]),
        ([], ["line 1", "header"]),
    ],
    ids=[
        "missing-column",
        "non-numeric",
        "unknown-criterion",
        "out-of-range",
        "unknown-category",
        "bad-turn",
        "empty-score",
        "duplicate",
        "no-rows",
        "empty-file",
    ],
)
def test_bad_labels_files_name_the_file_and_line(
    seed_run: Path, tmp_path: Path, lines: list[str], expected: list[str]
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(line.format(seed=IGNORING_SEED.stem) for line in lines) + "\n", encoding="utf-8")
    with pytest.raises(LabelsError) as raised:
        agreement(seed_run, path)
    message = str(raised.value)
    assert str(path) in message
    for part in expected:
        assert part in message


# --- (6) the bundled example -----------------------------------------------------------------------


def test_seed_ratings_are_honest_about_the_two_therapists() -> None:
    labels = read_labels(SEED_LABELS)
    by_seed = {
        seed.stem: [
            float(x.score)
            for x in labels
            if x.transcript_id == seed.stem and x.criterion_id == "slow_down_responsiveness"
        ]
        for seed in (IGNORING_SEED, SLOWING_SEED)
    }
    assert mean(by_seed[IGNORING_SEED.stem]) < 2  # pushes on: ignores the requests
    assert mean(by_seed[SLOWING_SEED.stem]) >= 3  # slows down, if not always
    assert {x.rater for x in labels} == {"r1", "r2"}


def test_seed_ratings_end_to_end(seed_run: Path) -> None:
    report, path = write_agreement(seed_run, SEED_LABELS)
    assert path == seed_run / "agreement.md" and path.read_text(encoding="utf-8") == render_agreement_markdown(report)
    assert report.raters == ["r1", "r2"] and report.labels == len(read_labels(SEED_LABELS))
    assert [ca.criterion.id for ca in report.criteria] == [
        "slow_down_responsiveness",
        "acknowledges_request",
        "questions_asked",
    ]
    responsiveness = _criterion(report, "slow_down_responsiveness")
    assert responsiveness.unmatched.reasons == Counter({"no such item": 1, "judge said not applicable": 1})
    assert _criterion(report, "questions_asked").unmatched.judged_unlabelled == 50 - 35
    for ca in report.criteria:
        assert ca.comparison.n >= 30 and ca.humans is not None and ca.humans.kappa is not None
    text = _printed(report)
    for part in (
        "slow_down_responsiveness",
        "acknowledges_request",
        "questions_asked",
        "consensus",
        "r1",
        "r2",
        "h-h alpha",
        "no such item",
        "judge said not applicable",
        "rows human",
    ):
        assert part in text
    assert f"{responsiveness.humans.alpha:.2f}" in text and f"{responsiveness.comparison.bias:+.2f}" in text
    assert not re.search(r"\bnan\b", text, re.IGNORECASE)


# --- (7) the verdict: is the judge within human disagreement? ------------------------------------------


def _scripted_labels(sessions: int, turns: int, seed: int = 3) -> dict[tuple[str, int], tuple[int, int]]:
    """Two raters on a 1-5 scale who agree on most items and differ by one point on about a fifth."""
    rng = random.Random(seed)
    ratings = {}
    for s in range(sessions):
        for t in range(turns):
            first = rng.randint(1, 5)
            second = first if rng.random() < 0.8 else min(5, max(1, first + rng.choice((-1, 1))))
            ratings[(f"s{s:02d}", 2 * t + 1)] = (first, second)
    return ratings


def _scripted_run(folder: Path, run_id: str, scores: dict[tuple[str, int], int]) -> Path:
    return write_run(folder, run_id, make_rubric(LIKERT), [judgment(t, turn, s) for (t, turn), s in scores.items()])


def _scripted_csv(path: Path, ratings: dict[tuple[str, int], tuple[int, int]]) -> Path:
    rows = [
        [t, turn, LIKERT["id"], r, rater] for (t, turn), pair in ratings.items() for rater, r in zip(("r1", "r2"), pair)
    ]
    return _write(path, rows)


def test_a_judge_that_copies_one_rater_is_within_human_disagreement(tmp_path: Path) -> None:
    ratings = _scripted_labels(sessions=10, turns=6)
    run_dir = _scripted_run(tmp_path, "copies", {item: pair[0] for item, pair in ratings.items()})
    ca = agreement(run_dir, _scripted_csv(tmp_path / "labels.csv", ratings)).criteria[0]
    ceiling = ca.ceiling
    assert (ceiling.items, ceiling.sessions, ceiling.verdict, ceiling.reason) == (60, 10, analysis.WITHIN, "")
    human = ca.humans.pairs[("r1", "r2")]
    assert ceiling.humans.value == pytest.approx(human)
    # against r1 it is perfect, against r2 it is r1 against r2: the mean of the two
    assert ceiling.judge.value == pytest.approx((1 + human) / 2)
    assert ceiling.difference.value == pytest.approx((1 - human) / 2) and ceiling.difference.high >= 0
    for k in (ceiling.judge, ceiling.humans, ceiling.difference):
        assert k.low is not None and k.low <= k.value <= k.high


def test_a_random_judge_is_below_human_agreement(tmp_path: Path) -> None:
    ratings = _scripted_labels(sessions=10, turns=6)
    rng = random.Random(11)
    run_dir = _scripted_run(tmp_path, "random", {item: rng.randint(1, 5) for item in ratings})
    ceiling = agreement(run_dir, _scripted_csv(tmp_path / "labels.csv", ratings)).criteria[0].ceiling
    assert ceiling.verdict == analysis.BELOW and ceiling.reason == ""
    assert ceiling.difference.high is not None and ceiling.difference.high < 0
    assert ceiling.humans.low is not None and ceiling.judge.high is not None and ceiling.judge.high < ceiling.humans.low


@pytest.mark.parametrize(
    ("sessions", "turns", "raters", "expected"),
    [(10, 6, 1, "one rater"), (10, 1, 2, "10 item(s)"), (3, 10, 2, "3 session(s)")],
    ids=["one-rater", "few-items", "few-sessions"],
)
def test_too_little_to_go_on_says_so(tmp_path: Path, sessions: int, turns: int, raters: int, expected: str) -> None:
    ratings = _scripted_labels(sessions, turns)
    run_dir = _scripted_run(tmp_path, "run", {item: pair[0] for item, pair in ratings.items()})
    if raters == 1:
        ratings_csv = _write(
            tmp_path / "one.csv", [[t, turn, LIKERT["id"], a, "r1"] for (t, turn), (a, _) in ratings.items()]
        )
    else:
        ratings_csv = _scripted_csv(tmp_path / "labels.csv", ratings)
    report = agreement(run_dir, ratings_csv)
    ceiling = report.criteria[0].ceiling
    assert ceiling.verdict == analysis.UNKNOWN and expected in ceiling.reason
    text = _printed(report)
    assert analysis.UNKNOWN in text and expected in text


def test_intervals_resample_sessions_not_turns(tmp_path: Path) -> None:
    """Each session's turns repeated three times leave the kappas of every resample of sessions unchanged, so
    the intervals are the same; resampling turns would narrow them by about the square root of three."""
    ratings = _scripted_labels(sessions=8, turns=5)
    rng = random.Random(5)
    judge = {item: (pair[0] if rng.random() < 0.7 else rng.randint(1, 5)) for item, pair in ratings.items()}
    tripled_ratings = {(t, turn + 100 * copy): r for (t, turn), r in ratings.items() for copy in range(3)}
    tripled_judge = {(t, turn + 100 * copy): s for (t, turn), s in judge.items() for copy in range(3)}
    once = agreement(_scripted_run(tmp_path, "once", judge), _scripted_csv(tmp_path / "once.csv", ratings))
    thrice = agreement(
        _scripted_run(tmp_path, "thrice", tripled_judge), _scripted_csv(tmp_path / "thrice.csv", tripled_ratings)
    )
    a, b = once.criteria[0].ceiling, thrice.criteria[0].ceiling
    assert (a.items, b.items, a.sessions, b.sessions) == (40, 120, 8, 8)
    for x, y in ((a.judge, b.judge), (a.humans, b.humans), (a.difference, b.difference)):
        assert x.low is not None and x.high is not None and x.high > x.low
        assert (y.value, y.low, y.high) == pytest.approx((x.value, x.low, x.high))


def test_verdicts_and_the_rule_are_shown(tmp_path: Path) -> None:
    ratings = _scripted_labels(sessions=10, turns=6)
    run_dir = _scripted_run(tmp_path, "copies", {item: pair[0] for item, pair in ratings.items()})
    report = agreement(run_dir, _scripted_csv(tmp_path / "labels.csv", ratings))
    ceiling = report.criteria[0].ceiling
    markdown = render_agreement_markdown(report)
    for text in (_printed(report), markdown):
        assert analysis.WITHIN in text and "wholly below 0" in text
        assert f"{ceiling.judge.value:.2f} [{ceiling.judge.low:.2f}, {ceiling.judge.high:.2f}]" in text
        assert f"{ceiling.humans.value:.2f} [{ceiling.humans.low:.2f}, {ceiling.humans.high:.2f}]" in text
    assert "| criterion | items | sessions | judge-human kappa | human-human kappa | difference | verdict |" in markdown


# --- (8) unmatched rows, listed --------------------------------------------------------------------------


def test_unmatched_label_rows_are_listed_with_their_lines(seed_run: Path, tmp_path: Path) -> None:
    ignoring = IGNORING_SEED.stem
    matched = _ok(seed_run, "slow_down_responsiveness")[0]
    rows = [[matched.transcript_id, matched.turn_index, "slow_down_responsiveness", 3, "r1"]]
    rows += [[f"9{i:02d}_gone", 9, "slow_down_responsiveness", 3, "r1"] for i in range(6)]
    rows += [[ignoring, 8, "slow_down_responsiveness", 1, "r2"], [ignoring, 1, "slow_down_responsiveness", 2, "r2"]]
    report = agreement(seed_run, _write(tmp_path / "unmatched.csv", rows))
    listed = [(r.line, r.transcript_id, r.turn_index, r.criterion_id, r.rater, r.reason) for r in report.unmatched]
    assert listed == [
        *[(3 + i, f"9{i:02d}_gone", 9, "slow_down_responsiveness", "r1", "transcript not in run") for i in range(6)],
        (9, ignoring, 8, "slow_down_responsiveness", "r2", "no such item"),
        (10, ignoring, 1, "slow_down_responsiveness", "r2", "judge said not applicable"),
    ]
    markdown = render_agreement_markdown(report)
    assert "Label rows compared with nothing (8)" in markdown
    for line, transcript, turn, criterion, rater, reason in listed:
        assert f"| {line} | {transcript} | {turn} | {criterion} | {rater} | {reason} |" in markdown
    text = _printed(report)
    assert "Label rows compared with nothing: 8, the first 5 (all in agreement.md)" in text
    assert "904_gone" in text and "905_gone" not in text and "judge said not applicable" in text


def test_agreement_md_shows_rater_names_and_paths_as_text(seed_run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "<script>x"
    folder.mkdir()
    j = _ok(seed_run, "questions_asked")[0]
    labels = _write(folder / "labels.csv", [[j.transcript_id, j.turn_index, "questions_asked", 1, "<b>ann</b>|bob"]])
    markdown = render_agreement_markdown(agreement(seed_run, labels))
    assert "<b>" not in markdown and "<script>" not in markdown
    assert "&lt;b&gt;ann&lt;/b&gt;\\|bob" in markdown and "&lt;script&gt;x" in markdown


# --- (9) two runs against the same labels: before and after a rubric edit -------------------------------


def test_against_sets_two_runs_side_by_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from evaluator.cli.main import main

    ratings = _scripted_labels(sessions=10, turns=6)
    rng = random.Random(2)
    before = _scripted_run(tmp_path, "before", {item: rng.randint(1, 5) for item in ratings})
    after = _scripted_run(tmp_path, "after", {item: pair[1] for item, pair in ratings.items()})
    labels = _scripted_csv(tmp_path / "labels.csv", ratings)
    monkeypatch.setenv("COLUMNS", "200")
    capsys.readouterr()
    assert main(["agree", str(before), str(labels), "--against", str(after)]) == 0
    out = capsys.readouterr().out

    (shift,) = against(agreement(before, labels), agreement(after, labels)).shifts
    assert (shift.items, shift.sessions) == (60, 10)
    assert shift.before.value == pytest.approx(_criterion(agreement(before, labels), LIKERT["id"]).ceiling.judge.value)
    assert shift.after.value == pytest.approx(_criterion(agreement(after, labels), LIKERT["id"]).ceiling.judge.value)
    assert shift.difference.value == pytest.approx(shift.after.value - shift.before.value)
    assert shift.difference.low is not None and shift.difference.low > 0  # the edit helped, beyond doubt
    written = (after / "agreement-vs-before.md").read_text(encoding="utf-8")
    for cell in (
        f"{shift.before.value:.2f} [{shift.before.low:.2f}, {shift.before.high:.2f}]",
        f"{shift.after.value:.2f} [{shift.after.low:.2f}, {shift.after.high:.2f}]",
        f"{shift.difference.value:+.2f} [{shift.difference.low:+.2f}, {shift.difference.high:+.2f}]",
    ):
        assert cell in out and cell in written
    assert "run before (before) and run after (after)" in written and LIKERT["id"] in out


def test_against_names_criteria_judged_in_one_run_only(tmp_path: Path) -> None:
    ratings = _scripted_labels(sessions=5, turns=4)
    before = _scripted_run(tmp_path, "before", {item: pair[0] for item, pair in ratings.items()})
    rows = [[t, turn, LIKERT["id"], a, "r1"] for (t, turn), (a, _) in ratings.items()]
    rows += [[t, turn, BINARY["id"], 1, "r1"] for (t, turn) in ratings]
    judgments = [judgment(t, turn, a) for (t, turn), (a, _) in ratings.items()]
    judgments += [judgment(t, turn, 1, criterion=BINARY["id"]) for (t, turn) in ratings]
    after = write_run(tmp_path, "after", make_rubric(LIKERT, BINARY), judgments)
    labels = _write(tmp_path / "labels.csv", rows[: len(ratings)])
    report = against(agreement(before, labels), agreement(after, _write(tmp_path / "both.csv", rows)))
    assert [s.criterion.id for s in report.shifts] == [LIKERT["id"]]
    assert report.notes == [f"{BINARY['id']}: labelled, but not judged in run before"]


def test_verdicts_keep_every_figure_at_80_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from evaluator.cli.main import main

    ratings = _scripted_labels(sessions=10, turns=6)
    rng = random.Random(11)
    run_dir = _scripted_run(tmp_path, "random", {item: rng.randint(1, 5) for item in ratings})
    labels = _scripted_csv(tmp_path / "labels.csv", ratings)
    monkeypatch.setenv("COLUMNS", "80")
    capsys.readouterr()
    assert main(["agree", str(run_dir), str(labels)]) == 0
    out = capsys.readouterr().out
    assert all(len(line) <= 80 for line in out.splitlines() if line[:1] in "┏┃┡│└")
    ceiling = agreement(run_dir, labels).criteria[0].ceiling
    for k, signed in ((ceiling.judge, False), (ceiling.humans, False), (ceiling.difference, True)):
        assert fmt_interval(k.value, k.low, k.high, signed=signed) in out
    assert analysis.BELOW in out
