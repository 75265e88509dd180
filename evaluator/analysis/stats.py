"""Uncertainty that respects how therapy data is structured: turns of one session are not
independent, so intervals resample whole sessions (a cluster bootstrap), never single turns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 2000
CHUNK_CELLS = 1 << 20
"""Resamples are drawn in blocks of about this many picks, so memory stays flat with 10,000s of sessions;
the random stream, and so every interval, is the same as drawing all of them at once."""


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float
    n: int = 0
    sessions: int = 0

    def __str__(self) -> str:
        return f"{self.value:.2f} [{self.low:.2f}, {self.high:.2f}]"


def cluster_bootstrap_mean(
    by_session: Mapping[str, Sequence[float]], resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = 0.95
) -> Estimate | None:
    """Mean over all values, with a percentile interval from resampling sessions with replacement.

    With a single session there is nothing to resample between sessions, so its turns are resampled
    instead: read that interval as indicative only (`sessions == 1` says so).
    """
    groups = [np.asarray(v, dtype=float) for v in by_session.values() if len(v)]
    if not groups:
        return None
    values = np.concatenate(groups)
    point = float(values.mean())
    rng = np.random.default_rng(seed)
    if len(groups) == 1 and len(values) == 1:
        return Estimate(point, point, point, 1, 1)
    draws = np.empty(resamples)
    width = len(values) if len(groups) == 1 else len(groups)
    step = max(1, CHUNK_CELLS // width)
    sums = np.array([g.sum() for g in groups])
    counts = np.array([len(g) for g in groups])
    for start in range(0, resamples, step):
        rows = min(step, resamples - start)
        if len(groups) == 1:
            draws[start : start + rows] = rng.choice(values, size=(rows, width), replace=True).mean(axis=1)
        else:
            picks = rng.integers(0, width, size=(rows, width))
            draws[start : start + rows] = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    return Estimate(point, float(low), float(high), len(values), len(groups))


def cluster_bootstrap_difference(
    pairs_by_session: Mapping[str, Sequence[tuple[float, float]]],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> Estimate | None:
    """Mean of (b - a) over paired items, with an interval from resampling sessions."""
    differences = {s: [b - a for a, b in pairs] for s, pairs in pairs_by_session.items()}
    return cluster_bootstrap_mean(differences, resamples, seed, level)
