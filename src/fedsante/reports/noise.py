"""Differentially private evaluation statistics: what a node releases and how the desk reads it (pure).

Under differential privacy a node releases only the **counts** of its test patients by outcome and
by tenth of predicted risk, with Gaussian noise: one patient changes one count by 1, so a block of
counts has L2 sensitivity 1 (sums of predicted risks would add more sensitivity, hence more noise on
everything). The node then post-processes the noisy counts, which costs no privacy
(:func:`noisy_counts`): it projects them onto non-negative counts with the right total (its number
of test patients is public; a subgroup's total is the noisy one) and fills the sums of predicted
risks from the middle of each tenth (:func:`from_counts`). Brier score, O/E and calibration slope
are then approximations within a tenth of risk; AUC, accuracy, sensitivity and specificity use the
counts alone.

The desk cannot remove the noise, but it can say how large its effect is: :func:`metric_noise_sd`
draws the same noise again around the released statistics, with the same post-processing, and
measures the spread of each metric (a parametric bootstrap). :func:`beyond_noise` keeps the gaps
between groups that exceed a threshold by more than the noise can explain.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.special import logit

from fedsante.reports.performance import (LOGIT_CLIP, GroupStats, accuracy, auc, calibration_in_the_large,
                                          confusion)

__all__ = ["DRAWS", "beyond_noise", "fairness_metrics", "from_counts", "metric_noise_sd", "noisy_counts",
           "project_counts"]

DRAWS = 200
Z = 1.96  # two-sided 95%


def project_counts(values: np.ndarray, total: float) -> np.ndarray:
    """The closest non-negative vector (Euclidean) whose entries sum to ``total`` (Duchi et al. 2008).

    >>> project_counts(np.array([5.0, -2.0, 1.0]), 4.0).tolist()
    [4.0, 0.0, 0.0]
    >>> project_counts(np.array([3.0, 2.0]), 7.0).tolist()
    [4.0, 3.0]
    """
    v = np.asarray(values, dtype=float).ravel()
    if not (math.isfinite(total) and total >= 0):
        raise ValueError(f"total must be a finite number >= 0. Got {total!r}.")
    if total == 0 or v.size == 0:
        return np.zeros_like(v)
    u = np.sort(v)[::-1]
    excess = np.cumsum(u) - total
    index = np.arange(1, v.size + 1)
    rho = index[u - excess / index > 0][-1]
    return np.maximum(v - excess[rho - 1] / rho, 0.0)


def from_counts(counts: np.ndarray) -> GroupStats:
    """Statistics from counts alone: every patient's predicted risk taken at the middle of its tenth.

    >>> s = from_counts(np.array([[2.0, 0.0], [0.0, 2.0]]))
    >>> s.sum_p.tolist(), s.sum_py
    ([0.5, 1.5], 1.5)
    """
    counts = np.asarray(counts, dtype=float)
    bins = counts.shape[-1]
    middle = (np.arange(bins) + 0.5) / bins
    per_bin = counts.sum(axis=0)
    return GroupStats(counts, per_bin * middle, float(per_bin @ middle ** 2), float(counts[1] @ middle),
                      per_bin * logit(np.clip(middle, LOGIT_CLIP, 1 - LOGIT_CLIP)))


def noisy_counts(counts: np.ndarray, noise_sd: float, rng: np.random.Generator, total: float | None = None
                 ) -> GroupStats:
    """Counts with Gaussian noise, projected onto non-negative counts summing to ``total`` (default: the
    noisy sum, at least 0), then read by :func:`from_counts`.

    >>> s = noisy_counts(np.array([[30.0, 5.0], [4.0, 40.0]]), 3.0, np.random.default_rng(0), total=79)
    >>> float(s.counts.sum()), bool((s.counts >= 0).all())
    (79.0, True)
    """
    counts = np.asarray(counts, dtype=float)
    noisy = counts + rng.normal(size=counts.shape) * noise_sd
    total = max(float(noisy.sum()), 0.0) if total is None else float(total)
    return from_counts(project_counts(noisy, total).reshape(counts.shape))


def fairness_metrics(stats: GroupStats) -> dict[str, float]:
    """The metrics compared between subgroups, from statistics alone (NaN when undefined).

    >>> from fedsante.reports.performance import group_stats
    >>> m = fairness_metrics(group_stats(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.55, 0.9])))
    >>> m["auc"], m["accuracy"], m["sensitivity"], m["specificity"]
    (0.75, 0.75, 1.0, 0.5)
    """
    conf = confusion(stats)
    return {"auc": auc(stats), "accuracy": accuracy(stats), "sensitivity": conf["sensitivity"],
            "specificity": conf["specificity"], "ppv": conf["ppv"],
            "oe_ratio": calibration_in_the_large(stats)["oe_ratio"]}


def metric_noise_sd(parts: Sequence[GroupStats], noise_sd: float, totals: Sequence[float | None] | None = None, *,
                    draws: int = DRAWS, seed: int = 0) -> dict[str, float]:
    """Standard deviation of each of :func:`fairness_metrics` of ``sum(parts)`` when the noise is drawn again.

    ``parts`` are the released statistics of each hospital, ``noise_sd`` the standard deviation of the noise
    each added to a count, ``totals`` the public totals each projected onto (None: the noisy total), as in
    :func:`noisy_counts`. Deterministic for a given ``seed``. A metric undefined in most draws gets NaN.

    >>> from fedsante.reports.performance import group_stats
    >>> s = group_stats(np.array([0, 1] * 50), np.linspace(0.05, 0.95, 100))
    >>> metric_noise_sd([s], 0.0, [100])["auc"] < 1e-12, metric_noise_sd([s], 3.0, [100])["auc"] > 0.01
    (True, True)
    """
    if not (isinstance(noise_sd, int | float) and math.isfinite(noise_sd) and noise_sd >= 0):
        raise ValueError(f"noise_sd must be a finite number >= 0. Got {noise_sd!r}.")
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 2:
        raise ValueError(f"draws must be an int >= 2. Got {draws!r}.")
    parts = list(parts)
    totals = [None] * len(parts) if totals is None else list(totals)
    if not parts or len(totals) != len(parts):
        raise ValueError(f"metric_noise_sd needs at least one part and one total per part. Got {len(parts)} parts "
                         f"and {len(totals)} totals.")
    rng = np.random.default_rng(seed)
    values = np.array([list(fairness_metrics(sum(noisy_counts(p.counts, noise_sd, rng, t) for p, t in zip(parts, totals)
                                                 )).values()) for _ in range(draws)])
    names = list(fairness_metrics(parts[0]))
    defined = np.isfinite(values)
    return {name: float(np.std(values[defined[:, i], i])) if defined[:, i].mean() >= 0.5 else math.nan
            for i, name in enumerate(names)}


def beyond_noise(metric_gaps: Mapping[str, Mapping], spread: Mapping[str, Mapping[str, float]], threshold: float,
                 metrics: Sequence[str]) -> tuple[dict[str, dict], list[str]]:
    """The gaps that exceed ``threshold`` by more than 1.96 noise standard deviations, and the others' names.

    ``spread[group][metric]`` is the noise standard deviation of each group's metric. A gap whose groups'
    spread is unknown is kept out (it cannot be told from noise).

    >>> gaps = {"auc": {"gap": 0.3, "groups": ("a", "b")}, "ppv": {"gap": 0.15, "groups": ("a", "b")}}
    >>> spread = {"a": {"auc": 0.03, "ppv": 0.05}, "b": {"auc": 0.04, "ppv": 0.05}}
    >>> kept, within = beyond_noise(gaps, spread, 0.10, ["auc", "ppv"])
    >>> sorted(kept), within
    (['auc'], ['ppv'])
    """
    kept: dict[str, dict] = {}
    within: list[str] = []
    for metric in metrics:
        gap = metric_gaps.get(metric) or {}
        if gap.get("gap") is None or gap["gap"] <= threshold:
            continue
        high, low = gap["groups"]
        sd = math.hypot(spread.get(high, {}).get(metric, math.nan), spread.get(low, {}).get(metric, math.nan))
        if math.isfinite(sd) and gap["gap"] - threshold > Z * sd:
            kept[metric] = dict(gap)
        else:
            within.append(metric)
    return kept, within
