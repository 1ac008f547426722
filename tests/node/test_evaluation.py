"""What a node releases about its test patients: statistics per subgroup, withheld under k_min, noised under DP."""

from __future__ import annotations

import numpy as np
import pytest

from fedsante.data.heart import load_hospital
from fedsante.learning.logistic import init_params, predict_proba
from fedsante.learning.scaling import local_scaler
from fedsante.node.evaluation import (RELEASED, STATS, SUBGROUPS, evaluation_arrays, release_sensitivity,
                                      subgroup_stats)
from fedsante.node.executor import execute
from fedsante.node.outputs import release_outputs
from fedsante.reports.fairness import AGE, SEX, masks
from fedsante.reports.performance import GroupStats, group_stats

AGES = np.array([[30.0]] * 8 + [[50.0]] * 40 + [[60.0]] * 40 + [[70.0]] * 40)


def test_a_small_age_band_is_withheld_with_the_next_smallest_so_subtraction_reveals_nothing() -> None:
    y = np.tile([0, 1], len(AGES) // 2)
    groups = subgroup_stats(AGES, ["age"], y, np.full(len(y), 0.3), [AGE], 11)
    assert groups[0] is None and sum(g is None for g in groups) == 2  # <45 (8 patients) and one more


def test_a_group_with_a_rare_outcome_class_is_withheld() -> None:
    y = np.array([1] * 5 + [0] * 35 + [0, 1] * 20)  # the first 40 are women: 5 with the outcome
    X = np.array([[0.0]] * 40 + [[1.0]] * 40)
    assert [g is None for g in subgroup_stats(X, ["sex"], y, np.full(80, 0.5), [SEX], 11)] == [True, True]
    y[:15] = 1  # 15 women with the outcome, 25 without
    assert [g is None for g in subgroup_stats(X, ["sex"], y, np.full(80, 0.5), [SEX], 11)] == [False, False]
    assert [g is None for g in subgroup_stats(X, ["sex"], y, np.full(80, 0.5), [SEX], 16)] == [True, True]


def test_exact_release_equals_the_statistics_of_each_group() -> None:
    table = load_hospital("cleveland")
    X, y = table.part("test")
    proba = np.linspace(0.01, 0.99, len(y))
    groups = subgroup_stats(X, table.feature_names, y, proba, [SEX, AGE], 11)
    arrays = evaluation_arrays(group_stats(y, proba), groups, 2, None, None)
    rows = [(attribute, label) for attribute in (SEX, AGE) for label in attribute.labels]
    for i, (attribute, label) in enumerate(rows):
        mask = masks(X, table.feature_names, attribute)[label]
        if arrays[RELEASED][i]:
            np.testing.assert_array_equal(arrays[SUBGROUPS][i], group_stats(y[mask], proba[mask]).as_vector())
        else:
            assert not arrays[SUBGROUPS][i].any()
    np.testing.assert_array_equal(arrays[STATS], group_stats(y, proba).as_vector())


def test_dp_release_noise_has_the_sensitivity_of_one_count_per_block_and_keeps_the_public_total() -> None:
    busy = GroupStats.from_vector(np.concatenate([np.full(20, 1000.0), np.zeros(22)]))  # no count near 0
    rng = np.random.default_rng(0)
    out = [evaluation_arrays(busy, [busy, None], 2, 2.0, rng) for _ in range(2000)]
    # a subgroup's counts are projected onto their own noisy total: with every count far from 0 that is
    # the identity, and the noise shows whole: sd sigma * sqrt(1 + 2 attributes)
    noise = np.stack([GroupStats.from_vector(o[SUBGROUPS][0]).counts for o in out]) - busy.counts
    assert noise.std(axis=0).mean() == pytest.approx(2.0 * release_sensitivity(2), rel=0.03)
    site = np.stack([GroupStats.from_vector(o[STATS]).counts for o in out])
    assert np.allclose(site.sum(axis=(1, 2)), 20_000) and (site >= 0).all()  # projected onto the public n
    assert not out[0][SUBGROUPS][1].any() and out[0][RELEASED].tolist() == [1.0, 0.0]  # withheld: not even noise


def test_the_evaluate_task_releases_subgroups_and_the_gate_lets_them_through() -> None:
    table = load_hospital("cleveland")
    X_train, _ = table.part("train")
    scaler = local_scaler(X_train)
    model = init_params(X_train.shape[1])
    model["coef"][0] = 0.5
    params = {"privacy": "none", "scaling": "local"}
    arrays, metrics = execute("evaluate", params, {**model, "mean": scaler.mean, "scale": scaler.scale}, table,
                              node_id="cleveland", round_number=4, k_min=11)
    assert arrays[SUBGROUPS].shape == (6, 42) and arrays["importance"].shape == (X_train.shape[1],)
    X, y = table.part("test")
    proba = predict_proba(model, scaler.transform(X))
    male = masks(X, table.feature_names, SEX)["male"]
    assert arrays[RELEASED][1] in (0.0, 1.0)
    if arrays[RELEASED][1]:
        np.testing.assert_allclose(arrays[SUBGROUPS][1], group_stats(y[male], proba[male]).as_vector())
    sent, _, notes = release_outputs("evaluate", arrays, metrics, n_train=len(X_train), n_test=len(y),
                                     n_total=len(table.y), k_min=11, group="cleveland", n_positive=int(y.sum()))
    assert set(sent) == {STATS, SUBGROUPS, RELEASED, "importance"}
    assert any("subgroups withheld" in line for line in notes) == (not arrays[RELEASED].all())


def test_when_the_evaluation_statistics_are_withheld_the_subgroups_go_with_them() -> None:
    arrays = {STATS: np.zeros(42), SUBGROUPS: np.zeros((6, 42)), RELEASED: np.ones(6)}
    sent, metrics, notes = release_outputs("evaluate", arrays, {"n": 45.0, "n_positive": 40.0}, n_train=85, n_test=45,
                                           n_total=130, k_min=11, group="va", n_positive=40)
    assert sent == {} and metrics["n_positive"] is None
    assert any("evaluation statistics withheld" in line for line in notes)


@pytest.mark.parametrize("attributes", [0, 1, 2, 3])
def test_release_sensitivity_grows_with_the_attributes(attributes: int) -> None:
    assert release_sensitivity(attributes) ** 2 == pytest.approx(1 + attributes)
