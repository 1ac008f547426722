"""Membership-inference check: the attack's AUC, its sensitivity and the DP ceiling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedsante.privacy.membership import (auc_sensitivity, dp_auc_ceiling, log_losses, loss_threshold_auc,
                                         private_membership_auc)
from fedsante.reports.metrics import roc_auc


def brute_auc(members: np.ndarray, others: np.ndarray) -> float:
    wins = [(1.0 if m < o else 0.5 if m == o else 0.0) for m in members for o in others]
    return float(np.mean(wins))


def test_attack_auc_is_the_share_of_member_non_member_pairs_it_orders_right() -> None:
    rng = np.random.default_rng(0)
    members, others = rng.exponential(0.5, 40).round(2), rng.exponential(0.7, 30).round(2)  # rounding makes ties
    assert math.isclose(loss_threshold_auc(members, others), brute_auc(members, others), rel_tol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_attack_auc_equals_the_roc_auc_of_the_negated_losses(seed: int) -> None:
    # Prepare: losses with ties, members labelled 1
    rng = np.random.default_rng(seed)
    members, others = rng.exponential(0.5, 30 + seed).round(1), rng.exponential(0.6, 20).round(1)
    labels = np.concatenate([np.ones(len(members)), np.zeros(len(others))])
    # Execute
    auc = loss_threshold_auc(members, others)
    # Assert
    assert auc == roc_auc(labels, -np.concatenate([members, others]))


def test_attack_auc_is_nan_without_members_or_without_non_members() -> None:
    assert math.isnan(loss_threshold_auc(np.array([]), np.array([0.3])))
    assert math.isnan(loss_threshold_auc(np.array([0.3]), np.array([])))


def test_one_patient_moves_the_auc_by_at_most_the_sensitivity() -> None:
    rng = np.random.default_rng(1)
    members, others = rng.exponential(0.5, 25), rng.exponential(0.6, 15)
    base, bound = loss_threshold_auc(members, others), auc_sensitivity(25, 15)
    for i in range(25):
        assert abs(loss_threshold_auc(np.delete(members, i), others) - base) <= bound
    for i in range(15):
        assert abs(loss_threshold_auc(members, np.delete(others, i)) - base) <= bound
    for extreme in (0.0, 100.0):
        assert abs(loss_threshold_auc(np.append(members, extreme), others) - base) <= bound
        assert abs(loss_threshold_auc(members, np.append(others, extreme)) - base) <= bound


def test_private_auc_noise_and_bad_input() -> None:
    members, others = np.linspace(0, 1, 50), np.linspace(0.5, 1.5, 20)
    draws = [private_membership_auc(members, others, 1.0, np.random.default_rng(s)) for s in range(400)]
    assert abs(np.std(draws) - 1 / 20) < 0.01 and all(0 <= d <= 1 for d in draws)
    with pytest.raises(ValueError, match="at least one member and one non-member"):
        auc_sensitivity(0, 5)


@pytest.mark.parametrize("epsilon", [0.1, 1.0, 5.0])
def test_ceiling_is_e_over_one_plus_e_without_delta_and_grows_with_both(epsilon) -> None:
    assert math.isclose(dp_auc_ceiling(epsilon, 0.0), math.exp(epsilon) / (1 + math.exp(epsilon)), rel_tol=1e-6)
    assert dp_auc_ceiling(epsilon, 1e-3) > dp_auc_ceiling(epsilon, 0.0)
    assert dp_auc_ceiling(epsilon * 2, 1e-5) > dp_auc_ceiling(epsilon, 1e-5)
    assert dp_auc_ceiling(0.0, 0.0) == pytest.approx(0.5)


def test_log_losses_are_finite_at_certain_predictions() -> None:
    assert np.all(np.isfinite(log_losses(np.array([1, 0]), np.array([0.0, 1.0]))))
