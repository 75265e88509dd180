"""What every transcript reader shares: how speaker labels and chat roles map to therapist and
patient, the CSV column layout, the error type that locates a problem in a file, and how turns
become a numbered Transcript."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple, get_args

from evaluator.errors import EvaluatorError
from evaluator.files import located
from evaluator.metadata import MetadataSources
from evaluator.models import Speaker, Transcript, Turn

SPEAKERS: tuple[Speaker, ...] = get_args(Speaker)

# The command-line options error messages point to; the CLI must offer these spellings.
SPEAKER_OPTION = "--speaker"
CSV_COLUMN_OPTION = "--csv-column"

DEFAULT_ALIASES: Mapping[str, Speaker] = MappingProxyType(
    {
        **dict.fromkeys(("Therapist", "Counselor", "Counsellor", "Clinician", "Assistant", "T"), "therapist"),
        **dict.fromkeys(("Patient", "Client", "User", "P", "C"), "patient"),
    }
)
DEFAULT_ROLE_MAP: Mapping[str, Speaker | None] = MappingProxyType(
    {"assistant": "therapist", "user": "patient", "system": None}
)


def speaker_key(label: str) -> str:
    """Labels compare case- and spacing-insensitively, so 'COUNSELOR ' matches 'Counselor'."""
    return " ".join(label.split()).casefold()


class TranscriptError(EvaluatorError, ValueError):
    """Bad input, located precisely enough that the user can open the file and fix it."""

    def __init__(self, path: str | Path, line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        super().__init__(f"{self.path}{': ' if line is None else ', '}{located(line, problem)}")


@dataclass(frozen=True)
class CsvColumns:
    """Which CSV columns hold what; `None` for transcript means one transcript per file, for order file order."""

    transcript: str | None = "transcript_id"
    order: str | None = "utterance_id"
    speaker: str = "interlocutor"
    text: str = "utterance_text"

    def named(self) -> dict[str, str]:
        """Role -> column for the columns that must exist in the file."""
        roles = {"transcript": self.transcript, "order": self.order, "speaker": self.speaker, "text": self.text}
        return {role: column for role, column in roles.items() if column is not None}


@dataclass(frozen=True)
class ReadOptions:
    """How labels, chat roles and CSV columns map onto the model, where metadata comes from, and whether the
    judge may see it; the defaults read common files as they are."""

    speaker_aliases: Mapping[str, Speaker] = field(default_factory=lambda: DEFAULT_ALIASES)
    role_map: Mapping[str, Speaker | None] = field(default_factory=lambda: DEFAULT_ROLE_MAP)
    csv_columns: CsvColumns = field(default_factory=CsvColumns)
    metadata: MetadataSources = field(default_factory=MetadataSources)
    unblind: bool = False
    """Let judge prompts carry each transcript's id, file name and metadata (by default they carry none)."""

    def with_aliases(self, extra: Mapping[str, str]) -> ReadOptions:
        """Add user mappings such as {"Doctor": "therapist"}; they also apply to JSON roles and override defaults.

        Raises ValueError for an empty label or a role other than therapist, patient or other.
        """
        checked: dict[str, Speaker] = {}
        for label, role in extra.items():
            name = label.strip().rstrip(":").strip()
            speaker = role.strip().casefold()
            if not name:
                raise ValueError(f"cannot map {label!r} to {role!r}: the speaker label is empty")
            if speaker not in SPEAKERS:
                raise ValueError(f"cannot map {name!r} to {role!r}: the role must be one of {', '.join(SPEAKERS)}")
            checked[name] = speaker
        keys = {speaker_key(name) for name in checked}
        aliases = {k: v for k, v in self.speaker_aliases.items() if speaker_key(k) not in keys} | checked
        roles = {k: v for k, v in self.role_map.items() if speaker_key(k) not in keys} | checked
        return replace(self, speaker_aliases=MappingProxyType(aliases), role_map=MappingProxyType(roles))

    @cached_property
    def _aliases(self) -> dict[str, Speaker]:
        return {speaker_key(k): v for k, v in self.speaker_aliases.items()}

    @cached_property
    def _roles(self) -> dict[str, Speaker | None]:
        return {speaker_key(k): v for k, v in self.role_map.items()}

    def speaker(self, label: str) -> Speaker | None:
        """The role for a text label or CSV speaker value, or None when it is not known."""
        return self._aliases.get(speaker_key(label))

    def is_role(self, role: str) -> bool:
        """Whether a JSON chat role is known (possibly as a role to skip)."""
        return speaker_key(role) in self._roles or speaker_key(role) in self._aliases

    def role(self, role: str) -> Speaker | None:
        """The speaker for a known JSON chat role; None means the message is skipped."""
        return self._roles[speaker_key(role)] if speaker_key(role) in self._roles else self._aliases[speaker_key(role)]

    def known_labels(self) -> str:
        """The labels accepted, grouped by role, for error messages."""
        groups = (
            f"{', '.join(k for k, v in self.speaker_aliases.items() if v == s)} ({s})"
            for s in SPEAKERS
            if s in self.speaker_aliases.values()
        )
        return "; ".join(groups)

    def known_roles(self) -> str:
        """The JSON chat roles accepted and what each becomes, for error messages."""
        return ", ".join(f"{k} ({v or 'skipped'})" for k, v in self.role_map.items())


class Utterance(NamedTuple):
    """A turn before its index is known: indices are assigned once, when the transcript is built."""

    speaker: Speaker
    label: str
    text: str
    line: int | None


def map_hint(label: str) -> str:
    """The command-line fix for an unknown label, quoted when the shell would split it."""
    mapping = f"{label}=therapist" if " " not in label else f'"{label}=therapist"'
    return f"map it with {SPEAKER_OPTION} {mapping} (or patient, or other)"


def unknown_speaker(label: str, options: ReadOptions) -> str:
    if not label:
        return f"empty speaker label; known labels: {options.known_labels()}"
    return f'unknown speaker label "{label}"; known labels: {options.known_labels()}; {map_hint(label)}'


MAX_ID_LENGTH = 200
# Line breaks, tabs and other control characters: an id heads table columns, keys and file listings.
_ID_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def check_transcript_id(path: Path, line: int | None, transcript_id: str, where: str) -> None:
    """Refuse an id no result can carry: empty, over MAX_ID_LENGTH characters (a whole text pasted into
    the id column) or holding a line break. `where` says where it comes from, e.g. 'the "session_id" key'."""
    shown = transcript_id if len(transcript_id) <= 40 else transcript_id[:40] + "..."
    if not transcript_id.strip():
        problem = f"the transcript id from {where} is empty"
    elif len(transcript_id) > MAX_ID_LENGTH:
        problem = f'the transcript id "{shown}" from {where} is {len(transcript_id):,} characters long'
        problem += f" (at most {MAX_ID_LENGTH})"
    elif _ID_BREAKS.search(transcript_id):
        problem = f"the transcript id {shown!r} from {where} holds a line break, tab or control character"
    else:
        return
    raise TranscriptError(path, line, f"{problem}; give the session a short id on one line")


def build_transcript(
    path: Path, transcript_id: str, turns: Sequence[Utterance], metadata: dict[str, Any]
) -> Transcript:
    """Number the turns and refuse a transcript with no therapist turn, since nothing in it can be judged."""
    if not any(turn.speaker == "therapist" for turn in turns):
        seen = ", ".join(sorted({f"{t.label} ({t.speaker})" for t in turns})) or "none"
        raise TranscriptError(
            path,
            None,
            f'transcript "{transcript_id}" has no therapist turns (speakers seen: {seen}); '
            f"nothing in it can be judged - map the therapist's label with {SPEAKER_OPTION} LABEL=therapist",
        )
    return Transcript(
        id=transcript_id,
        source=str(path),
        turns=[Turn(index=i, speaker=t.speaker, label=t.label, text=t.text, line=t.line) for i, t in enumerate(turns)],
        metadata=metadata,
    )
