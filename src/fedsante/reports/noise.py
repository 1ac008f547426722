"""How much differential-privacy noise moves a metric computed from released statistics (pure functions).

Hospitals release their evaluation statistics with Gaussian noise of a published standard deviation
(:mod:`fedsante.node.evaluation`). The desk cannot remove that noise, but it can say how large its
effect is: :func:`metric_noise_sd` draws the same noise again around the released statistics and
measures the spread of each metric (a parametric bootstrap). :func:`beyond_noise` keeps the gaps
between groups that exceed a threshold by more than the noise can explain, so that the report does
not flag a difference that may be noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from fedsante.reports.performance import GroupStats, accuracy, auc, calibration_in_the_large, confusion, release_weights

__all__ = ["DRAWS", "beyond_noise", "fairness_metrics", "metric_noise_sd"]

DRAWS = 200
Z = 1.96  # two-sided 95%


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


def metric_noise_sd(stats: GroupStats, noise_sd: float, *, draws: int = DRAWS, seed: int = 0) -> dict[str, float]:
    """Standard deviation of each of :func:`fairness_metrics` when the release noise is drawn again.

    ``noise_sd`` is the standard deviation of the noise on each weighted component of the statistics
    (:func:`~fedsante.reports.performance.release_weights`), summed over the hospitals that released them.
    Deterministic for a given ``seed``. A metric undefined in most draws gets NaN.

    >>> from fedsante.reports.performance import group_stats
    >>> s = group_stats(np.array([0, 1] * 50), np.linspace(0.05, 0.95, 100))
    >>> metric_noise_sd(s, 0.0)["auc"] < 1e-12, metric_noise_sd(s, 3.0)["auc"] > 0.01
    (True, True)
    """
    if not (isinstance(noise_sd, int | float) and math.isfinite(noise_sd) and noise_sd >= 0):
        raise ValueError(f"noise_sd must be a finite number >= 0. Got {noise_sd!r}.")
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 2:
        raise ValueError(f"draws must be an int >= 2. Got {draws!r}.")
    rng = np.random.default_rng(seed)
    base, scale = stats.as_vector(), noise_sd / release_weights(stats.bins)
    values = np.array([list(fairness_metrics(GroupStats.from_vector(base + rng.normal(size=base.size) * scale,
                                                                      stats.bins)).values())
                       for _ in range(draws)])
    names = list(fairness_metrics(stats))
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
