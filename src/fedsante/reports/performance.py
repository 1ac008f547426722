"""Performance of a binary model from sufficient statistics that a node may release (pure functions).

Each hospital node computes :func:`group_stats` on its own patients; only these sums leave it, possibly
through secure aggregation (:meth:`GroupStats.as_vector`); under differential privacy only noisy counts
leave it (:mod:`fedsante.reports.noise`). The trust report adds
the nodes' statistics (:func:`combine`, or ``sum()``) and computes every metric from the sums alone.

Predicted probabilities are binned in ``bins`` equal bins (deciles by default); the number of bins is
even so that 0.5 is a bin edge and metrics at the 0.5 threshold are exact. Binned metrics (AUC,
reliability curve, calibration slope) are approximations that become exact with one score per bin.

The metrics are post-processing and tolerate noisy statistics: negative counts are read as 0, results
are clipped to their valid range and undefined values are ``math.nan``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit
from scipy.stats import norm

from fedsante.reports.metrics import binned_auc

__all__ = ["BINS", "GroupStats", "accuracy", "auc", "auc_ci", "auc_se", "brier", "calibration_in_the_large",
           "calibration_slope_intercept", "combine", "confusion", "group_stats", "reliability_curve",
           "scaled_brier", "summary"]

BINS = 10  # deciles of predicted probability; 0.5 is a bin edge
LOGIT_CLIP = 1e-6


def _check_bins(bins: object) -> int:
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 2 or bins % 2:
        raise ValueError(f"bins must be an even integer >= 2 (so that 0.5 is a bin edge). Got {bins!r} instead.")
    return int(bins)


@dataclass(frozen=True, eq=False)
class GroupStats:
    """Sufficient statistics of one group of patients (a site, a subgroup) for a binary model.

    ``counts[c, k]`` is the number of patients of class ``c`` (0 = without the outcome, 1 = with it) whose
    predicted probability ``p`` falls in bin ``k = min(floor(p * bins), bins - 1)``; ``sum_p`` and
    ``sum_logit`` are per-bin sums of ``p`` and ``logit(p)`` (``p`` clipped to ``[1e-6, 1 - 1e-6]``);
    ``sum_p2`` and ``sum_py`` are sums of ``p**2`` and ``p * y``. Values are floats (noisy sums may be
    fractional or negative). Arrays are read-only copies; equality is identity (``eq=False``).

    >>> s = group_stats(np.array([0, 1, 1]), np.array([0.2, 0.7, 0.4]), bins=2)
    >>> s.counts.tolist(), s.n, s.n_positive
    ([[1.0, 0.0], [1.0, 1.0]], 3.0, 2.0)
    >>> (s + s).n == sum([s, s]).n == 6.0
    True
    """

    counts: np.ndarray
    sum_p: np.ndarray
    sum_p2: float
    sum_py: float
    sum_logit: np.ndarray

    def __post_init__(self) -> None:
        counts = np.array(self.counts, dtype=float)
        if counts.ndim != 2 or counts.shape[0] != 2:
            raise ValueError(f"counts must have shape (2, bins). Got {counts.shape} instead.")
        bins = _check_bins(counts.shape[1])
        for name in ("counts", "sum_p", "sum_logit"):
            value = np.array(getattr(self, name), dtype=float)
            if value.shape != ((2, bins) if name == "counts" else (bins,)):
                raise ValueError(f"{name} must have shape ({bins},) like the counts' bins. Got {value.shape} instead.")
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        for name in ("sum_p2", "sum_py"):
            object.__setattr__(self, name, float(getattr(self, name)))

    @property
    def bins(self) -> int:
        """Number of probability bins."""
        return int(self.counts.shape[1])

    @property
    def n(self) -> float:
        """Number of patients (negative noisy counts read as 0)."""
        return float(np.clip(self.counts, 0, None).sum())

    @property
    def n_positive(self) -> float:
        """Number of patients with the outcome (negative noisy counts read as 0)."""
        return float(np.clip(self.counts[1], 0, None).sum())

    def __add__(self, other: object) -> GroupStats:
        if not isinstance(other, GroupStats):
            return NotImplemented
        if other.bins != self.bins:
            raise ValueError(f"Statistics to add must have the same bins ({self.bins}). Got {other.bins} instead.")
        return GroupStats(self.counts + other.counts, self.sum_p + other.sum_p, self.sum_p2 + other.sum_p2,
                          self.sum_py + other.sum_py, self.sum_logit + other.sum_logit)

    def __radd__(self, other: object) -> GroupStats:
        return self if isinstance(other, int | float) and other == 0 else NotImplemented  # sum() starts at 0

    def as_vector(self) -> np.ndarray:
        """Flat vector ``[counts (2*bins), sum_p (bins), sum_p2, sum_py, sum_logit (bins)]`` for secure aggregation.

        >>> s = group_stats(np.array([0, 1]), np.array([0.2, 0.7]), bins=2)
        >>> GroupStats.from_vector(s.as_vector(), bins=2).as_vector().tolist() == s.as_vector().tolist()
        True
        """
        return np.concatenate([self.counts.ravel(), self.sum_p, [self.sum_p2, self.sum_py], self.sum_logit])

    @classmethod
    def from_vector(cls, v: np.ndarray, bins: int = BINS) -> GroupStats:
        """Inverse of :meth:`as_vector` (the sum of the nodes' vectors gives the sum of their statistics).

        >>> GroupStats.from_vector(np.arange(10.0), bins=2).sum_logit.tolist()
        [8.0, 9.0]
        """
        bins = _check_bins(bins)
        v = np.asarray(v, dtype=float)
        if v.shape != (4 * bins + 2,):
            raise ValueError(f"A vector of statistics with {bins} bins has length {4 * bins + 2}. "
                             f"Got shape {v.shape} instead.")
        b2 = 2 * bins
        return cls(v[:b2].reshape(2, bins), v[b2:b2 + bins], v[b2 + bins], v[b2 + bins + 1], v[b2 + bins + 2:])


def group_stats(y: np.ndarray, proba: np.ndarray, bins: int = BINS) -> GroupStats:
    """Sufficient statistics of labels ``y`` (0/1) and predicted probabilities ``proba``, computed at a node.

    >>> s = group_stats(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.55, 0.9]))
    >>> s.counts.sum(axis=1).tolist(), round(s.sum_p2, 4), round(s.sum_py, 4)
    ([2.0, 2.0], 1.4825, 1.45)
    """
    bins = _check_bins(bins)
    y, proba = np.asarray(y), np.asarray(proba)
    if y.ndim != 1 or proba.ndim != 1 or len(y) != len(proba):
        raise ValueError(f"y and proba must be 1-D arrays of the same length. Got shapes {y.shape} and "
                         f"{proba.shape} instead.")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError(f"y must contain only 0 and 1. Got values {np.unique(y)[:10].tolist()} instead.")
    proba = proba.astype(float)
    if not np.all((proba >= 0) & (proba <= 1)):  # also rejects NaN
        bad = proba[~((proba >= 0) & (proba <= 1))]
        raise ValueError(f"proba must lie in [0, 1]. Got values such as {bad[:5].tolist()} instead.")
    y = y.astype(int)
    idx = np.minimum(np.floor(proba * bins), bins - 1).astype(int)
    half = bins // 2  # keep the 0.5 edge exact against rounding in proba * bins
    idx = np.where(proba < 0.5, np.minimum(idx, half - 1), np.maximum(idx, half))
    counts = np.stack([np.bincount(idx[y == c], minlength=bins) for c in (0, 1)]).astype(float)
    lg = logit(np.clip(proba, LOGIT_CLIP, 1 - LOGIT_CLIP))
    return GroupStats(counts, np.bincount(idx, weights=proba, minlength=bins), float(np.sum(proba ** 2)),
                      float(np.sum(proba * y)), np.bincount(idx, weights=lg, minlength=bins))


def combine(parts: Sequence[GroupStats]) -> GroupStats:
    """Sum of the statistics of several groups (nodes) with the same bins.

    >>> s = group_stats(np.array([0, 1]), np.array([0.2, 0.7]))
    >>> combine([s, s, s]).n
    6.0
    """
    parts = list(parts)
    if not parts:
        raise ValueError("combine needs at least one GroupStats. Got an empty sequence instead.")
    if not all(isinstance(part, GroupStats) for part in parts):
        raise ValueError(f"combine needs GroupStats. Got {[type(part).__name__ for part in parts]} instead.")
    return sum(parts[1:], parts[0])


def _clip01(x: float) -> float:
    return math.nan if not math.isfinite(x) else min(max(x, 0.0), 1.0)


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 and math.isfinite(num) else math.nan


def accuracy(stats: GroupStats, threshold_bin: int | None = None) -> float:
    """Accuracy when bins below ``threshold_bin`` (default ``bins // 2``, i.e. p < 0.5) are predicted negative.

    >>> accuracy(group_stats(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.55, 0.9])))
    0.75
    """
    t = stats.bins // 2 if threshold_bin is None else int(threshold_bin)
    if not 0 <= t <= stats.bins:
        raise ValueError(f"threshold_bin must lie in [0, {stats.bins}]. Got {threshold_bin!r} instead.")
    c = np.clip(stats.counts, 0, None)
    return _clip01(_ratio(float(c[0, :t].sum() + c[1, t:].sum()), float(c.sum())))


def confusion(stats: GroupStats) -> dict[str, float]:
    """Confusion counts at the 0.5 threshold with sensitivity, specificity, PPV and NPV (NaN when undefined).

    >>> c = confusion(group_stats(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.55, 0.9])))
    >>> [c[k] for k in ("tp", "fp", "tn", "fn", "sensitivity", "ppv")]
    [2.0, 1.0, 1.0, 0.0, 1.0, 0.6666666666666666]
    """
    c, half = np.clip(stats.counts, 0, None), stats.bins // 2
    tn, fp = float(c[0, :half].sum()), float(c[0, half:].sum())
    fn, tp = float(c[1, :half].sum()), float(c[1, half:].sum())
    return {"tp": tp, "fp": fp, "tn": tn, "fn": fn, "sensitivity": _ratio(tp, tp + fn),
            "specificity": _ratio(tn, tn + fp), "ppv": _ratio(tp, tp + fp), "npv": _ratio(tn, tn + fn)}


def auc(stats: GroupStats) -> float:
    """Binned AUC: Mann-Whitney on the bins, pairs in the same bin count one half (exact with one score per bin).

    >>> auc(group_stats(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.55, 0.9])))
    0.75
    """
    return _clip01(binned_auc(stats.counts[0], stats.counts[1]))


def auc_se(auc_value: float, n_pos: float, n_neg: float) -> float:
    """Standard error of an AUC after Hanley & McNeil (1982); NaN with fewer than one patient per class.

    >>> round(auc_se(0.8, 50, 50), 6)
    0.044502
    """
    a = _clip01(float(auc_value))
    if math.isnan(a) or not (n_pos >= 1 and n_neg >= 1):
        return math.nan
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    return math.sqrt(max(var, 0.0))


def auc_ci(auc_value: float, n_pos: float, n_neg: float, level: float = 0.95) -> tuple[float, float]:
    """Normal confidence interval ``auc +/- z * SE`` (Hanley & McNeil SE), clipped to [0, 1].

    >>> [round(x, 4) for x in auc_ci(0.8, 50, 50)]
    [0.7128, 0.8872]
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1). Got {level!r} instead.")
    se = auc_se(auc_value, n_pos, n_neg)
    if math.isnan(se):
        return math.nan, math.nan
    z, a = float(norm.ppf(0.5 + level / 2)), _clip01(float(auc_value))
    return _clip01(a - z * se), _clip01(a + z * se)


def brier(stats: GroupStats) -> float:
    """Brier score ``(sum p^2 - 2 sum p*y + n_pos) / n``, the mean squared error of the probabilities.

    >>> round(brier(group_stats(np.array([0, 1]), np.array([0.2, 0.7]))), 6)
    0.065
    """
    return _clip01(_ratio(stats.sum_p2 - 2 * stats.sum_py + stats.n_positive, stats.n))


def scaled_brier(stats: GroupStats) -> float:
    """Scaled Brier score ``1 - brier / (prevalence * (1 - prevalence))``, at most 1 (NaN with one class).

    >>> round(scaled_brier(group_stats(np.array([0, 1]), np.array([0.2, 0.7]))), 6)
    0.74
    """
    prevalence = _ratio(stats.n_positive, stats.n)
    result = 1 - _ratio(brier(stats), prevalence * (1 - prevalence))
    return min(result, 1.0) if math.isfinite(result) else math.nan


def calibration_in_the_large(stats: GroupStats) -> dict[str, float]:
    """Observed/expected ratio ``n_pos / sum p`` with the mean predicted probability and the observed rate.

    >>> calibration_in_the_large(group_stats(np.array([0, 1]), np.array([0.2, 0.8])))
    {'oe_ratio': 1.0, 'mean_predicted': 0.5, 'observed_rate': 0.5}
    """
    expected = float(np.sum(stats.sum_p))
    return {"oe_ratio": _ratio(stats.n_positive, expected), "mean_predicted": _clip01(_ratio(expected, stats.n)),
            "observed_rate": _clip01(_ratio(stats.n_positive, stats.n))}


def reliability_curve(stats: GroupStats) -> list[dict[str, float | None]]:
    """Per bin: its edges, patient count, mean predicted probability and observed rate (None when empty).

    >>> reliability_curve(group_stats(np.array([0, 1]), np.array([0.2, 0.3]), bins=2))[0]
    {'bin_low': 0.0, 'bin_high': 0.5, 'n': 2.0, 'mean_predicted': 0.25, 'observed_rate': 0.5}
    """
    c, curve = np.clip(stats.counts, 0, None), []
    for k in range(stats.bins):
        low, high, n = k / stats.bins, (k + 1) / stats.bins, float(c[:, k].sum())
        mean_p = _ratio(float(stats.sum_p[k]), n)
        curve.append({"bin_low": low, "bin_high": high, "n": n,
                      "mean_predicted": min(max(mean_p, low), high) if n > 0 and math.isfinite(mean_p) else None,
                      "observed_rate": _clip01(float(c[1, k]) / n) if n > 0 else None})
    return curve


def calibration_slope_intercept(stats: GroupStats, *, max_iter: int = 100, tol: float = 1e-10) -> dict[str, float]:
    """Logistic recalibration ``logit P(y=1) = a + b * logit(p)`` on the bins (slope 1, intercept 0: calibrated).

    An approximation from decile bins: per-patient logits never leave a node, so each bin is summarised
    by its mean logit ``sum_logit / n`` (clipped to the bin's logit range, for noisy sums), its event
    count and its size, and a binomial GLM is fitted on the bins by Newton-Raphson (IRLS, with step
    halving). It differs from the per-patient fit when logits vary widely within a bin. NaN with fewer
    than two non-empty bins, without convergence, or when the bins are separated (fitted probabilities
    numerically 0 or 1).

    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0.05, 0.95, 20000)
    >>> fit = calibration_slope_intercept(group_stats(rng.binomial(1, p), p))
    >>> abs(fit["slope"] - 1) < 0.1 and abs(fit["intercept"]) < 0.1
    True
    """
    fail = {"intercept": math.nan, "slope": math.nan}
    c = np.clip(stats.counts, 0, None)
    n = c.sum(axis=0)
    keep = (n > 0) & np.isfinite(stats.sum_logit)
    if keep.sum() < 2:
        return fail
    edges = logit(np.clip(np.arange(stats.bins + 1) / stats.bins, LOGIT_CLIP, 1 - LOGIT_CLIP))
    mean_logit = np.clip(stats.sum_logit[keep] / n[keep], edges[:-1][keep], edges[1:][keep])
    n, events = n[keep], np.minimum(c[1, keep], n[keep])
    x = np.column_stack([np.ones(len(n)), mean_logit])

    def loglik(beta: np.ndarray) -> float:
        eta = x @ beta
        return float(np.sum(events * eta - n * np.logaddexp(0.0, eta)))

    beta = np.array([0.0, 1.0])
    current = loglik(beta)
    for _ in range(max_iter):
        mu = expit(x @ beta)
        w = n * mu * (1 - mu)
        try:
            step = np.linalg.solve((x * w[:, None]).T @ x, x.T @ (events - n * mu))
        except np.linalg.LinAlgError:
            return fail
        if not np.all(np.isfinite(step)):
            return fail
        for _ in range(30):  # step halving keeps the log-likelihood increasing
            new = loglik(beta + step)
            if new >= current - 1e-12 * abs(current):
                break
            step = step / 2
        beta, current = beta + step, new
        if not math.isfinite(current):
            return fail
        if np.max(np.abs(step)) < tol * (1 + np.max(np.abs(beta))):
            if np.max(np.abs(x @ beta)) > 30:  # fitted probabilities numerically 0 or 1: separated bins
                return fail
            return {"intercept": float(beta[0]), "slope": float(beta[1])}
    return fail


def summary(stats: GroupStats) -> dict[str, float]:
    """All the metrics of a (summed) statistics object in one flat dict of floats (NaN when undefined).

    >>> s = summary(group_stats(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.55, 0.9])))
    >>> s["n"], s["accuracy"], s["auc"], s["sensitivity"]
    (4.0, 0.75, 0.75, 1.0)
    """
    n_pos = stats.n_positive
    auc_value = auc(stats)
    low, high = auc_ci(auc_value, n_pos, stats.n - n_pos)
    cal, conf = calibration_slope_intercept(stats), confusion(stats)
    return {"n": stats.n, "n_positive": n_pos, "accuracy": accuracy(stats), "auc": auc_value,
            "auc_ci_low": low, "auc_ci_high": high, "brier": brier(stats), "scaled_brier": scaled_brier(stats),
            "oe_ratio": calibration_in_the_large(stats)["oe_ratio"], "calibration_intercept": cal["intercept"],
            "calibration_slope": cal["slope"], **{k: conf[k] for k in ("sensitivity", "specificity", "ppv", "npv")}}
