"""Summaries of a run: per rubric, per criterion and per transcript, as one object every view renders.

Every status is counted, so a reader sees how many items were not applicable, unscored or errored
beside every mean: a mean over the few items that happened to be scored is never shown alone.
Session-level figures (e.g. the share of slow-down requests honoured) come from turn judgments
through each criterion's `pass_at`. Each criterion's mean over the run carries its 95% interval from
resampling whole sessions. The terminal, summary.md and report.html all render this object, so they
cannot disagree on a figure; nothing here prints, formats or writes a file.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from math import copysign
from pathlib import Path
from statistics import mean
from typing import Literal

from evaluator.analysis.stats import Estimate, cluster_bootstrap_mean
from evaluator.models import Aggregate, CategoricalScale, Criterion, Judgment, Rubric, RunManifest
from evaluator.results import Item, RunData, open_run, stream_items

Tone = Literal["good", "mid", "bad", "neutral"]


_SCORES: dict[tuple[float, float], float] = {}
"""One float object per score value: a run gives a few distinct scores (a scale's levels) a million
times, and each cell keeps every score, so a cell's list points at these rather than at a float of its
own per judgment (24 bytes a judgment, twice: the run's cell and the transcript's)."""


def _shared(score: float) -> float:
    if len(_SCORES) >= 4096:  # a count scale without a maximum could give any number of values
        _SCORES.clear()
    return _SCORES.setdefault((score, copysign(1.0, score)), score)  # the sign tells -0.0 from 0.0


@dataclass(slots=True)
class Cell:
    """Judgments of one criterion over some set of turns (all of them, or one transcript's); one per
    transcript and criterion, so it has slots and no attribute dict."""

    criterion: Criterion
    counts: Counter[str] = field(default_factory=Counter)
    scores: list[float] = field(default_factory=list)
    verdicts: Counter[str] = field(default_factory=Counter)
    estimate: Estimate | None = None
    """The mean's 95% interval from resampling whole sessions; set for a criterion over the whole run,
    None for one transcript's cell (within one session only turns could be resampled)."""
    weighted: list[float] = field(default_factory=list)
    """Logprob-weighted scores (`--logprobs`), of the items where the endpoint returned them."""
    repeated: int = 0
    """Items with two or more scored samples (`--samples N`)."""
    unanimous: int = 0
    """Of those, items whose samples all gave the same verdict."""

    def add(self, judgment: Item) -> None:
        self.counts[judgment.status] += 1
        if judgment.status == "ok":
            self.verdicts[str(judgment.verdict)] += 1
            if judgment.score is not None:
                self.scores.append(_shared(judgment.score))
            if judgment.weighted_score is not None:
                self.weighted.append(judgment.weighted_score)
            if isinstance(judgment, Aggregate) and judgment.scored > 1:
                self.repeated += 1
                self.unanimous += judgment.spread == 0

    @property
    def weighted_mean(self) -> float | None:
        return mean(self.weighted) if self.weighted else None

    @property
    def self_consistency(self) -> float | None:
        """Share of repeated items whose samples all agree: how far one judgment of an item is the judge's
        answer rather than one draw of several. Not chance-corrected: three random draws agree 25% of the
        time on yes/no and 4% on a 1-5 scale."""
        return self.unanimous / self.repeated if self.repeated else None

    @property
    def mean(self) -> float | None:
        return mean(self.scores) if self.scores else None

    @property
    def pass_share(self) -> float | None:
        """Share of scored turns that meet the criterion's `pass_at`, e.g. slow-down requests honoured."""
        if self.criterion.pass_at is None or not self.scores:
            return None
        return sum(bool(self.criterion.meets(s)) for s in self.scores) / len(self.scores)

    def levels(self) -> list[tuple[str, int]]:
        """The verdicts given and how often, in scale order (labels as the rubric lists them, numbers
        ascending); levels never given are left out."""
        scale = self.criterion.scale
        if isinstance(scale, CategoricalScale):
            order = scale.allowed()
        elif scale.type == "binary":
            order = ["1", "0"]
        else:
            order = sorted(self.verdicts, key=float)
        return [(v, self.verdicts[v]) for v in order if self.verdicts.get(v)]


@dataclass
class RubricSummary:
    rubric: Rubric
    overall: dict[str, Cell]
    by_transcript: dict[str, dict[str, Cell]]
    reasons: dict[str, str | None] = field(default_factory=dict)
    """Per criterion, the most common reason its items were not scored (None when all were, or none given)."""
    _tops: dict[str, float | None] = field(default_factory=dict, repr=False, compare=False)

    def top(self, criterion_id: str) -> float | None:
        """The largest score given: the end of a count scale that has no maximum, for tones. Worked out once
        per criterion: a report tones every judgment and every transcript's mean with it."""
        if criterion_id not in self._tops:
            self._tops[criterion_id] = max(self.overall[criterion_id].scores, default=None)
        return self._tops[criterion_id]

    def score_tone(self, criterion: Criterion, score: float | None) -> Tone:
        return score_tone(criterion, score, self.top(criterion.id))

    def mean_tone(self, cell: Cell) -> Tone:
        """How good a cell's mean is on the scale (pass_at applies to turns, not to means)."""
        if cell.mean is None:
            return "neutral"
        return tone_of(goodness(cell.criterion, cell.mean, self.top(cell.criterion.id)))


@dataclass
class RunSummary:
    run: RunData
    rubrics: list[RubricSummary]
    counts: Counter[str]
    """Items by status (samples folded)."""
    judged: int
    """Judgments in the run folder (the latest per key, every sample)."""
    turns_judged: int
    """Therapist turns with at least one judgment."""

    @property
    def run_dir(self) -> Path:
        return self.run.run_dir

    @property
    def manifest(self) -> RunManifest:
        return self.run.manifest

    @property
    def judgments(self) -> list[Judgment]:
        """Every judgment as read (samples unfolded), read on first use: the summary itself holds figures."""
        return self.run.judgments

    @property
    def missing(self) -> int:
        """Planned judgments not in the run folder (an incomplete run)."""
        return max(self.manifest.items_planned - self.judged, 0)


def summarize(run: RunData | Path) -> RunSummary:
    """Summarise a run (a folder, or one already opened); rubrics come from the manifest's snapshot,
    so a summary describes the rubric as it was when judged, whatever the file says now. One pass over
    judgments.jsonl that keeps figures (scores, counts), not judgments, so memory grows with the run by
    a few numbers per judgment; with `--samples N` an item's samples are folded as they come in."""
    data = run if isinstance(run, RunData) else open_run(run)
    tally = _Tally(data)
    for item in stream_items(data, seen=tally.judgment):
        tally.item(item)
    return tally.summary()


class _RubricTally:
    """One rubric's cells, over the run and per transcript, for every criterion it defines (narrowed to
    the planned ones at the end, when the judged ones are known)."""

    def __init__(self, rubric: Rubric, transcripts: list[str]) -> None:
        self.rubric = rubric
        self.overall = self.cells()
        self.by_transcript: dict[str, dict[str, Cell]] = {t: self.cells() for t in transcripts}

    def cells(self) -> dict[str, Cell]:
        return {c.id: Cell(c) for c in self.rubric.criteria}

    def add(self, item: Item) -> None:
        if item.criterion_id not in self.overall:
            return
        self.overall[item.criterion_id].add(item)
        if item.transcript_id not in self.by_transcript:  # not setdefault: that would build the cells for every item
            self.by_transcript[item.transcript_id] = self.cells()
        self.by_transcript[item.transcript_id][item.criterion_id].add(item)


class _Tally:
    def __init__(self, data: RunData) -> None:
        self.data = data
        self.rubrics = {rid: _RubricTally(r, data.manifest.transcripts) for rid, r in data.rubrics.items()}
        self.counts: Counter[str] = Counter()
        self.reasons: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        self.criteria: dict[str, set[str]] = defaultdict(set)
        self.judged = 0
        self.turns: dict[str, set[int]] = defaultdict(set)
        """Per transcript, the turns judged: the id once, not in a tuple of its own per turn."""

    def judgment(self, judgment: Judgment) -> None:
        self.judged += 1
        self.turns[judgment.transcript_id].add(judgment.turn_index)
        self.criteria[judgment.rubric_id].add(judgment.criterion_id)
        if judgment.status != "ok":
            reason = judgment.unscored_reason or judgment.error or judgment.rationale
            self.reasons[(judgment.rubric_id, judgment.criterion_id)][reason] += 1

    def item(self, item: Item) -> None:
        self.counts[item.status] += 1
        tally = self.rubrics.get(item.rubric_id)
        if tally is not None:
            tally.add(item)

    def summary(self) -> RunSummary:
        summaries = []
        for rubric_id, tally in self.rubrics.items():
            rubric = _planned(self.data.manifest, tally.rubric, self.criteria[rubric_id])
            if rubric.criteria:
                summaries.append(self._rubric_summary(rubric, tally))
        return RunSummary(self.data, summaries, self.counts, self.judged, sum(map(len, self.turns.values())))

    def _rubric_summary(self, rubric: Rubric, tally: _RubricTally) -> RubricSummary:
        keep = [c.id for c in rubric.criteria]
        overall = {cid: tally.overall[cid] for cid in keep}
        by_transcript = {t: {cid: cells[cid] for cid in keep} for t, cells in tally.by_transcript.items()}
        for criterion_id, cell in overall.items():
            cell.estimate = cluster_bootstrap_mean({t: cs[criterion_id].scores for t, cs in by_transcript.items()})
        reasons = {cid: _common_reason(self.reasons.get((rubric.id, cid))) for cid in keep}
        return RubricSummary(rubric, overall, by_transcript, reasons)


def _planned(manifest: RunManifest, rubric: Rubric, judged: set[str]) -> Rubric:
    """The rubric narrowed to the criteria a `--criterion` subset planned (the names as evaluator.plan
    matches them, `rubric/criterion` or a bare id, plus the prerequisites it added) and any criterion
    judged all the same, so a subset's summary does not list criteria nobody asked for as zero counts."""
    subset = manifest.subset
    if subset is None or not subset.criteria:
        return rubric
    names = [name.rpartition("/") for name in [*subset.criteria, *subset.prerequisites]]
    wanted = {cid for rid, sep, cid in names if not sep or rid == rubric.id} | judged
    return rubric.model_copy(update={"criteria": [c for c in rubric.criteria if c.id in wanted]})


def _common_reason(reasons: Counter[str] | None) -> str | None:
    if not reasons:
        return None
    reasons.pop("", None)
    return reasons.most_common(1)[0][0] if reasons else None


# --- how good a score is (for colour) -----------------------------------------------------------


def score_range(criterion: Criterion, top: float | None) -> tuple[float, float] | None:
    """Worst-to-best span of the scale; a count without a maximum uses the largest count observed."""
    scale = criterion.scale
    if isinstance(scale, CategoricalScale):
        values = [c.value for c in scale.categories if c.value is not None]
        return (min(values), max(values)) if values else None
    if scale.type == "binary":
        return (0.0, 1.0)
    if scale.type == "likert":
        return (float(scale.min), float(scale.max))
    high = scale.max if scale.max is not None else top
    return (0.0, float(high)) if high else None


def goodness(criterion: Criterion, value: float, top: float | None) -> float | None:
    """0 worst .. 1 best on the criterion's scale in its `better` direction; None when neither end is better."""
    span = score_range(criterion, top)
    if span is None or span[1] == span[0]:
        return None
    share = (value - span[0]) / (span[1] - span[0])
    return {"higher": share, "lower": 1 - share}.get(criterion.better)


def tone_of(value: float | None) -> Tone:
    if value is None:
        return "neutral"
    return "good" if value >= 2 / 3 else "bad" if value <= 1 / 3 else "mid"


def score_tone(criterion: Criterion, score: float | None, top: float | None) -> Tone:
    """A turn meets `pass_at` or not (honouring `better`); without one, the score's place on the scale decides."""
    if score is None:
        return "neutral"
    if criterion.pass_at is not None:
        return "good" if criterion.meets(score) else "bad"
    return tone_of(goodness(criterion, score, top))
