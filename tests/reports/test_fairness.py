"""fedsante.reports.fairness: subgroups partition the data, small groups are hidden, gaps and flags are right."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedsante.common.errors import ConfigError
from fedsante.data.heart import FEATURES, HOSPITALS, load_hospital
from fedsante.learning.logistic import predict_proba
from fedsante.learning.scaling import local_scaler
from fedsante.reports.fairness import (AGE, DEFAULT_ATTRIBUTES, SEX, Attribute, equalized_odds_difference, flags,
                                       gaps, group_metrics, masks, suppress_small)


@pytest.mark.parametrize("hospital", HOSPITALS)
def test_masks_partition_the_bundled_data(hospital: str) -> None:
    table = load_hospital(hospital)

    age, sex = masks(table.X, FEATURES, AGE), masks(table.X, FEATURES, SEX)

    assert list(age) == ["<45", "45-54", "55-64", ">=65"]
    assert np.all(np.sum(list(age.values()), axis=0) == 1)  # every row in exactly one age band
    years = table.X[:, FEATURES.index("age")]
    assert np.array_equal(age["45-54"], (years >= 45) & (years < 55))
    assert np.array_equal(age[">=65"], years >= 65)
    column = table.X[:, FEATURES.index("sex")]
    assert np.array_equal(sex["male"], column == 1) and np.array_equal(sex["female"], column == 0)
    assert np.all(sex["male"] ^ sex["female"])


def test_masks_need_the_feature_and_matching_columns() -> None:
    X = np.zeros((3, len(FEATURES)))
    with pytest.raises(ValueError, match="'bmi'"):
        masks(X, FEATURES, Attribute("bmi", "bmi", (("low", 0, 25), ("high", 25, 80))))
    with pytest.raises(ValueError, match=r"shape \(n, 13\).*\(3, 12\)"):
        masks(X[:, :12], FEATURES, AGE)
    with pytest.raises(ValueError, match="shape"):
        masks(np.zeros(13), FEATURES, SEX)


@pytest.mark.parametrize("groups, message", [
    ((), "at least one group"),
    ((("a", 5, 5),), "below high"),
    ((("a", 0, math.inf),), "finite"),
    ((("a", 0, 1), ("a", 1, 2)), "duplicate"),
    ((("a", 0, 10), ("b", 9, 20)), "overlap"),
])
def test_attribute_rejects_bad_groups(groups: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Attribute("x", "age", groups)


def test_default_attributes() -> None:
    assert DEFAULT_ATTRIBUTES == (SEX, AGE)
    assert SEX.labels == ("female", "male") and AGE.feature == "age"


def test_suppression_hides_small_groups_and_small_classes_with_reasons() -> None:
    per_group = {
        "age <45": {"n": 7, "n_positive": 3, "auc": 0.9},
        "age 45-54": {"n": 40, "n_positive": 5, "auc": 0.8},
        "age 55-64": {"n": 40, "n_positive": 20, "auc": 0.7},
        "age >=65": {"n": 40, "n_positive": 35, "auc": 0.6},
    }

    kept, reasons = suppress_small(per_group, 11)

    assert kept == {"age <45": None, "age 45-54": None, "age 55-64": per_group["age 55-64"], "age >=65": None}
    assert reasons[0] == "subgroup 'age <45' has 7 patients, under k_min = 11"
    assert "'age 45-54' has 5 positive and 35 negative" in reasons[1] and "k_min = 11" in reasons[1]
    assert "'age >=65' has 35 positive and 5 negative" in reasons[2]
    assert len(reasons) == 3


def test_suppression_boundaries_zeros_and_policy() -> None:
    kept, reasons = suppress_small({"a": {"n": 11}, "b": {"n": 10}, "c": {"n": 0}, "d": {"n": 30, "n_positive": 0},
                                    "e": {"n": 22, "n_positive": 11}})
    assert [k for k, v in kept.items() if v is None] == ["b", "c"]  # a true zero class is not small
    assert "no patients" in reasons[1]

    kept, _ = suppress_small({"a": {"n": 15}, "b": {"n": 40, "n_positive": 20}}, k_min=20)
    assert kept["a"] is None and kept["b"] is not None
    with pytest.raises(ConfigError, match="floor"):
        suppress_small({"a": {"n": 15}}, k_min=5)
    with pytest.raises(ValueError, match="'a'.*'n'"):
        suppress_small({"a": {"auc": 0.7}})


PER_GROUP = {
    "male": {"n": 120, "auc": 0.86, "accuracy": 0.80, "sensitivity": 0.90, "specificity": 0.70, "ppv": 0.8,
             "oe_ratio": 1.0},
    "female": {"n": 60, "auc": 0.72, "accuracy": 0.75, "sensitivity": 0.70, "specificity": 0.75, "ppv": math.nan,
               "oe_ratio": 1.05},
    "other": {"n": 40, "auc": 0.80, "accuracy": None, "sensitivity": 0.85, "specificity": 0.78},
    "tiny": None,  # suppressed: ignored
}


def test_gaps_take_max_minus_min_over_valid_groups() -> None:
    result = gaps(PER_GROUP)

    assert result["auc"]["gap"] == pytest.approx(0.14)
    assert (result["auc"]["max"], result["auc"]["min"], result["auc"]["groups"]) == (0.86, 0.72, ("male", "female"))
    assert result["accuracy"]["groups"] == ("male", "female")  # None for "other" is left out
    assert result["accuracy"]["gap"] == pytest.approx(0.05)
    assert result["sensitivity"]["gap"] == pytest.approx(0.20)
    assert result["specificity"]["groups"] == ("other", "male")
    assert result["ppv"] == {"max": None, "min": None, "gap": None, "groups": ()}  # NaN and missing leave one group
    assert result["oe_ratio"]["gap"] == pytest.approx(0.05)


def test_gaps_ignore_suppressed_groups_from_suppress_small() -> None:
    kept, _ = suppress_small({"big": {"n": 50, "auc": 0.8}, "small": {"n": 5, "auc": 0.1},
                              "also": {"n": 30, "auc": 0.75}})
    assert gaps(kept, metrics=("auc",))["auc"]["groups"] == ("big", "also")


def test_flags_sentences_above_the_threshold_only() -> None:
    result = gaps(PER_GROUP)

    sentences = flags(result, 0.10)

    assert sentences == [
        "AUC differs by 0.14 between male (0.86) and female (0.72), above the charter's threshold of 0.10",
        "Sensitivity differs by 0.20 between male (0.90) and female (0.70), above the charter's threshold of 0.10",
        "The equalized-odds difference is 0.20, the larger of the true-positive-rate gap (0.20, highest for male, "
        "lowest for female) and the false-positive-rate gap (0.08, highest for male, lowest for other), above the "
        "charter's threshold of 0.10",
    ]
    assert flags(result, 0.25) == []
    assert len(flags(result, 0.0)) == 6  # every metric with a gap (not ppv), and equalized odds


def test_flags_ignore_float_noise_and_show_enough_digits() -> None:
    assert 0.8 - 0.7 > 0.10  # in floats
    assert flags(gaps({"a": {"auc": 0.8}, "b": {"auc": 0.7}}, metrics=("auc",)), 0.10) == []
    sentence = flags(gaps({"a": {"auc": 0.804}, "b": {"auc": 0.7}}, metrics=("auc",)), 0.10)[0]
    assert sentence.startswith("AUC differs by 0.104 between a (0.804) and b (0.700)")
    with pytest.raises(ValueError, match="threshold"):
        flags({}, math.nan)


def test_equalized_odds_difference_is_the_larger_rate_gap() -> None:
    assert equalized_odds_difference({"sensitivity": {"gap": 0.05}, "specificity": {"gap": 0.12}}) == 0.12
    assert equalized_odds_difference({"sensitivity": {"gap": 0.30}, "specificity": {"gap": 0.12}}) == 0.30
    assert equalized_odds_difference({"sensitivity": {"gap": None}, "specificity": {"gap": 0.12}}) is None
    assert equalized_odds_difference({"auc": {"gap": 0.2}}) is None


def test_group_metrics_by_hand() -> None:
    y = np.array([1, 1, 1, 0, 0, 0, 0, 1, 0], dtype=float)
    proba = np.array([0.9, 0.6, 0.3, 0.7, 0.2, 0.1, 0.55, 0.8, 0.4])
    group = np.array([True] * 7 + [False] * 2)

    out = group_metrics(y, proba, {"g": group, "h": ~group})

    g = out["g"]  # 3 positive (2 predicted), 4 negative (2 predicted positive)
    assert (g["n"], g["n_positive"]) == (7, 3)
    assert g["sensitivity"] == pytest.approx(2 / 3) and g["specificity"] == pytest.approx(2 / 4)
    assert g["ppv"] == pytest.approx(2 / 4) and g["accuracy"] == pytest.approx(4 / 7)
    assert g["oe_ratio"] == pytest.approx(3 / 3.35)
    assert g["auc"] == pytest.approx(9 / 12)
    assert out["h"]["auc"] == 1.0 and out["h"]["ppv"] == 1.0
    assert math.isnan(group_metrics(y, proba, {"neg": y == 0})["neg"]["sensitivity"])
    with pytest.raises(ValueError, match="mask of group 'g'"):
        group_metrics(y, proba, {"g": group[:5]})


def test_pipeline_on_a_bundled_hospital() -> None:
    table = load_hospital("cleveland")
    X, y = table.part("test")
    scaler = local_scaler(table.part("train")[0])
    params = {"coef": np.linspace(-0.5, 0.5, len(FEATURES)), "intercept": np.zeros(1)}
    proba = predict_proba(params, scaler.transform(X))

    per_group = group_metrics(y, proba, {f"age {k}": m for k, m in masks(X, FEATURES, AGE).items()})
    kept, reasons = suppress_small(per_group)

    assert sum(m["n"] for m in per_group.values()) == len(y)
    assert len(reasons) == sum(v is None for v in kept.values())
    assert all(kept[k] is None for k, m in per_group.items() if 0 < m["n"] < 11)
    result = gaps(kept)
    for metric, g in result.items():
        valid = [m[metric] for m in kept.values() if m is not None and math.isfinite(m[metric])]
        assert g["gap"] == (pytest.approx(max(valid) - min(valid)) if len(valid) >= 2 else None)
