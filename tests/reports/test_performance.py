"""fedsante.reports.performance: metrics of summed node statistics equal the centralised computations."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.special import expit, logit
from sklearn.metrics import accuracy_score, brier_score_loss, confusion_matrix, roc_auc_score

from fedsante.reports.performance import (GroupStats, accuracy, auc, auc_ci, auc_se, brier, calibration_in_the_large,
                                          calibration_slope_intercept, combine, confusion, group_stats,
                                          reliability_curve, scaled_brier, summary)


def predictions(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Smooth, informative predictions with a few values on the 0.5 edge and just below it."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = expit(rng.normal(0, 1.3, n) + 1.2 * (y - 0.5))
    p[:3] = [0.5, np.nextafter(0.5, 0.0), 0.0]
    p[3:5] = [1.0, 0.3]
    return y, p


def sites(y: np.ndarray, p: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    cuts = np.sort(np.random.default_rng(seed).choice(np.arange(1, len(y)), 3, replace=False))
    return list(zip(np.split(y, cuts), np.split(p, cuts), strict=True))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_combined_site_statistics_give_the_metrics_of_the_pooled_data(seed: int) -> None:
    y, p = predictions(3000, seed)
    pooled = group_stats(y, p)
    combined = combine([group_stats(ys, ps) for ys, ps in sites(y, p, seed)])

    assert np.array_equal(combined.counts, pooled.counts)
    assert sum(group_stats(ys, ps) for ys, ps in sites(y, p, seed)).as_vector() == pytest.approx(
        pooled.as_vector(), abs=1e-9)
    for metric in (auc, brier, accuracy, scaled_brier):
        assert metric(combined) == pytest.approx(metric(pooled), abs=1e-12)
    for got, want in zip(reliability_curve(combined), reliability_curve(pooled), strict=True):
        assert got["n"] == want["n"] and got["bin_low"] == want["bin_low"]
        assert got["mean_predicted"] == pytest.approx(want["mean_predicted"], abs=1e-12)
        assert got["observed_rate"] == pytest.approx(want["observed_rate"], abs=1e-12)
    assert brier(combined) == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert accuracy(combined) == accuracy_score(y, p >= 0.5)
    assert accuracy(pooled, threshold_bin=3) == accuracy_score(y, p >= 0.3)


def test_confusion_matches_sklearn_at_one_half() -> None:
    y, p = predictions(2000, 3)
    tn, fp, fn, tp = confusion_matrix(y, p >= 0.5).ravel()
    got = confusion(combine([group_stats(ys, ps) for ys, ps in sites(y, p, 3)]))
    assert (got["tn"], got["fp"], got["fn"], got["tp"]) == (tn, fp, fn, tp)
    assert got["sensitivity"] == pytest.approx(tp / (tp + fn), abs=1e-15)
    assert got["specificity"] == pytest.approx(tn / (tn + fp), abs=1e-15)
    assert got["ppv"] == pytest.approx(tp / (tp + fp), abs=1e-15)
    assert got["npv"] == pytest.approx(tn / (tn + fn), abs=1e-15)
    none_predicted_positive = confusion(group_stats(np.array([0, 1]), np.array([0.1, 0.2])))
    assert math.isnan(none_predicted_positive["ppv"]) and none_predicted_positive["sensitivity"] == 0.0


def test_binned_auc_is_exact_with_one_score_per_bin_and_close_with_deciles() -> None:
    rng = np.random.default_rng(4)
    score = rng.permutation((np.arange(1500) + 0.5) / 1500)  # 1/1500 apart: distinct bins out of 100000
    y = rng.binomial(1, score)
    assert auc(group_stats(y, score, bins=100_000)) == pytest.approx(roc_auc_score(y, score), abs=1e-12)

    y, p = predictions(5000, 5)
    assert abs(auc(group_stats(y, p)) - roc_auc_score(y, p)) < 0.02
    assert auc(group_stats(y, p, bins=1000)) == pytest.approx(roc_auc_score(y, p), abs=1e-3)


def test_hanley_mcneil_standard_error_and_interval() -> None:
    # A = 0.75, 30 positives, 70 negatives: Q1 = 0.75 / 1.25 = 0.6, Q2 = 2 * 0.5625 / 1.75 = 9 / 14
    by_hand = math.sqrt((0.75 * 0.25 + 29 * (0.6 - 0.5625) + 69 * (9 / 14 - 0.5625)) / (30 * 70))
    assert by_hand == pytest.approx(0.0569864, abs=1e-7)
    assert auc_se(0.75, 30, 70) == pytest.approx(by_hand, rel=1e-12)
    low, high = auc_ci(0.75, 30, 70)
    assert (low, high) == pytest.approx((0.75 - 1.959964 * by_hand, 0.75 + 1.959964 * by_hand), abs=1e-6)
    assert auc_ci(0.75, 30, 70, level=0.99)[0] < low

    widths = [np.subtract(*auc_ci(0.75, n, 2 * n)[::-1]) for n in (10, 100, 1000, 10000)]
    assert all(a > b > 0 for a, b in zip(widths, widths[1:], strict=False))
    assert auc_ci(0.99, 5, 5)[1] == 1.0 and auc_ci(0.01, 5, 5)[0] == 0.0
    assert all(math.isnan(x) for x in (*auc_ci(0.7, 0, 10), *auc_ci(math.nan, 10, 10)))


def test_brier_scaled_brier_and_calibration_in_the_large_match_direct_formulas() -> None:
    y, p = predictions(1000, 6)
    stats = group_stats(y, p)
    prevalence = y.mean()
    assert scaled_brier(stats) == pytest.approx(1 - brier_score_loss(y, p) / (prevalence * (1 - prevalence)), abs=1e-12)
    large = calibration_in_the_large(stats)
    assert large["oe_ratio"] == pytest.approx(y.sum() / p.sum(), rel=1e-12)
    assert (large["mean_predicted"], large["observed_rate"]) == pytest.approx((p.mean(), prevalence), abs=1e-12)

    one_class = group_stats(np.zeros(20, dtype=int), np.linspace(0, 0.4, 20))
    assert math.isnan(scaled_brier(one_class)) and math.isnan(auc(one_class))
    assert brier(one_class) == pytest.approx(brier_score_loss(np.zeros(20), np.linspace(0, 0.4, 20)), abs=1e-12)


def test_reliability_curve_matches_a_per_bin_computation() -> None:
    y, p = predictions(2000, 7)
    p = np.where(p > 0.9, 0.85, p)  # leaves the last bin empty
    curve = reliability_curve(group_stats(y, p))
    bin_of = np.minimum(np.floor(p * 10), 9)
    for k, row in enumerate(curve):
        assert (row["bin_low"], row["bin_high"]) == pytest.approx((k / 10, (k + 1) / 10))
        members = bin_of == k
        assert row["n"] == members.sum()
        if members.any():
            assert row["mean_predicted"] == pytest.approx(p[members].mean(), abs=1e-12)
            assert row["observed_rate"] == pytest.approx(y[members].mean(), abs=1e-12)
    assert curve[9] == {"bin_low": 0.9, "bin_high": 1.0, "n": 0.0, "mean_predicted": None, "observed_rate": None}


def test_binned_recalibration_recovers_a_known_intercept_and_slope() -> None:
    rng = np.random.default_rng(8)
    p = expit(rng.normal(-0.5, 1.2, 200_000))
    stats = group_stats(rng.binomial(1, expit(0.3 + 0.7 * logit(p))), p)
    fit = calibration_slope_intercept(stats)
    assert fit["intercept"] == pytest.approx(0.3, abs=0.1) and fit["slope"] == pytest.approx(0.7, abs=0.1)
    noisy = GroupStats.from_vector(stats.as_vector() + rng.normal(0, 10, 42), bins=10)  # DP-like noise
    assert calibration_slope_intercept(noisy)["slope"] == pytest.approx(0.7, abs=0.1)

    calibrated = calibration_slope_intercept(group_stats(rng.binomial(1, p), p))
    assert calibrated["intercept"] == pytest.approx(0.0, abs=0.05)
    assert calibrated["slope"] == pytest.approx(1.0, abs=0.05)


def test_recalibration_is_nan_when_it_cannot_be_fitted() -> None:
    one_bin = group_stats(np.array([0, 1, 1]), np.array([0.31, 0.32, 0.33]))
    assert all(math.isnan(v) for v in calibration_slope_intercept(one_bin).values())
    separated = group_stats(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]))  # MLE slope is infinite
    assert all(math.isnan(v) for v in calibration_slope_intercept(separated).values())


def test_noisy_statistics_never_raise_and_stay_in_range() -> None:
    rng = np.random.default_rng(9)
    y, p = predictions(60, 10)
    vector = group_stats(y, p).as_vector()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by zero or invalid-value warnings either
        for scale in (0.5, 5.0, 50.0):
            for _ in range(30):
                noisy = GroupStats.from_vector(vector + rng.normal(0, scale, vector.shape), bins=10)
                result = summary(noisy)
                for key in ("accuracy", "auc", "auc_ci_low", "auc_ci_high", "brier", "sensitivity", "specificity",
                            "ppv", "npv"):
                    assert math.isnan(result[key]) or 0 <= result[key] <= 1, (key, result[key])
                assert result["n"] >= result["n_positive"] >= 0
                assert math.isnan(result["scaled_brier"]) or result["scaled_brier"] <= 1
                assert math.isnan(result["oe_ratio"]) or result["oe_ratio"] >= 0
                for row in reliability_curve(noisy):
                    assert row["n"] >= 0
                    assert row["mean_predicted"] is None or row["bin_low"] <= row["mean_predicted"] <= row["bin_high"]
                    assert row["observed_rate"] is None or 0 <= row["observed_rate"] <= 1


def test_summary_of_no_patients_is_all_nan() -> None:
    result = summary(group_stats(np.array([], dtype=int), np.array([])))
    assert result["n"] == 0.0 and all(math.isnan(v) for k, v in result.items() if k not in ("n", "n_positive"))


def test_statistics_round_trip_as_a_vector_and_are_read_only() -> None:
    stats = group_stats(*predictions(100, 11), bins=4)
    back = GroupStats.from_vector(stats.as_vector(), bins=4)
    assert np.array_equal(back.as_vector(), stats.as_vector()) and len(stats.as_vector()) == 4 * 4 + 2
    with pytest.raises(ValueError):
        stats.counts[0, 0] = 1.0


@pytest.mark.parametrize(("call", "message"), [
    (lambda: group_stats(np.array([0, 1]), np.array([0.5])), "same length. Got shapes"),
    (lambda: group_stats(np.array([0, 2]), np.array([0.5, 0.5])), "only 0 and 1. Got values"),
    (lambda: group_stats(np.array([0, 1]), np.array([0.5, 1.2])), r"\[0, 1\]. Got values"),
    (lambda: group_stats(np.array([0, 1]), np.array([0.5, np.nan])), r"\[0, 1\]. Got values"),
    (lambda: group_stats(np.array([0, 1]), np.array([0.5, 0.5]), bins=5), "even integer >= 2 .*Got 5 instead"),
    (lambda: group_stats(np.array([0, 1]), np.array([0.5, 0.5]), bins=0), "even integer >= 2 .*Got 0 instead"),
    (lambda: combine([]), "at least one GroupStats. Got an empty sequence instead"),
    (lambda: combine([group_stats(np.array([1]), np.array([0.5]), bins=2),
                      group_stats(np.array([1]), np.array([0.5]), bins=4)]), "same bins .2.. Got 4 instead"),
    (lambda: GroupStats.from_vector(np.zeros(5), bins=2), "length 10. Got shape"),
    (lambda: accuracy(group_stats(np.array([1]), np.array([0.5])), threshold_bin=11), r"\[0, 10\]. Got 11"),
    (lambda: auc_ci(0.7, 10, 10, level=1.5), r"\(0, 1\). Got 1.5 instead"),
])
def test_bad_input_is_refused_with_a_clear_message(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
