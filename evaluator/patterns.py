"""Rubric regular expressions (`applies_when.previous_patient_turn_matches`), run with a time bound.

A pattern is written by a rubric author but runs on whatever a patient said, so a pattern with
catastrophic backtracking (`(a+)+$`) could hang a run on one long turn. Patterns are compiled with
the `regex` package, whose searches take a timeout; at load time a pattern is refused if its compiled
form would be huge or if it already times out on a few adversarial probe strings built from its own
characters, and at plan time a search that still times out is an error, never a silent "no match".
"""

from __future__ import annotations

import re
import time
from functools import lru_cache

import regex

MAX_PATTERN_LENGTH = 1000
MAX_EXPANDED_SIZE = 10_000  # counted repeats multiplied out: `(a{100}){100}` is 10,000
SEARCH_TIMEOUT_S = 1.0  # one patient turn, at plan time
PROBE_TIMEOUT_S = 0.05  # one probe string, at load time
PROBE_LENGTH = 2000
FLAGS = regex.IGNORECASE | regex.VERSION0

_COUNTED_REPEAT = re.compile(r"\{(\d*)(?:,(\d*))?\}")
_CLASS = re.compile(r"\[\^?\]?(?:\\.|[^\]\\])*\]")
_WORD = re.compile(r"[^\W_]{2,}")


class PatternTimeout(Exception):
    """A search that did not finish within SEARCH_TIMEOUT_S; callers name the rubric and the turn."""

    def __init__(self, pattern: str) -> None:
        super().__init__(f"pattern {pattern!r} did not finish within {SEARCH_TIMEOUT_S:g} s")
        self.pattern = pattern


@lru_cache(maxsize=1024)
def compiled(pattern: str) -> regex.Pattern[str]:
    """Compiled once per pattern, for every turn of every run in the process."""
    return regex.compile(pattern, FLAGS)


def _timed_search(pattern_regex: regex.Pattern[str], text: str, timeout: float) -> bool | None:
    """True or False, or None when the search ran out of time. `regex` usually raises TimeoutError,
    but on some paths it gives up at the deadline and reports no match instead, so a "no match" that
    took nearly the whole allowance (its clock and ours differ slightly) counts as a timeout too."""
    started = time.monotonic()
    try:
        found = pattern_regex.search(text, timeout=timeout) is not None
    except TimeoutError:
        return None
    return None if not found and time.monotonic() - started >= 0.9 * timeout else found


def _patient_search(pattern_regex: regex.Pattern[str], text: str, timeout: float) -> bool | None:
    """A timed search given a second chance before it counts as a timeout: a busy machine can pause a
    process for longer than a harmless pattern needs, once; a slow pattern is slow both times."""
    found = _timed_search(pattern_regex, text, timeout)
    return found if found is not None else _timed_search(pattern_regex, text, timeout)


def search(pattern: str, text: str) -> bool:
    """Whether `pattern` occurs in `text`; raises PatternTimeout rather than run unbounded."""
    found = _patient_search(compiled(pattern), text, SEARCH_TIMEOUT_S)
    if found is None:
        raise PatternTimeout(pattern)
    return found


def problem(pattern: str) -> str | None:
    """Why a pattern cannot be used, with how to fix it; None when it is fine."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"is {len(pattern)} characters long; keep a pattern under {MAX_PATTERN_LENGTH} (split it into several)"
    size = _expanded_size(pattern)
    if size > MAX_EXPANDED_SIZE:
        return f"repeats expand to about {size:,} steps (limit {MAX_EXPANDED_SIZE:,}); use smaller counts in {{m,n}}"
    try:
        pattern_regex = compiled(pattern)
    except (regex.error, OverflowError, RecursionError) as exc:
        return f"is not a valid regular expression: {exc}"
    for probe in _probes(pattern):
        if _patient_search(pattern_regex, probe, PROBE_TIMEOUT_S) is None:
            return (
                f"backtracks catastrophically: a test string of {len(probe)} characters "
                f"({probe[:12]!r}...) takes longer than {PROBE_TIMEOUT_S:g} s; avoid a repeated group that can "
                "match the same text in several ways, e.g. write (a+)+ as a+, or (\\w+\\s?)+ as [\\w\\s]+"
            )
    return None


def _expanded_size(pattern: str) -> int:
    """Roughly how many steps counted repeats ({m,n}) multiply the pattern into, checked before
    compiling because compiling `((a{100}){100}){100}` alone takes minutes."""
    sums = [0]
    last = 0
    i = 0
    while i < len(pattern):
        char = pattern[i]
        repeat = _COUNTED_REPEAT.match(pattern, i) if char == "{" else None
        if char == "(":
            sums.append(0)
            i += 1
            continue
        if char == ")" and len(sums) > 1:
            last = sums.pop()
            sums[-1] += last
            i += 1
            continue
        if repeat is not None:
            bound = max(int(n) for n in repeat.groups() if n) if any(repeat.groups()) else 1
            sums[-1] += last * (bound - 1)
            last *= bound
            i = repeat.end()
            continue
        match = _CLASS.match(pattern, i) if char == "[" else None
        i = match.end() if match else i + (2 if char == "\\" else 1)
        last = 1
        sums[-1] += 1
    return sum(sums)


def _probes(pattern: str) -> list[str]:
    """Long runs of what the pattern matches, with and without a tail that makes it fail: the inputs on
    which nested or overlapping repeats explode."""
    units = dict.fromkeys(["a", "1", " ", "a ", "a1", "x"])
    units.update(dict.fromkeys(c for c in pattern.casefold() if c.isalnum() or c in " -'.,"))
    for word in _WORD.findall(pattern.casefold()):
        units.update(dict.fromkeys((word, word + " ")))
    probes = []
    for unit in list(units)[:64]:
        run = unit * (PROBE_LENGTH // len(unit))
        probes += [run, run + "!", run + "\n"]
    return probes
