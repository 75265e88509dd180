"""How often a nominal 95% session-bootstrap interval holds the truth with few sessions: the figures behind
the few-sessions warning of `report --by` and `contrast` (evaluator.analysis.groups.FEW_SESSIONS_NOTE).

Simulated sessions of 4-10 turns, a session effect and turn noise of the same size, no true difference:
for a group's mean and for the difference of two arms, the share of intervals that contain the truth.
Run: .venv/bin/python benchmarks/coverage.py [REPLICATES]
"""

from __future__ import annotations

import sys

import numpy as np

from evaluator.analysis.contrast import resampled_means
from evaluator.analysis.stats import DEFAULT_RESAMPLES

SESSIONS = (2, 4, 8, 10, 20)


def _arm(rng: np.random.Generator, sessions: int) -> tuple[np.ndarray, np.ndarray]:
    turns = [rng.normal(rng.normal(0, 1), 1, size=rng.integers(4, 11)) for _ in range(sessions)]
    return np.array([t.sum() for t in turns]), np.array([len(t) for t in turns], dtype=float)


def _covers(draws: np.ndarray) -> bool:
    low, high = np.quantile(draws, [0.025, 0.975])
    return bool(low <= 0 <= high)


def main(replicates: int = 1000) -> None:
    rng = np.random.default_rng(1)
    print(f"{'sessions per arm':>16} {'group mean':>11} {'difference':>11}   ({replicates} replicates)")
    for n in SESSIONS:
        mean = sum(_covers(resampled_means(*_arm(rng, n), rng, DEFAULT_RESAMPLES)) for _ in range(replicates))
        difference = sum(
            _covers(
                resampled_means(*_arm(rng, n), rng, DEFAULT_RESAMPLES)
                - resampled_means(*_arm(rng, n), rng, DEFAULT_RESAMPLES)
            )
            for _ in range(replicates)
        )
        print(f"{n:>16} {mean / replicates:>11.0%} {difference / replicates:>11.0%}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
