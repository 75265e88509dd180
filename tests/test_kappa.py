"""analysis.compare computes Cohen's kappa in plain Python (sklearn takes over a second to import, and
`run` compares consecutive runs for the run index): it must agree with sklearn's cohen_kappa_score."""

from __future__ import annotations

import math
import random
import warnings

import pytest
from sklearn.metrics import cohen_kappa_score

from evaluator.analysis.compare import cohen_kappa


def _same(expected: float, got: float) -> bool:
    return (math.isnan(expected) and math.isnan(got)) or got == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(200))
def test_kappa_matches_sklearn(seed: int) -> None:
    rng = random.Random(seed)
    a = [rng.randint(1, 5) for _ in range(rng.randint(2, 30))]
    b = [x if rng.random() < 0.5 else rng.randint(1, 5) for x in a]
    labels = list(range(min(a + b), max(a + b) + 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weighted = cohen_kappa_score(a, b, labels=labels, weights="quadratic")
        nominal = cohen_kappa_score([str(x) for x in a], [str(x) for x in b])
    assert _same(weighted, cohen_kappa(a, b, labels=labels, quadratic=True)), (a, b)
    assert _same(nominal, cohen_kappa([str(x) for x in a], [str(x) for x in b])), (a, b)
