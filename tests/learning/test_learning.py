"""fedsante.learning: logistic regression and federated standardisation (pure functions).

Strategies are tested in test_strategies.py, the model interface and FedProx's local step in test_models.py.
"""

import numpy as np
import pytest

from fedsante.learning.logistic import (
    LogisticRegression, SGDConfig, gradient, init_params, log_loss, sgd,
)
from fedsante.learning.scaling import Moments, Scaler, combine, local_scaler


def toy_data(seed: int = 0, n: int = 40, d: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X @ rng.normal(size=d) + rng.normal(scale=0.5, size=n) > 0).astype(float)
    return X, y


# --- logistic ------------------------------------------------------------------------------------

@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_gradient_matches_finite_differences_of_log_loss(l2: float) -> None:
    # Prepare
    X, y = toy_data()
    rng = np.random.default_rng(1)
    params = {"coef": rng.normal(size=X.shape[1]), "intercept": rng.normal(size=1)}
    h = 1e-6

    # Execute
    analytic = gradient(params, X, y, l2=l2)
    numeric = {}
    for key, value in params.items():
        numeric[key] = np.zeros_like(value)
        for i in range(value.size):
            up = {k: v.copy() for k, v in params.items()}
            down = {k: v.copy() for k, v in params.items()}
            up[key][i] += h
            down[key][i] -= h
            numeric[key][i] = (log_loss(up, X, y, l2=l2) - log_loss(down, X, y, l2=l2)) / (2 * h)

    # Assert
    for key in params:
        np.testing.assert_allclose(analytic[key], numeric[key], rtol=0, atol=1e-6)


def test_log_loss_at_zero_parameters_is_log_2() -> None:
    X, y = toy_data()
    assert log_loss(init_params(X.shape[1]), X, y) == pytest.approx(np.log(2), abs=1e-15)


def test_sgd_is_deterministic_for_a_seed() -> None:
    # Prepare
    X, y = toy_data()
    config = SGDConfig(steps=30, lr=0.1, batch_size=5, l2=0.01)
    start = init_params(X.shape[1])

    # Execute
    a = sgd(start, X, y, config, seed=3)
    b = sgd(start, X, y, config, seed=3)
    c = sgd(start, X, y, config, seed=4)

    # Assert
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["coef"], c["coef"])
    assert np.array_equal(start["coef"], np.zeros(X.shape[1]))  # the input is not modified


def test_full_batch_sgd_does_not_depend_on_the_seed_and_lowers_the_loss() -> None:
    X, y = toy_data()
    config = SGDConfig(steps=50, lr=0.5)
    start = init_params(X.shape[1])

    a = sgd(start, X, y, config, seed=1)
    b = sgd(start, X, y, config, seed=2)

    np.testing.assert_array_equal(a["coef"], b["coef"])
    assert log_loss(a, X, y) < log_loss(start, X, y)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, r"The 'steps' parameter of SGDConfig must be an int >= 1\. Got 0 instead\."),
        ({"steps": 2.5}, r"The 'steps' parameter of SGDConfig must be an int >= 1\. Got 2\.5 instead\."),
        ({"batch_size": -1}, r"The 'batch_size' parameter of SGDConfig must be an int >= 0\. Got -1 instead\."),
        ({"lr": 0}, r"The 'lr' parameter of SGDConfig must be a float > 0 .*Got 0 instead\."),
        ({"lr": -0.1}, r"The 'lr' parameter of SGDConfig must be a float > 0 .*Got -0\.1 instead\."),
        ({"lr": "0.1"}, r"The 'lr' parameter of SGDConfig must be a float > 0 .*Got '0\.1' instead\."),
        ({"l2": -1.0}, r"The 'l2' parameter of SGDConfig .*Got -1\.0 instead\."),
    ],
)
def test_sgd_config_rejects_bad_values_by_name(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SGDConfig(**kwargs)


@pytest.mark.parametrize("name", ["lr", "l2"])
def test_sgd_config_rejects_nan(name: str) -> None:
    # NaN is neither > 0 nor >= 0; accepting it silently turns every parameter into NaN.
    with pytest.raises(ValueError, match=rf"The '{name}' parameter of SGDConfig"):
        SGDConfig(**{name: float("nan")})


def test_logistic_regression_predict_proba_before_fit_raises() -> None:
    with pytest.raises(RuntimeError, match=r"This LogisticRegression instance is not fitted yet"):
        LogisticRegression().predict_proba(np.zeros((2, 3)))


def test_logistic_regression_fit_equals_sgd_from_zero() -> None:
    X, y = toy_data()
    config = SGDConfig(steps=20, lr=0.2, batch_size=8)

    model = LogisticRegression(config=config, seed=5).fit(X, y)

    expected = sgd(init_params(X.shape[1]), X, y, config, seed=5)
    np.testing.assert_array_equal(model.params_["coef"], expected["coef"])
    assert set(np.unique(model.predict(X))) <= {0.0, 1.0}


# --- scaling -------------------------------------------------------------------------------------

@pytest.mark.parametrize("sizes", [(1, 1), (3, 1, 7), (10, 25, 2, 40)])
def test_combine_equals_the_statistics_of_the_stacked_rows(sizes: tuple[int, ...]) -> None:
    # Prepare
    rng = np.random.default_rng(sum(sizes))
    parts = [rng.normal(loc=1.0, scale=2.0, size=(n, 5)) for n in sizes]
    stacked = np.vstack(parts)

    # Execute
    scaler = combine([Moments.of(p) for p in parts])

    # Assert
    np.testing.assert_allclose(scaler.mean, stacked.mean(axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(scaler.scale, stacked.std(axis=0, ddof=1) + 1e-9, rtol=0, atol=1e-12)


def test_combine_maps_a_constant_feature_to_zero() -> None:
    X = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])

    scaler = local_scaler(X)

    assert scaler.scale[1] == pytest.approx(1e-9)
    np.testing.assert_array_equal(scaler.transform(X)[:, 1], 0.0)


def test_combine_refuses_no_parts() -> None:
    with pytest.raises(ValueError, match=r"combine needs the moments of at least one node\. Got none\."):
        combine([])


def test_combine_refuses_fewer_than_two_rows() -> None:
    with pytest.raises(ValueError, match=r"at least 2 rows in total to estimate a variance\. Got 1\."):
        combine([Moments.of(np.ones((1, 3))), Moments.of(np.ones((0, 3)))])


def test_scaler_transform_standardises() -> None:
    scaler = Scaler(mean=np.array([1.0, -2.0]), scale=np.array([2.0, 4.0]))
    np.testing.assert_array_equal(scaler.transform(np.array([[3.0, 2.0]])), [[1.0, 1.0]])
