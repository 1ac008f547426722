"""Differential privacy: DP-SGD and releases (fedsante.privacy.dp), accounting checked independently."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import gammaln, logsumexp
from scipy.stats import norm

from fedsante.common.errors import ConfigError
from fedsante.learning.logistic import LOGISTIC, SGDConfig, gradient, sgd
from fedsante.learning.scaling import Moments, combine
from fedsante.privacy.accountant import (BudgetExceeded, PrivacyPlan, calibrate_sigma, epsilon_for, gaussian_event,
                                         sgd_event)
from fedsante.learning.private_scaling import private_moments, private_scaler, range_scaler
from fedsante.privacy.dp import (DPSGDConfig, clip_rows, clip_update, distributed_noise, dp_sgd, flatten,
                                 gaussian_release, stack_rows, unflatten)

per_example_gradients = LOGISTIC.per_example_gradients


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5)) * 3
    y = (rng.random(60) < 0.4).astype(float)
    params = {"coef": rng.normal(size=5), "intercept": np.array([0.3])}
    return X, y, params


# --- DP-SGD ---------------------------------------------------------------------------------------------------------


def test_stacked_per_example_gradients_average_to_the_flattened_batch_gradient(data) -> None:
    X, y, params = data
    G = stack_rows(per_example_gradients(params, X, y))
    assert G.shape == (60, 6)
    np.testing.assert_allclose(G.mean(axis=0), flatten(gradient(params, X, y)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(G.sum(axis=0), 60 * flatten(gradient(params, X, y)), rtol=0, atol=1e-12)


def test_flatten_round_trips(data) -> None:
    _, _, params = data
    back = unflatten(flatten(params), params)
    assert back.keys() == params.keys() and all(np.array_equal(back[k], params[k]) for k in params)


def test_unflatten_refuses_a_vector_of_the_wrong_size(data) -> None:
    _, _, params = data
    with pytest.raises(ValueError, match=r"unflatten got a vector of 7 values for parameters of 6 values\."):
        unflatten(np.zeros(7), params)


def test_clipping_bounds_every_per_example_norm(data) -> None:
    X, y, params = data
    G = stack_rows(per_example_gradients(params, X, y))
    clipped = clip_rows(G, 1.0)
    norms, before = np.linalg.norm(clipped, axis=1), np.linalg.norm(G, axis=1)
    assert np.all(norms <= 1.0 + 1e-12)
    assert np.any(before > 1.0) and np.any(before < 1.0)
    np.testing.assert_array_equal(clipped[before <= 1.0], G[before <= 1.0])  # rows inside are untouched
    np.testing.assert_allclose(norms[before > 1.0], 1.0)
    directions = clipped[before > 1.0] / norms[before > 1.0, None]
    np.testing.assert_allclose(directions, G[before > 1.0] / before[before > 1.0, None])


def test_dp_sgd_without_noise_or_clipping_is_full_batch_sgd(data) -> None:
    X, y, params = data
    config = DPSGDConfig(steps=25, lr=0.2, sampling_rate=1.0, clip_norm=1e9, noise_multiplier=0.0, l2=0.3)
    got = dp_sgd(per_example_gradients, params, X, y, config, np.random.default_rng(1))
    want = sgd(params, X, y, SGDConfig(steps=25, lr=0.2, batch_size=0, l2=0.3), seed=0)
    for key in params:
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-12)


def test_dp_sgd_without_noise_or_clipping_follows_the_sampled_batches(data) -> None:
    X, y, params = data
    q, n = 0.3, len(y)
    config = DPSGDConfig(steps=20, lr=0.1, sampling_rate=q, clip_norm=1e9, noise_multiplier=0.0, l2=0.5)
    got = dp_sgd(per_example_gradients, params, X, y, config, np.random.default_rng(7))
    rng, current = np.random.default_rng(7), {k: v.copy() for k, v in params.items()}
    sizes = []
    for _ in range(20):  # the same draws as dp_sgd: the Poisson mask, then the (here zero) noise
        mask = rng.random(n) < q
        rng.normal(size=X.shape[1] + 1)
        sizes.append(int(mask.sum()))
        data_part = gradient(current, X[mask], y[mask])  # mean over the batch ...
        step = {k: v * mask.sum() / (q * n) for k, v in data_part.items()}  # ... divided by the expected size
        step["coef"] = step["coef"] + 0.5 * current["coef"]  # the penalty, outside the private part
        current = {k: current[k] - 0.1 * step[k] for k in current}
    assert len(set(sizes)) > 1  # Poisson sampling: batch sizes vary
    for key in params:
        np.testing.assert_allclose(got[key], current[key], rtol=0, atol=1e-12)


def test_dp_sgd_survives_an_empty_poisson_batch(data) -> None:
    X, y, params = data
    config = DPSGDConfig(steps=3, lr=0.1, sampling_rate=1e-9, clip_norm=1.0, noise_multiplier=0.0)

    got = dp_sgd(per_example_gradients, params, X, y, config, np.random.default_rng(0))

    for key in params:  # no row sampled, no noise, no penalty: the model does not move
        np.testing.assert_array_equal(got[key], params[key])


def test_dp_sgd_noise_has_standard_deviation_sigma_c_over_expected_batch() -> None:
    X, y = np.zeros((50, 2)), np.full(50, 0.5)  # every gradient is exactly zero at zero parameters
    config = DPSGDConfig(steps=1, lr=1.0, sampling_rate=0.2, clip_norm=2.0, noise_multiplier=1.5)
    rng = np.random.default_rng(3)
    zero = {"coef": np.zeros(2), "intercept": np.zeros(1)}
    moves = np.array([flatten(dp_sgd(per_example_gradients, zero, X, y, config, rng)) for _ in range(4000)])
    assert np.abs(moves.mean(axis=0)).max() < 0.02
    np.testing.assert_allclose(moves.std(axis=0), 1.5 * 2.0 / (0.2 * 50), rtol=0.05)


def test_dp_sgd_config_rejects_out_of_range_values() -> None:
    with pytest.raises(ValueError, match="sampling_rate"):
        DPSGDConfig(sampling_rate=0.0)
    with pytest.raises(ValueError, match="clip_norm"):
        DPSGDConfig(clip_norm=-1.0)
    with pytest.raises(ValueError, match="steps"):
        DPSGDConfig(steps=0)


# --- client-level DP-FedAvg and statistics releases -----------------------------------------------------------------


def test_clip_update_bounds_the_joint_norm_and_keeps_small_updates() -> None:
    delta = {"coef": np.array([3.0, 0.0]), "intercept": np.array([4.0])}
    clipped = clip_update(delta, 2.0)
    assert math.isclose(math.sqrt(sum(float(np.sum(v * v)) for v in clipped.values())), 2.0)
    np.testing.assert_allclose(clipped["coef"], [1.2, 0.0])
    assert clip_update(delta, 10.0)["intercept"].tolist() == [4.0]


def test_distributed_noise_sums_to_one_gaussian_mechanism() -> None:
    rng, zero = np.random.default_rng(5), {"coef": np.zeros(3), "intercept": np.zeros(1)}
    def share() -> np.ndarray:
        return flatten(distributed_noise(zero, max_norm=0.5, noise_multiplier=2.0, n_clients=4, rng=rng))

    sums = np.array([sum(share() for _ in range(4)) for _ in range(3000)])
    np.testing.assert_allclose(sums.std(axis=0), 2.0 * 0.5, rtol=0.05)


def test_gaussian_release_noise_is_sigma_times_sensitivity() -> None:
    noisy = gaussian_release(np.zeros(20000), sensitivity=3.0, sigma=2.0, rng=np.random.default_rng(2))
    assert abs(noisy.std() - 6.0) < 0.1
    with pytest.raises(ValueError, match="sensitivity"):
        gaussian_release(np.zeros(2), sensitivity=0.0, sigma=1.0, rng=np.random.default_rng(0))


def test_private_moments_without_noise_are_the_moments_of_the_clipped_rows() -> None:
    X = np.array([[1.0, 10.0], [3.0, -50.0], [2.0, 20.0]])
    lower, upper = np.array([0.0, 0.0]), np.array([4.0, 30.0])
    m = private_moments(X, lower, upper, 0.0, np.random.default_rng(0))
    want = Moments.of(np.clip(X, lower, upper))
    assert m.n == 3
    np.testing.assert_allclose(m.total, want.total)
    np.testing.assert_allclose(m.total_sq, want.total_sq)
    scaler = private_scaler([m, m], lower, upper)
    exact = combine([want, want])
    np.testing.assert_allclose(scaler.mean, exact.mean)
    np.testing.assert_allclose(scaler.scale, np.clip(exact.scale, [0.2, 1.5], [2.0, 15.0]))


def test_private_scaler_survives_absurd_noise() -> None:
    lower, upper = np.array([0.0]), np.array([10.0])
    m = private_moments(np.array([[5.0]] * 3), lower, upper, 500.0, np.random.default_rng(1))
    scaler = private_scaler([m], lower, upper)
    assert 0 <= scaler.mean[0] <= 10 and 0.5 <= scaler.scale[0] <= 5
    np.testing.assert_allclose(range_scaler(lower, upper).transform(np.array([[0.0], [10.0]])).ravel(), [-1, 1])


# --- accounting, against independent computations -------------------------------------------------------------------


def exact_gaussian_epsilon(sigma: float, delta: float) -> float:
    """Tight epsilon of one Gaussian mechanism, sensitivity 1 (Balle & Wang 2018, Theorem 8)."""

    def delta_of(eps: float) -> float:
        return norm.cdf(0.5 / sigma - eps * sigma) - math.exp(eps) * norm.cdf(-0.5 / sigma - eps * sigma)

    return brentq(lambda e: delta_of(e) - delta, 0.0, 100.0)


def subsampled_gaussian_rdp(q: float, sigma: float, order: int) -> float:
    """RDP of the Poisson-subsampled Gaussian at an integer order (Mironov, Talwar & Zhang 2019, Eq. 10)."""
    if q == 1:
        return order / (2 * sigma**2)
    k = np.arange(order + 1)
    log_binom = gammaln(order + 1) - gammaln(k + 1) - gammaln(order - k + 1)
    log_terms = log_binom + (order - k) * math.log1p(-q) + k * math.log(q) + (k * k - k) / (2 * sigma**2)
    return float(logsumexp(log_terms)) / (order - 1)


@pytest.mark.parametrize("sigma", [0.8, 2.0, 5.0, 20.0])
def test_gaussian_epsilon_is_an_upper_bound_close_to_the_exact_one(sigma) -> None:
    exact = exact_gaussian_epsilon(sigma, 1e-5)
    assert math.isclose(norm.cdf(0.5 / sigma - exact * sigma)
                        - math.exp(exact) * norm.cdf(-0.5 / sigma - exact * sigma), 1e-5, rel_tol=1e-6)
    rdp = epsilon_for([gaussian_event(sigma)], 1e-5)
    assert exact <= rdp <= 1.5 * exact
    # the classic bound sigma >= sqrt(2 ln(1.25/delta)) / eps (Dwork & Roth, Thm A.1), valid for eps < 1
    if sigma >= 5:
        assert rdp <= math.sqrt(2 * math.log(1.25 / 1e-5)) / sigma


def test_k_gaussian_releases_compose_like_one_with_sigma_over_sqrt_k() -> None:
    assert math.isclose(epsilon_for([gaussian_event(6.0, 4)], 1e-5), epsilon_for([gaussian_event(3.0)], 1e-5),
                        rel_tol=1e-9)


@pytest.mark.parametrize(("sigma", "epochs", "published"), [(1.12, 60, 2.92), (0.6, 30, 9.74), (1.2, 10, 1.20)])
def test_subsampled_gaussian_matches_tf_privacy_and_an_independent_rdp(sigma, epochs, published) -> None:
    """MNIST, batch 256 of 60000, delta 1e-5: the table of TF Privacy's tutorials/README.md (RDP accountant)."""
    q, steps, delta = 256 / 60000, int(epochs * 60000 / 256), 1e-5
    orders = range(2, 256)
    rdp = [steps * subsampled_gaussian_rdp(q, sigma, a) for a in orders]
    classic = min(r + math.log(1 / delta) / (a - 1) for r, a in zip(rdp, orders))  # Mironov 2017, Prop. 3
    assert abs(classic - published) < 0.05
    library = epsilon_for([sgd_event(q, sigma, steps)], delta)
    # the library converts RDP to (eps, delta) more tightly (Balle et al. 2020), never more loosely
    assert 0.75 * classic <= library <= classic


@pytest.mark.parametrize(("q", "sigma", "steps"), [(0.08, 5.8, 300), (0.5, 30.0, 1500), (1.0, 40.0, 300)])
def test_run_sized_events_agree_with_the_independent_rdp(q, sigma, steps) -> None:
    orders = range(2, 256)
    classic = min(steps * subsampled_gaussian_rdp(q, sigma, a) + math.log(1e5) / (a - 1) for a in orders)
    assert 0.8 * classic <= epsilon_for([sgd_event(q, sigma, steps)], 1e-5) <= classic


PLAN = PrivacyPlan(rounds=15, local_steps=20, sampling_rate=0.08, moments_releases=1, membership_releases=1)


def test_calibrate_sigma_hits_the_target_on_each_side_and_splits_the_budget() -> None:
    plan = calibrate_sigma(PLAN, 1.0, 1e-5)
    sides = plan.side_epsilons(1e-5)
    assert 0.99 <= sides["train"] <= 1.0 and 0.99 <= sides["test"] <= 1.0
    assert plan.epsilon(1e-5) == max(sides.values())
    assert 0.099 <= epsilon_for(plan.stats_events(), 1e-5) <= 0.1
    assert plan.noise_multiplier > 1 and plan.stats_noise_multiplier > plan.noise_multiplier
    assert plan.check(1.0, 1e-5) == plan.epsilon(1e-5)
    # an independent composition of the same releases: RDP adds up order by order
    orders = range(2, 256)
    train = min(
        PLAN.steps * subsampled_gaussian_rdp(0.08, plan.noise_multiplier, a)
        + 2 * a / (2 * plan.stats_noise_multiplier**2) + math.log(1e5) / (a - 1)
        for a in orders
    )
    assert 0.8 * train <= sides["train"] <= train
    test = min(a / (2 * plan.evaluation_noise_multiplier**2) + a / (2 * plan.stats_noise_multiplier**2)
               + math.log(1e5) / (a - 1) for a in orders)
    assert 0.8 * test <= sides["test"] <= test


def test_every_release_is_counted() -> None:
    base = PrivacyPlan(rounds=15, local_steps=20, sampling_rate=0.08, noise_multiplier=6.0,
                       stats_noise_multiplier=40.0, evaluation_noise_multiplier=30.0, evaluation_releases=0)
    counted = [base.epsilon(1e-5)]
    for update in ({"moments_releases": 1}, {"membership_releases": 1}, {"rounds": 16}):
        base = PrivacyPlan(**{**base.__dict__, **update})
        counted.append(base.epsilon(1e-5))
    assert counted == sorted(counted) and len(set(counted)) == len(counted)
    tested = [PrivacyPlan(**{**base.__dict__, "evaluation_releases": k, "evaluation_noise_multiplier": 1.0})
              .side_epsilons(1e-5)["test"] for k in (1, 2, 5)]
    assert tested == sorted(tested) and len(set(tested)) == 3
    names = [line["release"] for line in base.ledger(1e-5)]
    assert names == ["moments", "dp-sgd", "membership check", "train rows (composed)", "test rows (composed)",
                     "run (larger side)"]
    assert base.side_epsilons(1e-5)["train"] == epsilon_for(base.events("train"), 1e-5)


def test_client_level_counts_one_gaussian_per_round() -> None:
    plan = PrivacyPlan(rounds=30, local_steps=50, sampling_rate=1.0, noise_multiplier=8.0, evaluation_releases=0,
                       level="client")
    assert plan.steps == 30 and [name for name, _, _ in plan.releases()] == ["dp-fedavg"]
    assert math.isclose(plan.epsilon(1e-5), epsilon_for([gaussian_event(8.0 / math.sqrt(30))], 1e-5), rel_tol=1e-9)


def test_a_run_over_its_approval_refuses_with_the_numbers() -> None:
    plan = calibrate_sigma(PLAN, 2.0, 1e-5)
    numbers = r"epsilon=2 at delta=1e-05 \(300 DP-SGD steps.*approved epsilon=1\."
    with pytest.raises(BudgetExceeded, match=numbers) as info:
        plan.check(1.0, 1e-5)
    assert info.value.status == 403


def test_unreachable_targets_raise_with_the_numbers() -> None:
    stats = r"epsilon=0\.0001 is not reachable for the 2 statistics releases on the training rows \(10% of the target"
    with pytest.raises(ConfigError, match=stats + r".*sigma=1000 it spends epsilon=0\.00"):
        calibrate_sigma(PLAN, 1e-3, 1e-5)
    training_only = PrivacyPlan(rounds=15, local_steps=20, sampling_rate=0.08, evaluation_releases=0)
    with pytest.raises(ConfigError, match=r"epsilon=0\.001 is not reachable for 300 DP-SGD steps at q=0\.08"):
        calibrate_sigma(training_only, 1e-3, 1e-5)
    with pytest.raises(ConfigError, match="target_epsilon > 0"):
        calibrate_sigma(PLAN, 0.0, 1e-5)
    with pytest.raises(ConfigError, match="stats_fraction"):
        calibrate_sigma(PLAN, 1.0, 1e-5, stats_fraction=1.5)


def test_without_statistics_releases_all_the_budget_goes_to_training() -> None:
    alone = calibrate_sigma(PrivacyPlan(rounds=15, local_steps=20, sampling_rate=0.08), 1.0, 1e-5)
    shared = calibrate_sigma(PLAN, 1.0, 1e-5)
    assert alone.stats_noise_multiplier == 0 and alone.noise_multiplier < shared.noise_multiplier
    assert 0.99 <= alone.epsilon(1e-5) <= 1.0
