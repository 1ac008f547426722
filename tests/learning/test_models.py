"""The model interface (fedsante.learning.models), logistic per-example gradients and FedProx's local step."""

import numpy as np
import pytest

from fedsante.learning.logistic import LOGISTIC, SGDConfig, gradient, sgd
from fedsante.learning.models import Model
from fedsante.privacy.dp import DPSGDConfig, dp_sgd


def toy_data(seed: int = 0, n: int = 40, d: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * 2
    y = (X @ rng.normal(size=d) + rng.normal(scale=0.5, size=n) > 0).astype(float)
    return X, y


def random_params(seed: int, d: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"coef": rng.normal(size=d), "intercept": rng.normal(size=1)}


def distance(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return float(np.sqrt(sum(np.sum((a[k] - b[k]) ** 2) for k in a)))


# --- the model interface -------------------------------------------------------------------------

def test_logistic_implements_the_model_interface() -> None:
    assert isinstance(LOGISTIC, Model) and LOGISTIC.name == "logistic" and LOGISTIC.penalized == ("coef",)
    assert {k: v.shape for k, v in LOGISTIC.init_params(3).items()} == {"coef": (3,), "intercept": (1,)}


def test_per_example_gradients_average_to_the_gradient() -> None:
    # Prepare
    X, y = toy_data()
    params = random_params(1)

    # Execute
    rows = LOGISTIC.per_example_gradients(params, X, y)

    # Assert
    assert {k: v.shape for k, v in rows.items()} == {"coef": (40, 4), "intercept": (40, 1)}
    full = LOGISTIC.gradient(params, X, y, l2=0.0)
    for key in params:
        np.testing.assert_allclose(rows[key].mean(axis=0), full[key], rtol=0, atol=1e-12)


def test_model_methods_are_the_module_functions() -> None:
    X, y = toy_data()
    params = random_params(2)

    assert LOGISTIC.loss(params, X, y, l2=0.3) > 0
    want = gradient(params, X, y, l2=0.3)
    np.testing.assert_array_equal(LOGISTIC.gradient(params, X, y, l2=0.3)["coef"], want["coef"])
    assert np.all((LOGISTIC.predict(params, X) > 0) & (LOGISTIC.predict(params, X) < 1))


# --- FedProx's local step ------------------------------------------------------------------------

# One step from w = (coef 0, intercept 0), anchor (coef 1, intercept -1), X = [[2], [0]], y = [1, 0]:
#   p = sigmoid(0) = 0.5 for both rows, residuals p - y = [-0.5, 0.5]
#   loss gradient: coef (2 * -0.5 + 0 * 0.5) / 2 = -0.5, intercept (-0.5 + 0.5) / 2 = 0
#   proximal gradient, mu = 0.5: coef 0.5 * (0 - 1) = -0.5, intercept 0.5 * (0 - (-1)) = 0.5
#   step, lr = 0.1: coef 0 - 0.1 * (-0.5 - 0.5) = 0.1, intercept 0 - 0.1 * (0 + 0.5) = -0.05
#   (mu = 0: coef 0.05, intercept 0)
X_HAND, Y_HAND = np.array([[2.0], [0.0]]), np.array([1.0, 0.0])
START = {"coef": np.array([0.0]), "intercept": np.array([0.0])}
ANCHOR = {"coef": np.array([1.0]), "intercept": np.array([-1.0])}


@pytest.mark.parametrize(("mu", "coef", "intercept"), [(0.5, 0.1, -0.05), (0.0, 0.05, 0.0)])
def test_one_proximal_sgd_step_matches_the_hand_computed_value(mu: float, coef: float, intercept: float) -> None:
    config = SGDConfig(steps=1, lr=0.1, proximal_mu=mu)

    new = sgd(START, X_HAND, Y_HAND, config, seed=0, anchor=ANCHOR)

    np.testing.assert_allclose(new["coef"], [coef], rtol=0, atol=1e-15)
    np.testing.assert_allclose(new["intercept"], [intercept], rtol=0, atol=1e-15)


def test_mu_zero_is_plain_sgd_exactly() -> None:
    X, y = toy_data()
    start = random_params(3)

    plain = sgd(start, X, y, SGDConfig(steps=30, lr=0.1, batch_size=7, l2=0.2), seed=5)
    prox = sgd(start, X, y, SGDConfig(steps=30, lr=0.1, batch_size=7, l2=0.2, proximal_mu=0.0), seed=5,
               anchor=random_params(4))

    for key in start:
        np.testing.assert_array_equal(prox[key], plain[key])


def test_the_anchor_defaults_to_the_starting_model() -> None:
    X, y = toy_data()
    start = random_params(3)
    config = SGDConfig(steps=20, lr=0.1, proximal_mu=0.7)

    default = sgd(start, X, y, config, seed=1)
    explicit = sgd(start, X, y, config, seed=1, anchor={k: v.copy() for k, v in start.items()})

    for key in start:
        np.testing.assert_array_equal(default[key], explicit[key])


def test_a_large_mu_keeps_the_local_model_near_the_global_one() -> None:
    # Prepare
    X, y = toy_data()
    global_ = random_params(6)

    # Execute
    free = sgd(global_, X, y, SGDConfig(steps=100, lr=0.1), seed=0)
    held = sgd(global_, X, y, SGDConfig(steps=100, lr=0.1, proximal_mu=5.0), seed=0)

    # Assert
    assert distance(held, global_) < 0.5 * distance(free, global_)


@pytest.mark.parametrize("mu", [-1.0, float("nan"), float("inf")])
def test_sgd_config_rejects_a_bad_proximal_mu(mu: float) -> None:
    with pytest.raises(ValueError, match=r"The 'proximal_mu' parameter of SGDConfig must be a float >= 0 and finite\."):
        SGDConfig(proximal_mu=mu)


# --- FedProx in DP-SGD ---------------------------------------------------------------------------

@pytest.mark.parametrize("mu", [0.0, 0.6])
def test_dp_sgd_without_noise_or_clipping_is_full_batch_proximal_sgd(mu: float) -> None:
    # Prepare: q = 1 makes Poisson sampling take every row
    X, y = toy_data()
    start, anchor = random_params(7), random_params(8)
    dp_config = DPSGDConfig(steps=15, lr=0.1, sampling_rate=1.0, clip_norm=1e9, noise_multiplier=0.0, l2=0.2,
                            proximal_mu=mu)

    # Execute
    got = dp_sgd(LOGISTIC.per_example_gradients, start, X, y, dp_config, np.random.default_rng(0), anchor=anchor)

    # Assert
    want = sgd(start, X, y, SGDConfig(steps=15, lr=0.1, l2=0.2, proximal_mu=mu), seed=0, anchor=anchor)
    for key in start:
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-12)


def test_dp_sgd_adds_the_proximal_term_after_clipping_and_noise() -> None:
    # Prepare: tight clipping and real noise, the same random draws with and without the proximal term
    X, y = toy_data()
    start, anchor = random_params(7), random_params(8)
    settings = dict(steps=1, lr=0.1, sampling_rate=0.5, clip_norm=0.1, noise_multiplier=1.3)

    # Execute
    plain = dp_sgd(LOGISTIC.per_example_gradients, start, X, y, DPSGDConfig(**settings), np.random.default_rng(2),
                   anchor=anchor)
    prox = dp_sgd(LOGISTIC.per_example_gradients, start, X, y, DPSGDConfig(**settings, proximal_mu=0.5),
                  np.random.default_rng(2), anchor=anchor)

    # Assert: the difference is exactly -lr mu (w - anchor), unclipped and noise-free
    for key in start:
        np.testing.assert_allclose(prox[key] - plain[key], -0.1 * 0.5 * (start[key] - anchor[key]), rtol=0, atol=1e-12)
