"""The session bootstrap behind every interval: a 95% percentile interval of the mean, resampling whole
sessions with replacement.

The expected intervals are computed here without sampling: the exact distribution of the bootstrap
mean is enumerated (k draws of k sessions, each draw adding a session's sum and its number of turns),
and its 2.5% and 97.5% quantiles are read off it. Each design is checked to have its quantiles well
clear of a step of that distribution, so the sampled interval must land on them exactly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from evaluator.analysis.stats import cluster_bootstrap_difference, cluster_bootstrap_mean

MANY = 20_000  # resamples for exact checks: the sampled quantile sits within ~0.001 of the exact one
CLEARANCE = 0.005  # how far (in probability) a design's quantiles must be from a step of the distribution

# Four sessions of ten turns, every turn of a session scored alike: the sessions disagree, their turns
# do not, so there are 4 independent observations here, not 40.
CLUSTERED = {f"s{v}": [float(v)] * 10 for v in (1, 2, 4, 5)}


def exact_bootstrap(by_session: Mapping[str, Sequence[float]]) -> dict[float, float]:
    """P(bootstrap mean = value) when k sessions are drawn with replacement from k, by convolution."""
    clusters = [(float(sum(v)), len(v)) for v in by_session.values() if len(v)]
    k = len(clusters)
    states: dict[tuple[float, int], float] = {(0.0, 0): 1.0}
    for _ in range(k):
        following: dict[tuple[float, int], float] = defaultdict(float)
        for (total, n), p in states.items():
            for cluster_total, cluster_n in clusters:
                following[total + cluster_total, n + cluster_n] += p / k
        states = following
    distribution: dict[float, float] = defaultdict(float)
    for (total, n), p in states.items():
        distribution[round(total / n, 9)] += p
    return dict(sorted(distribution.items()))


def exact_quantile(distribution: Mapping[float, float], p: float, clearance: float = CLEARANCE) -> float:
    """The smallest value whose cumulative probability reaches p, asserting p is not near a step."""
    below = 0.0
    for value, mass in distribution.items():
        if below + mass >= p:
            assert p - below >= clearance and below + mass - p >= clearance, f"design too close to a step at {p}"
            return value
        below += mass
    raise AssertionError("unreachable")


def exact_interval(by_session: Mapping[str, Sequence[float]], level: float = 0.95) -> tuple[float, float]:
    distribution = exact_bootstrap(by_session)
    alpha = (1 - level) / 2
    return exact_quantile(distribution, alpha), exact_quantile(distribution, 1 - alpha)


def turn_bootstrap_interval(by_session: Mapping[str, Sequence[float]], seed: int = 0) -> tuple[float, float]:
    """What an interval would be if turns were independent: every turn resampled on its own."""
    values = np.concatenate([np.asarray(v, dtype=float) for v in by_session.values()])
    draws = np.random.default_rng(seed).choice(values, size=(MANY, len(values))).mean(axis=1)
    low, high = np.quantile(draws, [0.025, 0.975])
    return float(low), float(high)


# --- the level --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "by_session",
    [
        {f"s{i}": [1.0 if i < 5 else 0.0] for i in range(10)},  # bootstrap mean is Binomial(10, 1/2) / 10
        {f"s{i}": [1.0 if i < 6 else 0.0] for i in range(20)},
        CLUSTERED,
        {"a": [1.0, 1.0], "b": [5.0] * 8, "c": [2.0, 4.0, 3.0], "d": [4.0] * 5},  # unequal sessions
    ],
    ids=["10-sessions", "20-sessions", "clustered", "unequal-sizes"],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_the_interval_is_the_95_percent_percentile_interval_of_the_session_bootstrap(by_session, seed) -> None:
    estimate = cluster_bootstrap_mean(by_session, resamples=MANY, seed=seed)
    values = [v for session in by_session.values() for v in session]
    assert estimate.value == pytest.approx(sum(values) / len(values))
    assert (estimate.low, estimate.high) == pytest.approx(exact_interval(by_session))
    assert estimate.n == len(values) and estimate.sessions == len(by_session)


def test_the_default_interval_is_wider_than_an_80_percent_interval_from_the_same_draws() -> None:
    by_session = {f"s{i}": [1.0 if i < 5 else 0.0] for i in range(10)}
    default = cluster_bootstrap_mean(by_session, resamples=MANY)
    eighty = cluster_bootstrap_mean(by_session, resamples=MANY, level=0.8)
    assert (eighty.low, eighty.high) == pytest.approx(exact_interval(by_session, 0.8)) == (0.3, 0.7)
    assert (default.low, default.high) == pytest.approx((0.2, 0.8))  # Binomial(10, 1/2): 2.5% and 97.5% points
    assert default.low < eighty.low and default.high > eighty.high


def test_with_the_default_resamples_the_interval_is_still_the_95_percent_one() -> None:
    """What reports show: the default number of resamples, on a design with wide clearance."""
    by_session = {f"s{i}": [5.0 if i < 5 else 1.0] * 3 for i in range(10)}
    estimate = cluster_bootstrap_mean(by_session)
    assert (estimate.low, estimate.high) == pytest.approx(exact_interval(by_session, 0.95)) == (1.8, 4.2)


# --- whole sessions, not turns ----------------------------------------------------------------------


def test_sessions_are_resampled_whole_so_clustered_turns_give_a_wide_interval() -> None:
    estimate = cluster_bootstrap_mean(CLUSTERED, resamples=MANY)
    session_low, session_high = exact_interval(CLUSTERED)
    assert (session_low, session_high) == (1.5, 4.5)  # the mean of 4 sessions drawn from {1, 2, 4, 5}
    turn_low, turn_high = turn_bootstrap_interval(CLUSTERED)
    assert turn_high - turn_low < 0.4 * (session_high - session_low)  # the design tells the two apart
    assert estimate.low == pytest.approx(session_low) and estimate.high == pytest.approx(session_high)
    assert estimate.high - estimate.low > 2 * (turn_high - turn_low)


def test_sessions_with_identical_turns_get_the_interval_of_their_means() -> None:
    """Ten turns of a session alike or one turn each: the same 4 observations, the same interval."""
    once = {session: values[:1] for session, values in CLUSTERED.items()}
    clustered = cluster_bootstrap_mean(CLUSTERED, resamples=MANY)
    single = cluster_bootstrap_mean(once, resamples=MANY)
    assert (clustered.low, clustered.high) == pytest.approx((single.low, single.high))
    assert clustered.n == 40 and single.n == 4 and clustered.sessions == single.sessions == 4


def test_a_longer_session_weighs_more_in_the_mean_and_its_resamples() -> None:
    """The mean is over turns (a session of 8 turns counts 8 times), so each resample is the ratio of the
    drawn sessions' sums to their turns: the exact distribution above, not a mean of session means."""
    by_session = {"short": [1.0], "long": [5.0] * 8, "mid": [3.0, 3.0, 3.0]}
    estimate = cluster_bootstrap_mean(by_session, resamples=MANY)
    assert estimate.value == pytest.approx((1 + 40 + 9) / 12)
    assert (estimate.low, estimate.high) == pytest.approx(exact_interval(by_session))


def test_the_difference_interval_resamples_pairs_by_session() -> None:
    """B − A within each pair, sessions resampled whole: clustered differences give the wide interval."""
    pairs = {f"s{d}": [(1.0, 1.0 + d)] * 10 for d in (1, 2, 4, 5)}
    estimate = cluster_bootstrap_difference(pairs, resamples=MANY)
    assert estimate.value == pytest.approx(3.0)
    assert (estimate.low, estimate.high) == pytest.approx(exact_interval(CLUSTERED)) == (1.5, 4.5)


@pytest.mark.parametrize(
    "by_session",
    [
        {f"s{i}": [float(i % 5), float(i % 3)] * (1 + i % 4) for i in range(37)},
        {"only": [1.0, 4.0, 2.0, 5.0, 3.0, 3.0, 1.0]},
    ],
    ids=["37 sessions", "one session"],
)
def test_drawing_resamples_in_blocks_gives_the_interval_of_drawing_them_at_once(by_session, monkeypatch) -> None:
    """Blocks keep memory flat with many sessions; they must not change a single interval."""
    import evaluator.analysis.stats as stats

    monkeypatch.setattr(stats, "CHUNK_CELLS", 10**9)
    at_once = cluster_bootstrap_mean(by_session, seed=3)
    monkeypatch.setattr(stats, "CHUNK_CELLS", 50)
    assert cluster_bootstrap_mean(by_session, seed=3) == at_once
