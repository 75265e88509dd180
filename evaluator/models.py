"""The pydantic models every stage shares: one place, so stages agree on the data by construction."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from evaluator import patterns
from evaluator.errors import UnknownCriterion

Speaker = Literal["therapist", "patient", "other"]
Status = Literal["ok", "not_applicable", "unscored", "error"]
STATUSES: tuple[Status, ...] = ("ok", "not_applicable", "unscored", "error")
JudgeMode = Literal["per-criterion", "per-turn", "per-transcript"]


class _Strict(BaseModel):
    """Unknown keys are mistakes in hand-written files, so they are refused rather than ignored. A model's
    validator is built when it is first used, not at import: each command uses only some of these models,
    and building the others' validators was about a quarter of the time importing them took."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


# --- transcripts -------------------------------------------------------------------------------


class Turn(_Strict):
    """One utterance. `index` is its 0-based position among the transcript's turns, in file order."""

    index: int = Field(ge=0)
    speaker: Speaker
    label: str = Field(description="The speaker label as written in the source, e.g. 'Counselor'.")
    text: str
    line: int | None = Field(default=None, description="1-based line in the source file, for errors.")


class Transcript(_Strict):
    id: str
    source: str = Field(description="The file the transcript was read from.")
    turns: list[Turn]
    metadata: dict[str, Any] = Field(default_factory=dict)
    unblind: bool = Field(
        default=False,
        exclude=True,
        description="Whether judge prompts may carry this transcript's id, file name and metadata (--unblind): "
        "set when it is read for a run, so every path that renders a prompt honours it; not content, never saved.",
    )

    def content_hash(self) -> str:
        """Changes exactly when what a run records of the transcript changes: the id, the turns as read
        and the metadata (which groups the results, and which a judge sees with --unblind); not the file's
        path or line numbers, so a moved or re-wrapped file still matches. manifest.check_resumable tells a
        change of metadata alone from an edit of the turns."""
        content = self.model_dump(mode="json", exclude={"source": True, "turns": {"__all__": {"line"}}})
        return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]

    def therapist_turns(self) -> list[Turn]:
        return [t for t in self.turns if t.speaker == "therapist"]

    def previous_patient_turn(self, index: int) -> Turn | None:
        """The patient turn the therapist turn at `index` answers: the nearest patient turn before it."""
        for turn in reversed(self.turns[:index]):
            if turn.speaker == "patient":
                return turn
        return None


# --- rubrics -------------------------------------------------------------------------------------


class BinaryScale(_Strict):
    """yes / no, scored 1 / 0."""

    type: Literal["binary"]
    yes: str = Field(default="", description="What a 'yes' means for this criterion.")
    no: str = Field(default="", description="What a 'no' means for this criterion.")

    def allowed(self) -> list[int]:
        return [0, 1]


class LikertScale(_Strict):
    """Integer min..max with an anchor text for every level, so a judge and a human read the same scale."""

    type: Literal["likert"]
    min: int
    max: int
    anchors: dict[int, str]

    @model_validator(mode="after")
    def _anchors_cover_levels(self) -> LikertScale:
        if self.max <= self.min:
            raise ValueError(f"max ({self.max}) must be greater than min ({self.min})")
        levels = set(range(self.min, self.max + 1))
        unknown = sorted(set(self.anchors) - levels)
        if unknown:
            raise ValueError(f"anchors {unknown} lie outside {self.min}..{self.max}")
        if self.min not in self.anchors or self.max not in self.anchors:
            raise ValueError(f"anchors must describe at least both ends of the scale ({self.min} and {self.max})")
        return self

    def allowed(self) -> list[int]:
        return list(range(self.min, self.max + 1))


class Category(_Strict):
    label: str
    description: str
    value: float | None = Field(default=None, description="Optional numeric value used in summaries.")


class CategoricalScale(_Strict):
    type: Literal["categorical"]
    categories: list[Category] = Field(min_length=2)

    @field_validator("categories")
    @classmethod
    def _unique_labels(cls, categories: list[Category]) -> list[Category]:
        labels = [c.label for c in categories]
        duplicated = sorted({label for label in labels if labels.count(label) > 1})
        if duplicated:
            raise ValueError(f"category labels must be unique; repeated: {duplicated}")
        return categories

    def allowed(self) -> list[str]:
        return [c.label for c in self.categories]

    def value_of(self, label: str) -> float | None:
        return next((c.value for c in self.categories if c.label == label), None)


class CountScale(_Strict):
    """A count of behaviours in the turn (e.g. questions asked), as MITI codes utterances."""

    type: Literal["count"]
    unit: str = Field(description="What is counted, e.g. 'questions'.")
    max: int | None = Field(default=None, ge=0)

    def allowed(self) -> list[int] | None:
        return list(range(self.max + 1)) if self.max is not None else None


Scale = Annotated[BinaryScale | LikertScale | CategoricalScale | CountScale, Field(discriminator="type")]


class VerdictCondition(_Strict):
    """Applies only where another criterion of the same turn was judged ok with one of these verdicts."""

    criterion: str
    is_: list[int | str] = Field(alias="is", min_length=1)

    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)


class AppliesWhen(_Strict):
    """Every condition given must hold. Pattern and marker rules cost nothing; a verdict condition
    waits for the other criterion's judgment, so a cheap rule can prefilter and a judge confirm."""

    previous_patient_turn_matches: list[str] | None = Field(
        default=None, description="Regular expressions (case-insensitive); any one matching is enough."
    )
    previous_patient_turn_marker: str | None = Field(
        default=None, description="A named detector from evaluator.markers, e.g. 'pacing_request'."
    )
    criterion: VerdictCondition | None = None

    @field_validator("previous_patient_turn_matches")
    @classmethod
    def _patterns_are_safe(cls, values: list[str] | None) -> list[str] | None:
        """Compiled and probed for catastrophic backtracking now, so a bad pattern is refused at load."""
        for pattern in values or []:
            problem = patterns.problem(pattern)
            if problem is not None:
                raise ValueError(f"pattern {pattern[:200]!r} {problem}")
        return values


class Example(_Strict):
    """A few-shot example: a therapist turn (optionally with the patient turn before it) and its verdict."""

    patient: str | None = None
    therapist: str
    verdict: int | str
    rationale: str = ""


class Criterion(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    question: str
    scale: Scale
    applies_when: AppliesWhen | None = None
    examples: list[Example] = Field(default_factory=list)
    weight: float = Field(default=1.0, ge=0)
    tags: list[str] = Field(default_factory=list)
    check: str | None = Field(default=None, description="Name of a deterministic scorer in the rules judge.")
    better: Literal["higher", "lower", "neither"] = Field(
        default="higher",
        description="Which direction of the score is the better therapy; `neither` for descriptive criteria "
        "such as a patient marker, which summaries report without calling either end good.",
    )
    pass_at: float | None = Field(
        default=None,
        description="Score at or beyond which (in the 'better' direction) a turn meets the criterion; "
        "sessions report the share of applicable turns that do.",
    )

    @model_validator(mode="after")
    def _pass_at_needs_a_direction(self) -> Criterion:
        if self.pass_at is not None and self.better == "neither":
            raise ValueError("pass_at needs a direction: set better to higher or lower")
        return self

    def meets(self, score: float) -> bool | None:
        if self.pass_at is None:
            return None
        return score >= self.pass_at if self.better == "higher" else score <= self.pass_at


class Context(_Strict):
    """How much of the session the judge sees around the rated turn; `None` means all of it."""

    before: int | None = Field(default=6, ge=0)
    after: int = Field(default=0, ge=0)


class Rubric(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    version: int | str = 1
    title: str
    description: str = ""
    context: Context = Field(default_factory=Context)
    template: str | None = Field(default=None, description="Template file, relative to the rubric file.")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Generation parameters for this rubric's calls, e.g. max_tokens."
    )
    criteria: list[Criterion] = Field(min_length=1)
    source: str = Field(default="", exclude=True, description="The file the rubric was loaded from.")
    hash: str = Field(default="", exclude=True, description="Content hash of everything that can change a judgment.")
    criterion_hashes: dict[str, str] = Field(default_factory=dict, exclude=True)

    def criterion(self, criterion_id: str) -> Criterion:
        for criterion in self.criteria:
            if criterion.id == criterion_id:
                return criterion
        known = ", ".join(c.id for c in self.criteria)
        raise UnknownCriterion(f"rubric {self.id!r} has no criterion {criterion_id!r} (it has: {known})")


# --- work and results ----------------------------------------------------------------------------


def item_key(rubric_id: str, transcript_id: str, turn_index: int, criterion_id: str, sample: int = 0) -> str:
    """Stable across runs: the same rubric, transcript, turn, criterion and sample always get the same key.
    The rubric is part of it because two rubrics may use the same criterion id."""
    return f"{rubric_id}/{transcript_id}/{turn_index}/{criterion_id}/{sample}"


class Item(_Strict):
    """One unit of work: one criterion of one rubric on one therapist turn."""

    rubric_id: str
    transcript_id: str
    turn_index: int
    criterion_id: str
    sample: int = 0

    @property
    def key(self) -> str:
        return item_key(self.rubric_id, self.transcript_id, self.turn_index, self.criterion_id, self.sample)


class Message(_Strict):
    role: Literal["system", "user", "assistant"]
    content: str


class Usage(_Strict):
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


class Evidence(_Strict):
    quote: str
    found: bool = Field(description="Whether the quote occurs in the transcript; a False is flagged in reports.")


class Judgment(_Strict):
    key: str
    rubric_id: str
    rubric_version: int | str
    rubric_hash: str
    criterion_hash: str | None = Field(default=None, description="Changes exactly when this criterion's judgments can.")
    transcript_id: str
    turn_index: int
    criterion_id: str
    sample: int = 0
    status: Status
    score: float | None = None
    label: str | None = None
    rationale: str = ""
    evidence: list[Evidence] = Field(default_factory=list)
    judge: str
    model: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    template_hash: str | None = None
    prompt_hash: str | None = None
    usage: Usage = Field(default_factory=Usage)
    weighted_score: float | None = Field(
        default=None, description="Score weighted by the judge's top logprobs for the score token, where returned."
    )
    latency_s: float = 0.0
    attempts: int = Field(default=0, description="Replies asked for (re-asks after an invalid reply count).")
    transport_retries: int = Field(default=0, description="Requests repeated after 429s, 5xx, timeouts.")
    from_cache: bool = False
    unscored_reason: str | None = None
    error: str | None = None

    @model_validator(mode="after")
    def _key_names_the_rubric(self) -> Judgment:
        """Run folders written before keys named the rubric are read with today's keys, so resuming or
        comparing them matches items as a new run would."""
        legacy = f"{self.transcript_id}/{self.turn_index}/{self.criterion_id}/{self.sample}"
        if self.key == legacy:
            self.key = item_key(self.rubric_id, self.transcript_id, self.turn_index, self.criterion_id, self.sample)
        return self

    @model_validator(mode="after")
    def _verdict_only_when_ok(self) -> Judgment:
        if self.status != "ok" and (self.score is not None or self.label is not None):
            raise ValueError(f"a judgment with status {self.status!r} carries no score or label")
        if self.status == "ok" and self.score is None and self.label is None:
            raise ValueError("an ok judgment needs a score or a label")
        if self.status == "unscored" and not self.unscored_reason:
            raise ValueError("an unscored judgment needs its reason")
        return self

    @property
    def verdict(self) -> int | float | str | None:
        """The verdict as the scale states it: a label for categorical scales, else the integer score."""
        if self.label is not None:
            return self.label
        if self.score is not None and float(self.score).is_integer():
            return int(self.score)
        return self.score


AggregateMethod = Literal["auto", "mean", "median", "majority"]


class Aggregate(_Strict):
    """One item over its repeated samples (`--samples N`): the verdict and how much the samples agree."""

    key: str = Field(description="rubric/transcript/turn/criterion: the item key without the sample index.")
    rubric_id: str
    transcript_id: str
    turn_index: int
    criterion_id: str
    samples: int
    scored: int = Field(description="Samples with status ok.")
    status: Status
    method: Literal["mean", "median", "majority"]
    score: float | None = None
    label: str | None = None
    spread: float | None = Field(
        default=None,
        description="Standard deviation of the scores (mean, median), or the share of samples "
        "that disagree with the majority (majority).",
    )
    weighted_score: float | None = None
    unscored_reason: str | None = None

    @property
    def verdict(self) -> int | str | float | None:
        if self.label is not None:
            return self.label
        if self.score is not None and float(self.score).is_integer():
            return int(self.score)
        return self.score


class SkippedFile(_Strict):
    path: str
    error: str


MANIFEST_FORMAT = 4
"""1: up to November 2026 (rubric records as plain mappings, item keys without the rubric); 2: typed
rubric records, transcript hashes; 3: metadata sources, transcript inputs and blinding; 4: template
hashes of the mode's template (before, always the per-criterion one). All read the same way; a newer
format is refused by name."""


class RubricRecord(_Strict):
    """A rubric as the run judged with it: its definition is the snapshot reports and resume use."""

    version: int | str
    hash: str
    file: str
    definition: dict[str, Any]


class Subset(_Strict):
    """Which part of the plan a run judges: the prompt engineer's loop on a few turns or criteria.
    Every field empty means everything; the fields combine (an item must pass all of them)."""

    transcripts: list[str] = Field(default_factory=list, description="Transcript ids or fnmatch globs.")
    criteria: list[str] = Field(default_factory=list, description="`rubric_id/criterion_id` or a bare criterion id.")
    turns: tuple[int, int] | None = Field(default=None, description="Turn index range, both ends included.")
    limit: int | None = Field(default=None, description="The first N (turn, criterion) items in plan order.")
    prerequisites: list[str] = Field(
        default_factory=list,
        description="Criteria added because a selected criterion's applies_when reads their verdict.",
    )

    def is_empty(self) -> bool:
        return not (self.transcripts or self.criteria or self.turns is not None or self.limit is not None)

    def describe(self) -> str:
        """One line for headers: what was selected, so a partial run is never read as a full one."""
        parts = []
        if self.transcripts:
            parts.append("transcripts " + ", ".join(self.transcripts))
        if self.criteria:
            parts.append("criteria " + ", ".join(self.criteria))
        if self.prerequisites:
            parts.append("plus prerequisites " + ", ".join(self.prerequisites))
        if self.turns is not None:
            low, high = self.turns
            parts.append(f"turn {low}" if low == high else f"turns {low}-{high}")
        if self.limit is not None:
            parts.append(f"first {self.limit} items")
        return "; ".join(parts) or "everything"


class RunManifest(_Strict):
    format_version: int = Field(default=1, description="The manifest's layout; see MANIFEST_FORMAT.")
    run_id: str
    created_at: str
    finished_at: str | None = None
    command: list[str]
    package_version: str
    transcripts: list[str] = Field(description="Transcript ids evaluated.")
    transcript_metadata: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per transcript id: its metadata (condition, model, site...)."
    )
    transcript_files: list[str]
    transcript_hashes: dict[str, str] = Field(
        default_factory=dict,
        description="Per transcript id: the content hash of the transcript as read; a resumed run refuses changes.",
    )
    skipped_files: list[SkippedFile] = Field(default_factory=list)
    rubrics: dict[str, RubricRecord] = Field(description="Per rubric id: version, hash, file and definition.")
    template_hashes: dict[str, str]
    judge: dict[str, Any] = Field(description="Judge name and configuration; never a key.")
    mode: JudgeMode = "per-criterion"
    samples: int = 1
    aggregate: AggregateMethod = "auto"
    items_planned: int = 0
    counts: dict[str, int] = Field(default_factory=dict)
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float | None = None
    elapsed_s: float = 0.0
    judging_s: float | None = Field(
        default=None, description="This session's first judge call to its last judgment: the run window."
    )
    complete: bool = False
    stopped: str | None = Field(default=None, description="Why the run stopped early, if it did.")
    subset: Subset | None = Field(default=None, description="Set when the run judged only part of the plan.")
    metadata_file: str | None = Field(default=None, description="The sidecar CSV of transcript metadata (--metadata).")
    meta_from_path: str | None = Field(default=None, description="The path pattern metadata was read with.")
    transcript_inputs: list[str] = Field(
        default_factory=list, description="The transcript files and folders as named; paths are read below them."
    )
    unblind: bool = Field(default=False, description="Whether the judge saw transcript ids and metadata (--unblind).")

    @field_validator("format_version")
    @classmethod
    def _readable(cls, version: int) -> int:
        if version > MANIFEST_FORMAT:
            raise ValueError(
                f"written in manifest format {version} by a newer evaluator (this one reads up to "
                f"{MANIFEST_FORMAT}); upgrade therapist-evaluator to read it"
            )
        return version


# --- batch queues (evaluator batch) --------------------------------------------------------------


class BatchCall(_Strict):
    """One request line of a batch file: the items its reply answers (several in grouped modes), and for a
    re-ask the conversation after the rendered prompt (earlier replies, and what was wrong with each)."""

    custom_id: str
    keys: list[str] = Field(min_length=1)
    attempt: int = Field(default=1, ge=1, description="Replies asked for so far, this one included.")
    reasks: list[Message] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage, description="Tokens of the earlier attempts, charged when settled.")


BatchStatus = Literal[
    "preparing",
    "exported",
    "validating",
    "failed",
    "in_progress",
    "finalizing",
    "completed",
    "expired",
    "cancelling",
    "cancelled",
]
BATCH_ENDED: tuple[BatchStatus, ...] = ("failed", "completed", "expired", "cancelled")


class BatchRecord(_Strict):
    """One batch of a run, as the provider (or an exported file) holds it; every later command resumes
    from these ids. `preparing` is a batch written locally whose upload or creation may not have finished."""

    name: str = Field(description="Its files under <run>/batch/: NAME.requests.jsonl and NAME.calls.jsonl.")
    batch_id: str | None = None
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    status: BatchStatus = "preparing"
    requests: int
    completed: int = 0
    failed: int = 0
    errors: list[str] = Field(default_factory=list, description="Why the provider refused the batch, if it did.")
    judged_offset: int = Field(
        default=0, description="Size of judgments.jsonl when the batch was made: later lines are its items' verdicts."
    )
    created_at: str
    collected: bool = False


class BatchState(_Strict):
    """<run>/batches.json: the run's batches, and the re-asks waiting for the next submit."""

    batches: list[BatchRecord] = Field(default_factory=list)
    reasks: list[BatchCall] = Field(default_factory=list)
    waiting: int = Field(default=0, description="Items whose prerequisite's verdict is not in yet.")
