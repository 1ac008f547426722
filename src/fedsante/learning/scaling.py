"""Federated standardisation: each node shares counts, sums and sums of squares, never rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Moments:
    """Sufficient statistics of a feature matrix: row count, column sums, column sums of squares."""

    n: int
    total: np.ndarray
    total_sq: np.ndarray

    @classmethod
    def of(cls, X: np.ndarray) -> Moments:
        return cls(n=int(X.shape[0]), total=X.sum(axis=0), total_sq=(X * X).sum(axis=0))


@dataclass(frozen=True)
class Scaler:
    """Standardisation ``(X - mean) / scale``."""

    mean: np.ndarray
    scale: np.ndarray

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean) / self.scale


def combine(parts: Sequence[Moments], *, eps: float = 1e-9) -> Scaler:
    """Global mean and sample standard deviation from per-node moments.

    The result equals the statistics of the stacked rows (up to floating-point error).
    ``eps`` is added to the standard deviation, as in FLamby, so a constant feature maps to 0.
    """
    if not parts:
        raise ValueError("combine needs the moments of at least one node. Got none.")
    n = sum(p.n for p in parts)
    if n < 2:
        raise ValueError(f"combine needs at least 2 rows in total to estimate a variance. Got {n}.")
    total = np.sum([p.total for p in parts], axis=0)
    total_sq = np.sum([p.total_sq for p in parts], axis=0)
    mean = total / n
    var = np.maximum(total_sq - n * mean * mean, 0.0) / (n - 1)
    return Scaler(mean=mean, scale=np.sqrt(var) + eps)


def local_scaler(X: np.ndarray) -> Scaler:
    """A node's own standardisation (FLamby's protocol: each centre uses its training rows)."""
    return combine([Moments.of(X)])
