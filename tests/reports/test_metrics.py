"""fedsante.reports.metrics: AUC equals the pairwise definition; accuracy thresholds probabilities."""

import math

import numpy as np
import pytest

from fedsante.reports.metrics import accuracy, roc_auc


def brute_force_auc(y: np.ndarray, score: np.ndarray) -> float:
    pos, neg = score[y == 1], score[y == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("n", [2, 7, 30, 151])
@pytest.mark.parametrize("ties", [False, True])
def test_roc_auc_equals_the_pairwise_definition(n: int, ties: bool) -> None:
    # Prepare
    rng = np.random.default_rng(n * 2 + ties)
    y = rng.integers(0, 2, size=n).astype(float)
    y[0], y[1] = 0.0, 1.0  # both classes present
    score = rng.integers(0, 4, size=n).astype(float) if ties else rng.random(n)

    # Execute
    auc = roc_auc(y, score)

    # Assert
    assert auc == pytest.approx(brute_force_auc(y, score), abs=1e-12)


def test_roc_auc_extremes_and_all_ties() -> None:
    y = np.array([0, 0, 1, 1])
    assert roc_auc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert roc_auc(y, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert roc_auc(y, np.full(4, 0.5)) == 0.5


@pytest.mark.parametrize("y", [np.zeros(5), np.ones(5), np.array([])])
def test_roc_auc_is_nan_with_a_single_class(y: np.ndarray) -> None:
    assert math.isnan(roc_auc(y, np.linspace(0, 1, len(y))))


def test_accuracy_counts_thresholded_matches() -> None:
    # Prepare
    y = np.array([1.0, 0.0, 1.0, 0.0])
    proba = np.array([0.9, 0.2, 0.4, 0.5])  # 0.5 counts as positive

    # Execute / Assert
    assert accuracy(y, proba) == 0.5
    assert accuracy(y, proba, threshold=0.3) == 0.75
    assert accuracy(y, proba, threshold=0.6) == 0.75


def test_accuracy_perfect_and_empty() -> None:
    assert accuracy(np.array([0.0, 1.0]), np.array([0.0, 1.0])) == 1.0
    assert math.isnan(accuracy(np.array([]), np.array([])))
