"""Disclosure control: k_min suppression, secondary suppression audited by linear programming, guards."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linprog

from fedsante.common.errors import ConfigError, DataError
from fedsante.privacy.disclosure import (DisclosureError, DisclosurePolicy, assert_aggregate_only, check_count,
                                         check_model_size, protect_metrics, protect_subgroups, protect_table,
                                         suppress_statistics)

POLICY = DisclosurePolicy()


def full_table(counts: np.ndarray) -> np.ndarray:
    """The table with its totals appended (last entry, or last row and column)."""
    if counts.ndim == 1:
        return np.append(counts, counts.sum())
    full = np.zeros((counts.shape[0] + 1, counts.shape[1] + 1))
    full[:-1, :-1], full[:-1, -1], full[-1, :-1], full[-1, -1] = counts, counts.sum(1), counts.sum(0), counts.sum()
    return full


def equations(shape: tuple[int, ...]) -> list[list[tuple[tuple[int, ...], float]]]:
    """Each equation lists the (cell, coefficient) pairs of the full table that sum to 0."""
    if len(shape) == 1:
        return [[((j,), 1.0) for j in range(shape[0])] + [((shape[0],), -1.0)]]
    rows, cols = shape
    eqs = [[((i, j), 1.0) for j in range(cols)] + [((i, cols), -1.0)] for i in range(rows + 1)]
    eqs += [[((i, j), 1.0) for i in range(rows)] + [((rows, j), -1.0)] for j in range(cols + 1)]
    return eqs


def attack(counts: np.ndarray, hidden: set[tuple[int, ...]]) -> dict[tuple[int, ...], tuple[float, float]]:
    """Bounds an attacker gets on each hidden cell from every other cell and total (all non-negative).

    Cells of the full table outside ``hidden`` are known: published, or totals known from elsewhere.
    """
    full = full_table(np.asarray(counts, dtype=float))
    unknown = sorted(hidden)
    index = {cell: k for k, cell in enumerate(unknown)}
    A, b = [], []
    for eq in equations(np.shape(counts)):
        row, rhs = np.zeros(len(unknown)), 0.0
        for cell, coef in eq:
            if cell in index:
                row[index[cell]] += coef
            else:
                rhs -= coef * full[cell]
        A.append(row)
        b.append(rhs)
    bounds = {}
    for cell, k in index.items():
        c = np.zeros(len(unknown))
        c[k] = 1.0
        low = linprog(c, A_eq=A, b_eq=b, bounds=(0, None), method="highs")
        high = linprog(-c, A_eq=A, b_eq=b, bounds=(0, None), method="highs")
        assert low.status == 0 and high.status in (0, 3)  # 3: unbounded above, e.g. a cell and its total hidden
        bounds[cell] = (low.fun, -high.fun if high.status == 0 else np.inf)
    return bounds


def hidden_cells(protected) -> set[tuple[int, ...]]:
    return {tuple(int(i) for i in idx) for idx in np.argwhere(protected.mask)}


def assert_nothing_recoverable(counts: np.ndarray, protected) -> None:
    """Every hidden cell can be at least one below and one above its true value."""
    full = full_table(np.asarray(counts, dtype=float))
    for cell, (low, high) in attack(counts, hidden_cells(protected)).items():
        assert low <= full[cell] - 1 + 1e-6 and high >= full[cell] + 1 - 1e-6, (cell, full[cell], low, high)


LEAKY = np.array([[5, 20, 30],
                  [25, 40, 35],
                  [15, 12, 50]])


def test_naive_primary_suppression_leaks_by_subtraction_from_the_row_total() -> None:
    bounds = attack(LEAKY, {(0, 0)})
    assert bounds[(0, 0)] == pytest.approx((5, 5))  # 55 - 20 - 30


def test_secondary_suppression_protects_the_leaky_table() -> None:
    protected = protect_table(LEAKY, POLICY)

    assert protected.mask[0, 0] and protected.mask.sum() == 4  # a rectangle: the smallest complements
    assert hidden_cells(protected) == {(0, 0), (0, 1), (2, 0), (2, 1)}
    assert not protected.mask[:, -1].any() and not protected.mask[-1, :].any()  # totals stay published
    assert_nothing_recoverable(LEAKY, protected)
    reasons = {s.cell: s.reason for s in protected.suppressed}
    assert reasons[(0, 0)] == "counts 5 patients, fewer than k_min = 11"
    assert "so that cell (0, 0) cannot be recovered by subtraction" in reasons[(0, 1)]
    assert protected.as_lists()[0] == [None, None, 30.0, 55.0]


def test_every_row_and_column_having_two_hidden_cells_is_not_enough() -> None:
    # Two rectangles of small cells joined by one small cell (0, 2): every row and column holding a
    # hidden cell holds at least two, yet (0, 2) is a bridge between them and follows from the totals.
    counts = np.full((5, 5), 30)
    for cell in [(0, 0), (0, 1), (1, 0), (1, 1), (2, 2), (2, 3), (3, 2), (3, 3), (0, 2)]:
        counts[cell] = 4
    assert attack(counts, {cell for cell in np.ndindex(5, 5) if counts[cell] == 4})[(0, 2)] == pytest.approx((4, 4))

    protected = protect_table(counts, POLICY)

    assert protected.mask.sum() > 9
    assert_nothing_recoverable(counts, protected)


@pytest.mark.parametrize("margins", [True, False])
def test_random_tables_leave_no_hidden_cell_recoverable(margins: bool) -> None:
    rng = np.random.default_rng(2024)
    for _ in range(150):
        shape = tuple(rng.integers(2, 6, size=rng.integers(1, 3)))
        kind = rng.random(shape)
        counts = np.where(kind < 0.3, rng.integers(1, 11, shape), rng.integers(11, 80, shape))
        counts = np.where(kind > 0.95, 0, counts)
        protected = protect_table(counts, POLICY, margins=margins)
        hidden = hidden_cells(protected)
        assert {c for c in np.ndindex(counts.shape) if 0 < counts[c] < 11} <= hidden
        if margins:
            assert_nothing_recoverable(counts, protected)
        else:  # totals are not published but assumed known: they are never among the unknowns
            assert protected.published.shape == counts.shape
            for cell, (low, high) in attack(counts, hidden).items():
                assert high - low > 0.5, (counts, cell, low, high)


def test_one_dimensional_table_with_its_total() -> None:
    counts = np.array([4, 0, 30, 12, 50])
    assert attack(counts, {(0,)})[(0,)] == pytest.approx((4, 4))  # 96 - 0 - 30 - 12 - 50

    protected = protect_table(counts, POLICY)

    assert protected.as_lists() == [None, 0.0, 30.0, None, 50.0, 96.0]  # the smallest non-zero complement
    assert_nothing_recoverable(counts, protected)


def test_a_lone_small_cell_hides_the_total_when_nothing_else_can() -> None:
    protected = protect_table(np.array([0, 7]), POLICY)
    assert protected.as_lists() == [0.0, None, None]


def test_rounding_to_five_applies_to_cells_and_totals_independently() -> None:
    protected = protect_table(np.array([[12, 23], [37, 44]]), DisclosurePolicy(round_to=5))

    assert protected.as_lists() == [[10.0, 25.0, 35.0], [35.0, 45.0, 80.0], [50.0, 65.0, 115.0]]
    assert check_count(13, DisclosurePolicy(round_to=5)).values == {"n": 15}
    assert check_count(7, DisclosurePolicy(round_to=5)).values == {"n": None}


def test_k_min_below_the_floor_is_refused_and_tighter_policies_apply() -> None:
    with pytest.raises(ConfigError, match=r"k_min = 10 is below the platform floor of 11"):
        DisclosurePolicy(k_min=10)
    with pytest.raises(ConfigError, match=r"max_params_ratio = 0.5 must be in \(0, 0.33\]"):
        DisclosurePolicy(max_params_ratio=0.5)
    with pytest.raises(ConfigError, match=r"round_to = 0 must be a positive integer"):
        DisclosurePolicy(round_to=0)
    assert check_count(15, DisclosurePolicy(k_min=20)).values == {"n": None}


def test_k_min_patients_are_published_one_fewer_suppressed_and_zero_shown() -> None:
    assert check_count(11, POLICY).values == {"n": 11}
    assert check_count(10.0, POLICY).values == {"n": None}
    assert check_count(0, POLICY).values == {"n": 0}
    assert suppress_statistics({"mean": 3.0}, 11, POLICY).values == {"mean": 3.0}
    release = suppress_statistics({"total": np.ones(3), "mean": 3.0}, 10, POLICY, group="age>80")
    assert release.values == {"total": None, "mean": None}
    assert release.log_lines()[0] == ("suppressed total: subgroup 'age>80' has 10 patients, fewer than k_min = 11: "
                                      "its statistics are suppressed")
    with pytest.raises(DataError, match=r"n must be a non-negative whole number of patients. Got 2.5"):
        check_count(2.5, POLICY)


def test_model_size_guard() -> None:
    check_model_size(14, 100, POLICY)
    with pytest.raises(DisclosureError, match=r"14 parameters fitted on 40 patients exceeds .* 0.33 x 40 = 13.2"):
        check_model_size(14, 40, POLICY)
    with pytest.raises(DisclosureError, match=r"fitted on 9 patients, fewer than k_min = 11"):
        check_model_size(1, 9, POLICY)


def test_per_patient_arrays_are_refused() -> None:
    assert_aggregate_only({"n": np.array([100.0]), "total": np.zeros(13), "total_sq": np.zeros(13)}, 100)
    with pytest.raises(DisclosureError, match=r"array 'shap' has shape \(3, 57\): an axis of length 57"):
        assert_aggregate_only({"shap": np.zeros((3, 57))}, 200, other_counts=[57])
    with pytest.raises(DisclosureError, match=r"'residuals' has shape \(200,\)"):
        assert_aggregate_only({"residuals": np.zeros(200)}, 200)
    with pytest.raises(DisclosureError, match=r"holds 60 numbers computed on 50 patients"):
        assert_aggregate_only({"a": np.zeros(30), "b": np.zeros(30)}, 50)


def test_metrics_of_a_small_site_or_class_are_suppressed() -> None:
    evaluation = {"n": 8.0, "n_positive": 3.0, "accuracy": 0.75, "auc": 0.8}
    assert protect_metrics(evaluation, 8, POLICY, group="site B").values == dict.fromkeys(evaluation)

    release = protect_metrics({"n": 60.0, "n_positive": 55.0, "accuracy": 0.9, "auc": 0.7}, 60, POLICY)
    assert release.values == {"n": 60, "n_positive": None, "accuracy": 0.9, "auc": None}
    assert "55 positive and 5 negative patients" in release.log_lines()[0]


def test_subgroup_metrics_get_primary_and_secondary_suppression() -> None:
    groups = {"sex=F": {"n": 7, "accuracy": 0.8, "auc": 0.7},
              "sex=M": {"n": 50, "accuracy": 0.85, "auc": 0.75},
              "sex=U": {"n": 30, "accuracy": 0.9, "auc": 0.8}}

    out = protect_subgroups(groups, POLICY)

    assert out["sex=F"].values == {"n": None, "accuracy": None, "auc": None}
    assert out["sex=F"].log_lines()[1] == ("suppressed accuracy: subgroup 'sex=F' has 7 patients, fewer than "
                                           "k_min = 11: its statistics are suppressed")
    assert out["sex=U"].values == {"n": None, "accuracy": None, "auc": None}  # the smaller complement
    assert "secondary suppression" in out["sex=U"].suppressed[0].reason
    assert out["sex=M"].values == groups["sex=M"]


def test_a_count_hidden_in_one_subgroup_is_not_recoverable_from_the_others() -> None:
    groups = {"sex=F": {"n": 50, "n_positive": 5, "auc": 0.7},  # 45 negatives, 5 positives: n_positive hidden
              "sex=M": {"n": 50, "n_positive": 30, "auc": 0.75},
              "sex=U": {"n": 40, "n_positive": 20, "auc": 0.8},
              "sex=X": {"n": 0, "n_positive": 0, "auc": None}}

    out = protect_subgroups(groups, POLICY)

    assert out["sex=F"].values == {"n": 50, "n_positive": None, "auc": None}
    assert out["sex=U"].values == {"n": 40, "n_positive": None, "auc": 0.8}  # else 55 - 30 - 20 = 5
    assert out["sex=M"].values == groups["sex=M"]
    assert out["sex=X"].values == {"n": 0, "n_positive": 0, "auc": None}  # no patients: zeros shown, AUC undefined
