"""analysis.compare computes Cohen's kappa in plain Python (sklearn takes over a second to import, and
`run` compares consecutive runs for the run index), and analysis.agreement from confusion counts (for
session resamples): both must agree with sklearn's cohen_kappa_score."""

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


@pytest.mark.parametrize("seed", range(100))
def test_kappa_from_confusion_counts_matches_sklearn(seed: int) -> None:
    """The agreement verdict recomputes kappa on thousands of session resamples from confusion counts."""
    import numpy as np

    from evaluator.analysis.agreement_stats import kappa_from_counts

    rng = random.Random(seed)
    a = [rng.randint(1, 5) for _ in range(rng.randint(2, 30))]
    b = [x if rng.random() < 0.5 else rng.randint(1, 5) for x in a]
    counts = np.zeros((5, 5))
    for x, y in zip(a, b):
        counts[x - 1, y - 1] += 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weighted = cohen_kappa_score(a, b, labels=[1, 2, 3, 4, 5], weights="quadratic")
        nominal = cohen_kappa_score(a, b, labels=[1, 2, 3, 4, 5])
    assert _same(weighted, float(kappa_from_counts(counts, "ordinal"))), (a, b)
    assert _same(nominal, float(kappa_from_counts(counts, "nominal"))), (a, b)
    batch = kappa_from_counts(np.stack([counts, 2 * counts]), "ordinal")
    assert _same(weighted, float(batch[0])) and _same(weighted, float(batch[1]))
