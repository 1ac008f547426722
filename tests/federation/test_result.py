"""fedsante.federation.result: the typed run result the desk stores and every reader parses."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fedsante.federation.result import RunResult

OLD = {  # a result stored before the study's labels, left-out hospitals and notes were recorded
    "model": {"coef": [0.1, -0.2], "intercept": [0.0]}, "scaler": {"mean": [1.0, 2.0], "scale": [1.0, 1.0]},
    "features": ["age", "chol"], "node_metrics": {"a": {"n": 40.0, "auc": None}}, "node_stats": {},
    "node_evaluation": {}, "subgroup_stats": [], "subgroup_sites": [],
    "fairness": {"threshold": 0.1, "noise_sd": None, "attributes": []},
    "train_n": {"secure sum": 120.0}, "round_seconds": [0.1], "secure_setup_seconds": 0.2,
    "energy": {}, "communication_bytes": {"a": [10, 20]},
}


def test_an_older_stored_result_loads_with_defaults() -> None:
    result = RunResult.model_validate(OLD)
    assert result.left_out == {} and result.notes == {} and result.study is None
    assert result.label(1, "fr") == "chol"  # no study labels: the raw name
    assert result.communication_bytes == {"a": (10, 20)}
    assert RunResult.model_validate(result.model_dump(mode="json")) == result


@pytest.mark.parametrize("change, field", [
    ({"model": {"coef": [float("nan")]}}, "model.coef.0"),
    ({"scaler": {"mean": [float("inf"), 0.0], "scale": [1.0, 1.0]}}, "scaler.mean.0"),
    ({"subgroup_stats": [[1.0, float("nan")]]}, "subgroup_stats.0.1"),
    ({"unknown": 1}, "unknown"),
])
def test_non_finite_model_numbers_and_unknown_fields_are_refused(change, field) -> None:
    with pytest.raises(ValidationError, match=field.replace(".", r"\.")):
        RunResult.model_validate({**OLD, **change})


def test_metrics_may_be_missing_and_the_result_is_frozen() -> None:
    result = RunResult.model_validate(OLD)
    assert result.metric("a", "auc") is None and result.metric("b", "n") is None
    with pytest.raises(ValidationError, match="frozen"):
        result.features = ["x"]  # type: ignore[misc]
