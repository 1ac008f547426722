"""Noise-aware reading of released statistics: metric spread under re-drawn noise, gaps beyond it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedsante.reports.noise import beyond_noise, fairness_metrics, metric_noise_sd
from fedsante.reports.performance import GroupStats, group_stats, release_weights

STATS = group_stats(np.array([0, 1] * 100), np.linspace(0.02, 0.98, 200))


def test_the_spread_matches_the_spread_of_truly_noised_statistics() -> None:
    rng = np.random.default_rng(1)
    base, scale = STATS.as_vector(), 4.0 / release_weights()
    truly = [fairness_metrics(GroupStats.from_vector(base + rng.normal(size=base.size) * scale))["accuracy"]
             for _ in range(400)]
    assert metric_noise_sd(STATS, 4.0, draws=400)["accuracy"] == pytest.approx(np.std(truly), rel=0.15)


def test_more_noise_spreads_more_and_the_result_is_reproducible() -> None:
    low, high = metric_noise_sd(STATS, 1.0), metric_noise_sd(STATS, 8.0)
    assert all(high[k] > low[k] for k in ("auc", "accuracy", "sensitivity", "specificity"))
    assert metric_noise_sd(STATS, 8.0) == high


@pytest.mark.parametrize("noise_sd, draws", [(-1.0, 10), (math.nan, 10), (1.0, 1), (1.0, True)])
def test_bad_inputs_are_refused(noise_sd: float, draws: int) -> None:
    with pytest.raises(ValueError):
        metric_noise_sd(STATS, noise_sd, draws=draws)


def test_a_gap_with_unknown_spread_is_never_flagged() -> None:
    gaps = {"auc": {"gap": 0.5, "groups": ("a", "b")}}
    assert beyond_noise(gaps, {"a": {"auc": 0.01}, "b": {}}, 0.1, ["auc"]) == ({}, ["auc"])
    assert beyond_noise(gaps, {"a": {"auc": 0.01}, "b": {"auc": 0.01}}, 0.1, ["auc"])[0] == {"auc": gaps["auc"]}
    assert beyond_noise({"auc": {"gap": 0.05, "groups": ("a", "b")}}, {}, 0.1, ["auc"]) == ({}, [])
