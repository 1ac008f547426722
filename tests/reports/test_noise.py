"""Reading DP evaluation statistics: projection of noisy counts, metric spread under re-drawn noise, gaps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedsante.reports.noise import (beyond_noise, fairness_metrics, from_counts, metric_noise_sd, noisy_counts,
                                    project_counts)
from fedsante.reports.performance import group_stats, summary

STATS = group_stats(np.array([0, 1] * 100), np.linspace(0.02, 0.98, 200))


def test_projection_is_the_closest_non_negative_vector_with_the_total() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        v, total = rng.normal(size=8) * 5, float(rng.integers(0, 40))
        p = project_counts(v, total)
        assert (p >= 0).all() and math.isclose(p.sum(), total, abs_tol=1e-9)
        for _ in range(20):  # no other feasible point is closer
            q = project_counts(p + rng.normal(size=8), total)
            assert np.linalg.norm(v - p) <= np.linalg.norm(v - q) + 1e-9
    with pytest.raises(ValueError, match="total"):
        project_counts(np.ones(3), -1.0)


def test_counts_alone_approximate_the_sums_within_a_tenth_of_risk() -> None:
    exact, approx = summary(STATS), summary(from_counts(STATS.counts))
    assert approx["auc"] == exact["auc"] and approx["accuracy"] == exact["accuracy"]
    assert abs(approx["oe_ratio"] - exact["oe_ratio"]) < 0.05 and abs(approx["brier"] - exact["brier"]) < 0.01


def test_projection_onto_the_public_total_removes_the_bias_of_clipping() -> None:
    rng = np.random.default_rng(1)
    true = STATS.n_positive
    projected = [noisy_counts(STATS.counts, 7.0, rng, total=200).n_positive for _ in range(300)]
    clipped = [float(np.clip(STATS.counts[1] + rng.normal(size=10) * 7.0, 0, None).sum()) for _ in range(300)]
    assert abs(np.mean(projected) - true) < 0.5 * abs(np.mean(clipped) - true)


def test_the_spread_matches_the_spread_of_truly_noised_statistics() -> None:
    rng = np.random.default_rng(1)
    truly = [fairness_metrics(noisy_counts(STATS.counts, 4.0, rng, 200))["accuracy"] for _ in range(400)]
    assert metric_noise_sd([STATS], 4.0, [200], draws=400)["accuracy"] == pytest.approx(np.std(truly), rel=0.15)


def test_more_noise_spreads_more_and_the_result_is_reproducible() -> None:
    low, high = metric_noise_sd([STATS], 1.0), metric_noise_sd([STATS], 8.0)
    assert all(high[k] > low[k] for k in ("auc", "accuracy", "sensitivity", "specificity"))
    assert metric_noise_sd([STATS], 8.0) == high
    two = metric_noise_sd([STATS, STATS], 8.0, [200, 200])
    assert two["accuracy"] < high["accuracy"]  # twice the patients, independent noise


@pytest.mark.parametrize("parts, totals, noise_sd, draws", [
    ([STATS], None, -1.0, 10), ([STATS], None, math.nan, 10), ([STATS], None, 1.0, 1), ([STATS], None, 1.0, True),
    ([], None, 1.0, 10), ([STATS], [1.0, 2.0], 1.0, 10)])
def test_bad_inputs_are_refused(parts, totals, noise_sd: float, draws: int) -> None:
    with pytest.raises(ValueError):
        metric_noise_sd(parts, noise_sd, totals, draws=draws)


def test_a_gap_with_unknown_spread_is_never_flagged() -> None:
    gaps = {"auc": {"gap": 0.5, "groups": ("a", "b")}}
    assert beyond_noise(gaps, {"a": {"auc": 0.01}, "b": {}}, 0.1, ["auc"]) == ({}, ["auc"])
    assert beyond_noise(gaps, {"a": {"auc": 0.01}, "b": {"auc": 0.01}}, 0.1, ["auc"])[0] == {"auc": gaps["auc"]}
    assert beyond_noise({"auc": {"gap": 0.05, "groups": ("a", "b")}}, {}, 0.1, ["auc"]) == ({}, [])
