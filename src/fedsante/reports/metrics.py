"""Discrimination metrics on arrays (pure functions)."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata


def accuracy(y: np.ndarray, proba: np.ndarray, *, threshold: float = 0.5) -> float:
    """Share of rows whose thresholded probability equals the label."""
    if len(y) == 0:
        return math.nan
    return float(np.mean((proba >= threshold) == (y == 1)))


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with mid-ranks for ties); NaN with one class.

    >>> roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    y = np.asarray(y)
    n_pos = int(np.sum(y == 1))
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(score)
    u = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def binned_auc(negative: np.ndarray, positive: np.ndarray) -> float:
    """AUC from counts per score bin (ties within a bin count one half); NaN with an empty class.

    Counts may be noisy: negative ones are read as 0. With one patient per bin it is the exact AUC.

    >>> binned_auc(np.array([1, 1, 0, 0]), np.array([0, 1, 0, 1]))
    0.875
    """
    negative, positive = np.clip(negative, 0, None), np.clip(positive, 0, None)
    n_neg, n_pos = float(negative.sum()), float(positive.sum())
    if n_neg <= 0 or n_pos <= 0:
        return math.nan
    below = np.concatenate([[0.0], np.cumsum(negative)[:-1]])
    return float(np.sum(positive * (below + 0.5 * negative)) / (n_neg * n_pos))
