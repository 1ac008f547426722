"""fedsante.reports.explain: attributions equal SHAP's, federated aggregates equal pooled ones, importances behave."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedsante.data.heart import FEATURES, HOSPITALS, load_hospital
from fedsante.learning.logistic import decision_function, log_loss
from fedsante.learning.scaling import Moments, combine
from fedsante.reports.explain import (abs_deviation_sums, aggregate_importance, federated_mean_abs_attribution,
                                      linear_attributions, mean_abs_attribution, odds_ratios, permutation_importance,
                                      ranking)

D = len(FEATURES)


@pytest.fixture(scope="module")
def nodes() -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(X_train, y_train, X_test, y_test) of each bundled hospital, standardised with the federated scaler."""
    tables = [load_hospital(h) for h in HOSPITALS]
    scaler = combine([Moments.of(t.part("train")[0]) for t in tables])
    return [(scaler.transform(t.part("train")[0]), t.part("train")[1], scaler.transform(t.part("test")[0]),
             t.part("test")[1]) for t in tables]


def fitted(X: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000).fit(X, y)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # shap 0.51 on matplotlib
def test_linear_attributions_equal_shap_linear_explainer(nodes) -> None:
    import shap

    X, y, X_test, _ = nodes[0]
    model = fitted(X, y)
    params = {"coef": model.coef_[0], "intercept": model.intercept_}
    background = X[:80]

    ours = linear_attributions(params, X_test, background.mean(axis=0))

    by_model = shap.LinearExplainer(model, shap.maskers.Independent(background, max_samples=len(background)))
    by_tuple = shap.LinearExplainer((model.coef_[0], model.intercept_[0]), background)
    for explainer in (by_model, by_tuple):
        np.testing.assert_allclose(ours, explainer.shap_values(X_test), rtol=0, atol=1e-9)
    # log-odds space: the base value plus the attributions gives each patient's log-odds
    base = float(np.ravel(by_model.expected_value)[0])
    np.testing.assert_allclose(base + ours.sum(axis=1), decision_function(params, X_test), rtol=0, atol=1e-9)


def test_federated_mean_abs_attribution_equals_the_pooled_one(nodes) -> None:
    rng = np.random.default_rng(3)
    params = {"coef": rng.normal(size=D), "intercept": np.array([0.3])}
    background = rng.normal(scale=0.1, size=D)  # any mean shared by all nodes
    parts = [test for _, _, test, _ in nodes]

    federated = federated_mean_abs_attribution(params, [abs_deviation_sums(X, background) for X in parts],
                                               [len(X) for X in parts])

    pooled = np.concatenate(parts)
    np.testing.assert_allclose(federated, mean_abs_attribution(params, pooled, background), rtol=0, atol=1e-12)
    np.testing.assert_allclose(federated, np.abs(linear_attributions(params, pooled, background)).mean(axis=0),
                               rtol=0, atol=1e-12)


def test_permutation_importance_ignored_feature_zero_strong_feature_positive(nodes) -> None:
    X, y, X_test, y_test = nodes[0]
    model = fitted(X, y)
    coef = model.coef_[0].copy()
    coef[[1, 5]] = 0.0  # sex and fbs ignored
    params = {"coef": coef, "intercept": model.intercept_}
    strongest = int(np.argmax(np.abs(coef)))

    for metric in ("log_loss", "auc"):
        importance = permutation_importance(params, X_test, y_test, metric=metric, rng=np.random.default_rng(7))
        assert importance.shape == (D,)
        assert importance[1] == 0.0 and importance[5] == 0.0
        assert importance[strongest] > 0.01


def test_permutation_importance_is_the_mean_loss_increase_and_reproducible() -> None:
    X = np.array([[-2.0, 1.0], [-1.0, -1.0], [1.0, 0.5], [2.0, -0.5], [0.5, 2.0]])
    y = np.array([0.0, 0.0, 1.0, 1.0, 1.0])
    params = {"coef": np.array([1.5, -0.7]), "intercept": np.array([0.1])}

    importance = permutation_importance(params, X, y, repeats=3, rng=np.random.default_rng(11))

    rng, base, expected = np.random.default_rng(11), log_loss(params, X, y), np.zeros(2)
    for j in range(2):
        for _ in range(3):
            shuffled = X.copy()
            shuffled[:, j] = X[rng.permutation(5), j]
            expected[j] += (log_loss(params, shuffled, y) - base) / 3
    np.testing.assert_allclose(importance, expected, rtol=0, atol=1e-12)
    again = permutation_importance(params, X, y, repeats=3, rng=np.random.default_rng(11))
    assert np.array_equal(importance, again)
    other = permutation_importance(params, X, y, repeats=3, rng=np.random.default_rng(12))
    assert not np.array_equal(importance, other)


def test_aggregate_importance_is_the_row_weighted_mean() -> None:
    values = [np.array([0.1, 0.0, -0.02]), np.array([0.4, 0.2, 0.0]), np.array([0.2, 0.1, 0.05])]
    counts = [30, 10, 60]

    result = aggregate_importance(values, counts)

    np.testing.assert_allclose(result, (30 * values[0] + 10 * values[1] + 60 * values[2]) / 100, rtol=0, atol=1e-15)
    assert not np.allclose(result, np.mean(values, axis=0))
    np.testing.assert_array_equal(aggregate_importance([values[1]], [7]), values[1])


def test_odds_ratios_by_hand() -> None:
    params = {"coef": np.array([math.log(2.0), -math.log(3.0), 0.0]), "intercept": np.array([1.0])}

    result = odds_ratios(params, np.array([10.0, 0.5, 4.0]))

    np.testing.assert_allclose(result["per_sd"], [2.0, 1 / 3, 1.0], rtol=1e-12)
    np.testing.assert_allclose(result["per_unit"], [2.0 ** 0.1, 1 / 9, 1.0], rtol=1e-12)


def test_ranking_sorts_descending_and_keeps_ties_in_feature_order() -> None:
    importance = np.array([0.1, 0.5, 0.3, 0.5, -0.2])
    names = ["age", "sex", "chol", "cp=4", "fbs"]

    assert ranking(importance, names, top=3) == [("sex", 0.5), ("cp=4", 0.5), ("chol", 0.3)]
    assert [name for name, _ in ranking(importance, names, top=10)] == ["sex", "cp=4", "chol", "age", "fbs"]
    assert ranking(importance, names) == ranking(importance, names, top=5)


PARAMS = {"coef": np.array([1.0, -1.0, 0.5]), "intercept": np.zeros(1)}
X3, Y3 = np.arange(12.0).reshape(4, 3), np.array([0.0, 1.0, 0.0, 1.0])


@pytest.mark.parametrize("call, message", [
    (lambda: linear_attributions(PARAMS, np.zeros((4, 2)), np.zeros(3)), r"X_scaled must have shape \(n, 3\)"),
    (lambda: linear_attributions(PARAMS, np.zeros(3), np.zeros(3)), "X_scaled must have shape"),
    (lambda: linear_attributions(PARAMS, X3, np.zeros(2)), r"background_mean must have shape \(3,\)"),
    (lambda: linear_attributions({"coef": np.zeros((3, 1)), "intercept": np.zeros(1)}, X3, np.zeros(3)), "1-D"),
    (lambda: mean_abs_attribution(PARAMS, np.zeros((0, 3)), np.zeros(3)), "at least one row"),
    (lambda: abs_deviation_sums(X3, np.zeros((1, 3))), "background_mean"),
    (lambda: federated_mean_abs_attribution(PARAMS, [], []), "empty list"),
    (lambda: federated_mean_abs_attribution(PARAMS, [np.zeros(3)], [4, 5]), "one count per node"),
    (lambda: federated_mean_abs_attribution(PARAMS, [np.zeros(3)], [0]), ">= 1"),
    (lambda: federated_mean_abs_attribution(PARAMS, [np.zeros(2)], [4]), r"sums\[0\] must have shape \(3,\)"),
    (lambda: permutation_importance(PARAMS, X3, Y3, repeats=0, rng=np.random.default_rng(0)), "repeats"),
    (lambda: permutation_importance(PARAMS, X3, Y3, metric="brier", rng=np.random.default_rng(0)), "log_loss"),
    (lambda: permutation_importance(PARAMS, X3, Y3[:3], rng=np.random.default_rng(0)), r"y must have shape \(4,\)"),
    (lambda: permutation_importance(PARAMS, X3, np.ones(4), metric="auc", rng=np.random.default_rng(0)),
     "both outcome classes"),
    (lambda: permutation_importance(PARAMS, X3, Y3, rng=0), "Generator"),
    (lambda: aggregate_importance([], []), "empty list"),
    (lambda: aggregate_importance([np.zeros(3), np.zeros(2)], [5, 5]), r"values\[1\] must have shape \(3,\)"),
    (lambda: aggregate_importance([np.array([np.nan, 0.0])], [5]), "finite"),
    (lambda: odds_ratios(PARAMS, np.array([1.0, 0.0, 1.0])), "scale must be finite and > 0"),
    (lambda: odds_ratios(PARAMS, np.ones(2)), r"scale must have shape \(3,\)"),
    (lambda: ranking(np.ones(3), ["a", "b"]), r"shape \(2,\)"),
    (lambda: ranking(np.ones(2), ["a", "b"], top=0), "top"),
])
def test_bad_input_is_refused_with_a_clear_message(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
