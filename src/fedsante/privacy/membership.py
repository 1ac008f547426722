"""Membership-inference check of a released model: the loss-threshold attack (Yeom et al. 2018).

The attacker guesses "this patient was in the training set" when the model's loss on the patient is
low. Its AUC, training rows against test rows, says how much the model gives away about who trained
it: 0.5 is nothing, 1.0 is everything. Each node computes it on its own rows; only the AUC leaves,
noised (:func:`private_membership_auc`) and counted by the accountant on both sides of the split.
:func:`dp_auc_ceiling` gives the largest AUC that *any* attack can reach against an (epsilon,
delta)-DP training, so the measured value can be read against the guarantee.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata

from fedsante.privacy.dp import gaussian_release

__all__ = ["auc_sensitivity", "dp_auc_ceiling", "log_losses", "loss_threshold_auc", "private_membership_auc"]


def log_losses(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Each row's log loss (probabilities kept within ``[1e-12, 1 - 1e-12]``)."""
    p = np.clip(np.asarray(proba, dtype=float), 1e-12, 1 - 1e-12)
    return -(np.asarray(y) * np.log(p) + (1 - np.asarray(y)) * np.log1p(-p))


def loss_threshold_auc(member_losses: np.ndarray, nonmember_losses: np.ndarray) -> float:
    """AUC of "lower loss means member" over every threshold (ties count one half); NaN with an empty group.

    The Mann-Whitney U of the members' ranks (mid-ranks for ties) over ``m * n`` pairs.

    >>> loss_threshold_auc(np.array([0.1, 0.2]), np.array([0.3, 0.15]))
    0.75
    """
    m, n = len(member_losses), len(nonmember_losses)
    if m == 0 or n == 0:
        return math.nan
    ranks = rankdata(-np.concatenate([member_losses, nonmember_losses]))
    u = ranks[:m].sum() - m * (m + 1) / 2
    return float(u / (m * n))


def auc_sensitivity(n_members: int, n_nonmembers: int) -> float:
    """Largest change of the AUC when one patient is added to or removed from either group.

    The AUC is the mean over members of the share of non-members they beat, a mean of values in
    ``[0, 1]``; adding or removing one of ``m`` values moves such a mean by at most ``1 / m``.
    """
    smallest = min(n_members, n_nonmembers)
    if smallest < 1:
        raise ValueError(f"auc_sensitivity needs at least one member and one non-member. "
                         f"Got {n_members} and {n_nonmembers}.")
    return 1.0 / smallest


def private_membership_auc(member_losses: np.ndarray, nonmember_losses: np.ndarray, sigma: float,
                           rng: np.random.Generator) -> float:
    """:func:`loss_threshold_auc` plus Gaussian noise of multiplier ``sigma`` (one release), kept in ``[0, 1]``."""
    auc = loss_threshold_auc(member_losses, nonmember_losses)
    sensitivity = auc_sensitivity(len(member_losses), len(nonmember_losses))
    return float(np.clip(gaussian_release(np.array([auc]), sensitivity, sigma, rng)[0], 0.0, 1.0))


def dp_auc_ceiling(epsilon: float, delta: float, *, points: int = 20_001) -> float:
    """Largest AUC of any membership test against an ``(epsilon, delta)``-DP mechanism.

    Every such test has ``TPR <= e^eps FPR + delta`` and ``1 - FPR <= e^eps (1 - TPR) + delta``
    (Kairouz et al. 2015); the ceiling integrates the highest ROC curve these allow.

    >>> round(dp_auc_ceiling(1.0, 0.0), 4)  # e / (1 + e)
    0.7311
    """
    if not epsilon >= 0 or not 0 <= delta < 1:
        raise ValueError(f"dp_auc_ceiling needs epsilon >= 0 and 0 <= delta < 1. Got {epsilon!r}, {delta!r}.")
    fpr = np.linspace(0.0, 1.0, points)
    e = math.exp(min(epsilon, 700.0))
    tpr = np.minimum.reduce([np.ones_like(fpr), e * fpr + delta, 1 - (1 - delta - fpr) / e])
    return float(np.trapezoid(np.clip(tpr, 0, 1), fpr))
