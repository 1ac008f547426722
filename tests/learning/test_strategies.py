"""fedsante.learning.strategies: FedAvg, FedProx, the registry and the shared helpers (pure functions).

The desk only ever sees the SUM of the node updates ``n_i * (local_i - global)`` and the sum of the
weights ``n_i`` (what secure aggregation reveals), so every test aggregates from those two sums.
"""

import numpy as np
import pytest

from fedsante.learning.strategies import (STRATEGIES, FedAvg, FedProx, Strategy, make_strategy, sum_params,
                                          weighted_delta)

# Two nodes, n = 2 and n = 3, global model w = [1, 0], intercept 0:
#   node A (n=2): local coef [2, 1], intercept  1  ->  update 2 * ([1, 1],  1) = ([ 2, 2],  2)
#   node B (n=3): local coef [0, 2], intercept -1  ->  update 3 * ([-1, 2], -1) = ([-3, 6], -3)
#   summed update ([-1, 8], -1), total weight 5, mean update ([-0.2, 1.6], -0.2)
#   server_lr = 1:   coef [1, 0] + [-0.2, 1.6] = [0.8, 1.6], intercept -0.2
#                    (the weighted average: (2 [2, 1] + 3 [0, 2]) / 5 = [0.8, 1.6]; (2 - 3) / 5 = -0.2)
#   server_lr = 0.5: coef [1, 0] + 0.5 [-0.2, 1.6] = [0.9, 0.8], intercept -0.1
#   server_lr = 2:   coef [1, 0] + 2 [-0.2, 1.6] = [0.6, 3.2], intercept -0.4
GLOBAL = {"coef": np.array([1.0, 0.0]), "intercept": np.array([0.0])}
LOCALS = [({"coef": np.array([2.0, 1.0]), "intercept": np.array([1.0])}, 2.0),
          ({"coef": np.array([0.0, 2.0]), "intercept": np.array([-1.0])}, 3.0)]


def summed_round() -> tuple[dict[str, np.ndarray], float]:
    """What the desk learns from the round above: the summed update and the summed weight."""
    return sum_params([weighted_delta(m, GLOBAL, n) for m, n in LOCALS]), sum(n for _, n in LOCALS)


def test_the_hand_computed_round_sums_to_the_hand_computed_update() -> None:
    summed, total = summed_round()

    np.testing.assert_array_equal(summed["coef"], [-1.0, 8.0])
    np.testing.assert_array_equal(summed["intercept"], [-1.0])
    assert total == 5.0


@pytest.mark.parametrize(("name", "settings"), [("fedavg", {}), ("fedprox", {"mu": 0.1}), ("fedprox", {"mu": 0.0})])
@pytest.mark.parametrize(("server_lr", "coef", "intercept"),
                         [(1.0, [0.8, 1.6], [-0.2]), (0.5, [0.9, 0.8], [-0.1]), (2.0, [0.6, 3.2], [-0.4])])
def test_aggregation_matches_the_hand_computed_round(name: str, settings: dict, server_lr: float, coef: list[float],
                                                     intercept: list[float]) -> None:
    # Prepare
    strategy: Strategy = STRATEGIES[name](server_lr=server_lr, **settings)
    summed, total = summed_round()

    # Execute
    new = strategy.aggregate_fit(GLOBAL, summed, total)

    # Assert
    np.testing.assert_allclose(new["coef"], coef, rtol=0, atol=1e-12)
    np.testing.assert_allclose(new["intercept"], intercept, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(GLOBAL["coef"], [1.0, 0.0])  # the input is not modified


def test_fedprox_aggregates_exactly_like_fedavg() -> None:
    rng = np.random.default_rng(11)
    params = {"coef": rng.normal(size=3), "intercept": rng.normal(size=1)}
    summed = {"coef": rng.normal(size=3), "intercept": rng.normal(size=1)}

    a = FedAvg(server_lr=0.7).aggregate_fit(params, summed, 41.0)
    b = FedProx(mu=0.3, server_lr=0.7).aggregate_fit(params, summed, 41.0)

    for key in params:
        np.testing.assert_array_equal(a[key], b[key])


def test_fedprox_sends_mu_to_every_node_each_round() -> None:
    strategy = FedProx(mu=0.25)

    assert [strategy.configure_round(r) for r in (1, 2, 9)] == [{"proximal_mu": 0.25}] * 3
    assert FedProx.name == "fedprox" and FedProx().mu == 0.01


def test_fedavg_of_summed_weighted_deltas_is_the_weighted_average_of_local_models() -> None:
    # Prepare
    rng = np.random.default_rng(11)
    global_ = {"coef": rng.normal(size=3), "intercept": rng.normal(size=1)}
    locals_ = [{"coef": rng.normal(size=3), "intercept": rng.normal(size=1)} for _ in range(4)]
    weights = [199.0, 172.0, 30.0, 85.0]

    # Execute
    summed = sum_params([weighted_delta(m, global_, w) for m, w in zip(locals_, weights)])
    new = FedAvg().aggregate_fit(global_, summed, sum(weights))

    # Assert
    for key in global_:
        expected = sum(w * m[key] for m, w in zip(locals_, weights)) / sum(weights)
        np.testing.assert_allclose(new[key], expected, rtol=0, atol=1e-12)


def test_fedavg_server_lr_scales_the_step() -> None:
    params = {"coef": np.array([1.0, 1.0])}
    summed = {"coef": np.array([4.0, -2.0])}

    new = FedAvg(server_lr=0.5).aggregate_fit(params, summed, 2.0)

    np.testing.assert_array_equal(new["coef"], [2.0, 0.5])


def test_sum_params_rejects_mismatched_keys() -> None:
    parts = [{"coef": np.ones(2), "intercept": np.ones(1)}, {"coef": np.ones(2)}]
    with pytest.raises(ValueError, match=r"Parameter dict 1 has keys \['coef'\], expected \['coef', 'intercept'\]\."):
        sum_params(parts)


def test_sum_params_rejects_no_parts() -> None:
    with pytest.raises(ValueError, match=r"sum_params needs at least one parameter dict\. Got none\."):
        sum_params([])


@pytest.mark.parametrize("server_lr", [0, -1.0, float("nan")])
def test_fedavg_rejects_a_non_positive_server_lr(server_lr: float) -> None:
    with pytest.raises(ValueError, match=r"The 'server_lr' parameter of FedAvg must be a float > 0\. Got"):
        FedAvg(server_lr=server_lr)


@pytest.mark.parametrize("total_weight", [0.0, -3.0])
def test_fedavg_rejects_a_non_positive_total_weight(total_weight: float) -> None:
    params = {"coef": np.zeros(2)}
    with pytest.raises(ValueError, match=r"FedAvg needs a positive total weight\. Got"):
        FedAvg().aggregate_fit(params, params, total_weight)


def test_fedavg_configure_round_adds_no_settings() -> None:
    assert FedAvg().configure_round(3) == {} and FedAvg.name == "fedavg"


@pytest.mark.parametrize("total_weight", [0.0, -3.0])
def test_fedprox_rejects_a_non_positive_total_weight(total_weight: float) -> None:
    params = {"coef": np.zeros(2)}
    with pytest.raises(ValueError, match=r"FedProx needs a positive total weight\. Got"):
        FedProx().aggregate_fit(params, params, total_weight)


# --- registry ------------------------------------------------------------------------------------

def test_registry_names_are_the_strategy_names() -> None:
    assert {name: cls.name for name, cls in STRATEGIES.items()} == {"fedavg": "fedavg", "fedprox": "fedprox"}


def test_make_strategy_builds_the_named_strategy_with_its_settings() -> None:
    strategy = make_strategy("fedprox", mu=0.5, server_lr=0.8)

    assert isinstance(strategy, FedProx) and strategy.mu == 0.5 and strategy.server_lr == 0.8
    assert isinstance(make_strategy("fedavg"), FedAvg)


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        ("fedsgd", {}, r"The 'name' parameter of make_strategy must be one of 'fedavg', 'fedprox'\. "
                       r"Got 'fedsgd' instead\."),
        ("fedprox", {"mu": -1}, r"^The 'mu' parameter of FedProx must be a float >= 0\. Got -1 instead\.$"),
        ("fedprox", {"mu": float("nan")}, r"The 'mu' parameter of FedProx must be a float >= 0\. Got nan instead\."),
        ("fedprox", {"mu": "0.1"}, r"The 'mu' parameter of FedProx must be a float >= 0\. Got '0\.1' instead\."),
        ("fedprox", {"server_lr": 0}, r"The 'server_lr' parameter of FedProx must be a float > 0\. Got 0 instead\."),
        ("fedavg", {"mu": 0.1}, r"FedAvg has no parameter 'mu'\. Its parameters \(with defaults\) are: "
                                r"server_lr=1\.0\."),
        ("fedprox", {"lr": 0.1}, r"FedProx has no parameter 'lr'\. Its parameters \(with defaults\) are: "
                                 r"mu=0\.01, server_lr=1\.0\."),
    ],
)
def test_make_strategy_errors_name_the_parameter_and_the_fix(name: str, settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_strategy(name, **settings)
