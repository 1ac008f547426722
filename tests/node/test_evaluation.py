"""What a node releases about its test patients: its own statistics, and per subgroup only into a secure sum."""

from __future__ import annotations

import numpy as np
import pytest

from fedsante.data.heart import load_hospital
from fedsante.learning.logistic import init_params, predict_proba
from fedsante.learning.scaling import local_scaler
from fedsante.algorithms.logreg.evaluation import (FIXED, STATS, SUBGROUPS, evaluation_arrays, noisy_share, release_sensitivity,
                                      subgroup_matrix)
from fedsante.algorithms.logreg.node import execute
from fedsante.node.ledger import made, planned
from fedsante.node.outputs import Release, release_outputs
from fedsante.algorithms.logreg.params import LogRegParams
from fedsante.reports.fairness import AGE, SEX, masks
from fedsante.reports.performance import GroupStats, group_stats


def test_the_subgroup_matrix_holds_each_groups_statistics_in_order() -> None:
    table = load_hospital("cleveland")
    X, y = table.part("test")
    proba = np.linspace(0.01, 0.99, len(y))
    test = table.split == "test"
    groups = {name: index[test] for name, index in table.groups.items()}
    matrix = subgroup_matrix(groups, table.attribute_groups, y, proba)
    rows = [(attribute, label) for attribute in (SEX, AGE) for label in attribute.labels]
    assert table.attribute_groups == (("sex", 2), ("age", 4))  # the heart study's declared attributes, in order
    assert matrix.shape == (len(rows), 42)
    for i, (attribute, label) in enumerate(rows):  # the study's groups are the same as the old feature bands
        mask = masks(X, table.feature_names, attribute)[label]
        np.testing.assert_array_equal(matrix[i], group_stats(y[mask], proba[mask]).as_vector())


def test_a_nodes_noise_share_makes_the_secure_sum_carry_the_whole_noise_once() -> None:
    matrix = np.zeros((6, 42))
    rng = np.random.default_rng(0)
    # 4 nodes, each with its share: their sum has sd sigma * sqrt(2 attributes) on every count, sums left at 0
    total = np.stack([sum(noisy_share(matrix, 2, 3.0, 4, rng) for _ in range(4)) for _ in range(3000)])
    assert total[:, :, :20].std(axis=0).mean() == pytest.approx(3.0 * release_sensitivity(2), rel=0.03)
    assert not total[:, :, 20:].any()


def test_the_hospitals_own_release_has_sensitivity_one_and_keeps_the_public_total() -> None:
    busy = GroupStats.from_vector(np.concatenate([np.full(20, 1000.0), np.zeros(22)]))
    rng = np.random.default_rng(1)
    counts = np.stack([GroupStats.from_vector(evaluation_arrays(busy, 2.0, rng)[STATS]).counts for _ in range(2000)])
    assert np.allclose(counts.sum(axis=(1, 2)), 20_000) and (counts >= 0).all()  # projected onto the public n
    assert counts.std(axis=0).mean() == pytest.approx(2.0 * np.sqrt(19 / 20), rel=0.05)  # minus the total's share


def test_the_plan_counts_the_subgroups_as_a_second_evaluation_release() -> None:
    plan = LogRegParams(noise_multiplier=1.0, stats_noise_multiplier=5.0, evaluation_noise_multiplier=4.0).privacy_plan()
    assert plan.evaluation_releases == 2 and planned(plan)["evaluate"] == planned(plan)["subgroups"] == 1
    assert made(plan, {"evaluate": 1}).evaluation_releases == 1
    assert made(plan, {"evaluate": 1, "subgroups": 1}).evaluation_releases == 2
    none = LogRegParams(fairness_attributes="", noise_multiplier=1.0, stats_noise_multiplier=5.0,
                        evaluation_noise_multiplier=4.0).privacy_plan()
    assert none.evaluation_releases == 1 and planned(none)["subgroups"] == 0
    # the test side (evaluations, membership check) composes in parallel with training: make it the larger
    test_side = {"noise_multiplier": 50.0, "stats_noise_multiplier": 50.0, "evaluation_noise_multiplier": 2.0}
    assert LogRegParams(**test_side).privacy_plan().epsilon(1e-5) > LogRegParams(
        fairness_attributes="", **test_side).privacy_plan().epsilon(1e-5)


def test_the_evaluate_and_subgroups_tasks_and_the_output_gate() -> None:
    table = load_hospital("cleveland")
    X_train, _ = table.part("train")
    scaler = local_scaler(X_train)
    model = init_params(X_train.shape[1])
    model["coef"][0] = 0.5
    arrays_in = {**model, "mean": scaler.mean, "scale": scaler.scale}
    params = {"privacy": "none", "scaling": "local"}
    arrays, metrics = execute("evaluate", params, arrays_in, table, node_id="cleveland", round_number=4)
    assert set(arrays) == {STATS, "importance"} and arrays["importance"].shape == (X_train.shape[1],)
    sub, sub_metrics = execute("subgroups", params, arrays_in, table, node_id="cleveland", round_number=5)
    X, y = table.part("test")
    proba = predict_proba(model, scaler.transform(X))
    male = masks(X, table.feature_names, SEX)["male"]
    np.testing.assert_allclose(sub[SUBGROUPS][1], group_stats(y[male], proba[male]).as_vector())
    assert sub_metrics == {"n": float(len(y))}
    sizes = {"n_train": len(X_train), "n_test": len(y), "n_total": len(table.y), "k_min": 11, "group": "cleveland"}
    sent, _, _ = release_outputs(Release(test=True, fixed=FIXED), sub, sub_metrics, **sizes)
    assert set(sent) == {SUBGROUPS}  # fixed length: not mistaken for a per-patient array
    with pytest.raises(Exception, match="no fairness attribute"):
        execute("subgroups", {**params, "fairness_attributes": ""}, arrays_in, table, node_id="cleveland",
                round_number=5)


@pytest.mark.parametrize("attributes, expected", [(0, 1.0), (1, 1.0), (2, 2.0), (3, 3.0)])
def test_release_sensitivity(attributes: int, expected: float) -> None:
    assert release_sensitivity(attributes) ** 2 == pytest.approx(expected)
