"""Standardisation under differential privacy: noisy moments from public bounds, and the scalers built on them.

Pure (no I/O): takes arrays, the public feature bounds and a random generator, returns
:class:`~fedsante.learning.scaling.Moments` and :class:`~fedsante.learning.scaling.Scaler`; the noise is
:func:`fedsante.privacy.dp.gaussian_release`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from fedsante.learning.scaling import Moments, Scaler
from fedsante.privacy.dp import gaussian_release


def moments_sensitivity(n_features: int) -> float:
    """L2 sensitivity of the normalised moments vector of :func:`private_moments`: ``sqrt(1 + 2 d)``.

    One patient adds 1 to the count, ``u_j`` in ``[-1, 1]`` to each normalised sum and ``u_j^2`` to each
    normalised sum of squares, and ``u^2 + u^4 <= 2``.
    """
    return math.sqrt(1 + 2 * n_features)


def private_moments(X: np.ndarray, lower: np.ndarray, upper: np.ndarray, sigma: float,
                    rng: np.random.Generator) -> Moments:
    """Noisy count, sums and sums of squares of ``X`` (one Gaussian release, multiplier ``sigma``).

    Features are clipped to the public bounds ``[lower, upper]`` and normalised to
    ``u = (x - centre) / half_range`` in ``[-1, 1]``; the vector ``(n, sum u, sum u^2)`` is released with
    :func:`gaussian_release` at sensitivity :func:`moments_sensitivity`, then mapped back to the
    original units (post-processing, with the count rounded to an integer that may be <= 0). Combine
    the parts of every node with :func:`private_scaler`, which tolerates such counts and negative
    variances.
    """
    lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    if lower.shape != (X.shape[1],) or upper.shape != lower.shape or not np.all(upper > lower):
        raise ValueError(f"private_moments needs one bound per feature ({X.shape[1]}) with upper > lower. "
                         f"Got lower={lower.tolist()}, upper={upper.tolist()}.")
    centre, half = (upper + lower) / 2, (upper - lower) / 2
    u = (np.clip(X, lower, upper) - centre) / half
    d = X.shape[1]
    raw = np.concatenate([[float(X.shape[0])], u.sum(axis=0), (u * u).sum(axis=0)])
    noisy = gaussian_release(raw, moments_sensitivity(d), sigma, rng)
    n, s1, s2 = int(round(noisy[0])), noisy[1:d + 1] * half, noisy[d + 1:] * half * half
    return Moments(n=n, total=s1 + n * centre, total_sq=s2 + 2 * centre * s1 + n * centre * centre)


def private_scaler(parts: Sequence[Moments], lower: np.ndarray, upper: np.ndarray, *,
                   min_scale: float = 0.1) -> Scaler:
    """Global standardisation from noisy moments, kept sane by public bounds (post-processing only).

    The count is floored at 2, the mean clipped to ``[lower, upper]`` and the standard deviation to
    ``[min_scale * half_range, half_range]`` (no variable in a range has a larger one).

    >>> m = Moments(n=4, total=np.array([2.0]), total_sq=np.array([2.0]))
    >>> s = private_scaler([m], np.array([0.0]), np.array([1.0]))
    >>> s.mean.tolist(), round(float(s.scale[0]), 3)
    ([0.5], 0.5)
    """
    if not parts:
        raise ValueError("private_scaler needs the moments of at least one node. Got none.")
    lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    half = (upper - lower) / 2
    n = max(float(sum(p.n for p in parts)), 2.0)
    total = np.sum([p.total for p in parts], axis=0)
    total_sq = np.sum([p.total_sq for p in parts], axis=0)
    mean = total / n
    var = (total_sq - n * mean * mean) / (n - 1)
    scale = np.clip(np.sqrt(np.maximum(var, 0.0)), min_scale * half, half)
    return Scaler(mean=np.clip(mean, lower, upper), scale=scale)


def range_scaler(lower: np.ndarray, upper: np.ndarray) -> Scaler:
    """Standardisation from public bounds alone (no release): maps ``[lower, upper]`` to ``[-1, 1]``."""
    lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    return Scaler(mean=(upper + lower) / 2, scale=(upper - lower) / 2)
