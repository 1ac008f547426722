"""The node's output gate: disclosure control applied to what each task sends."""

from __future__ import annotations

import numpy as np
import pytest

from fedsante.data.heart import load_hospital
from fedsante.node.agent import NodeAgent
from fedsante.algorithms.catalogue import get_algorithm
from fedsante.node.outputs import Release, release_outputs
from fedsante.privacy.disclosure import DisclosureError

SIZES = {"n_train": 85, "n_test": 45, "n_total": 130, "group": "va"}
_LOGREG = get_algorithm("logreg")
EVALUATE = Release(test=True, fixed=_LOGREG.fixed_arrays, per_class=_LOGREG.per_class_metrics, evaluation=True,
                   class_arrays=_LOGREG.class_arrays)
FIT = Release(fixed=_LOGREG.fixed_arrays)


def test_evaluation_metrics_hide_a_class_under_k_min() -> None:
    metrics = {"n": 45.0, "n_positive": 40.0, "accuracy": 0.8, "auc": 0.7}
    _, released, notes = release_outputs(EVALUATE, {}, metrics, k_min=11, **SIZES)
    assert released == {"n": 45, "n_positive": None, "accuracy": 0.8, "auc": None}
    assert notes and "5 negative" in notes[0]


def test_metrics_on_enough_patients_of_both_classes_pass_unchanged() -> None:
    metrics = {"n": 45.0, "n_positive": 20.0, "accuracy": 0.8, "auc": 0.7}
    assert release_outputs(EVALUATE, {}, metrics, k_min=11, **SIZES)[1] == {
        "n": 45, "n_positive": 20, "accuracy": 0.8, "auc": 0.7}


def test_a_task_on_fewer_than_k_min_patients_sends_nothing() -> None:
    with pytest.raises(DisclosureError, match="disclosure control: .*sends nothing"):
        release_outputs(EVALUATE, {}, {"n": 45.0}, k_min=50, **SIZES)


@pytest.mark.parametrize("length", [45, 85, 130])
def test_a_per_patient_array_never_leaves(length: int) -> None:
    with pytest.raises(DisclosureError, match="one value per patient"):
        release_outputs(FIT, {"proba": np.zeros(length)}, {"n": 85.0}, k_min=11, **SIZES)


def test_the_node_applies_the_approvals_stricter_k_min_and_records_the_refusal(governed) -> None:
    approval = governed.signed(k_min=50)  # VA has 45 test patients
    governed.acceptances.decide(approval, "accepted", "tester")
    agent = NodeAgent(node_id="va", table=load_hospital("va"), key=governed.node_key, client=None,
                      guard=governed.guard())
    model = {"coef": np.zeros(13), "intercept": np.zeros(1), "mean": np.zeros(13), "scale": np.ones(13)}
    from fedsante.federation.messages import pack

    result = agent.handle(governed.task("evaluate", approval=approval, arrays=pack(model)))
    assert result.ok is False and "fewer than k_min = 50" in result.error
    assert governed.audit.entries()[-1].action == "task.refused"


def test_suppressions_are_written_to_the_node_chain(governed) -> None:
    # VA's test set holds 35 patients with the disease and 10 without: the AUC would describe 10.
    # Exact outputs (privacy 'none', allowed by this node's policy) show the gate alone.
    from fedsante.federation.messages import pack
    from fedsante.algorithms.logreg.params import LogRegParams
    from fedsante.node.policy import load_policy, save_policy

    approval = governed.signed(parameters=LogRegParams(privacy="none", scaling="global").model_dump(exclude_none=True))
    governed.acceptances.decide(approval, "accepted", "tester")
    policy = load_policy(governed.policy_path)
    save_policy(governed.policy_path, policy.model_copy(update={"require_differential_privacy": False}))
    agent = NodeAgent(node_id="va", table=load_hospital("va"), key=governed.node_key, client=None,
                      guard=governed.guard())
    model = {"coef": np.zeros(13), "intercept": np.zeros(1), "mean": np.zeros(13), "scale": np.ones(13)}

    result = agent.handle(governed.task("evaluate", approval=approval, arrays=pack(model)))
    assert result.ok, result.error
    assert result.metrics["auc"] is None and result.metrics["n_positive"] is None and result.metrics["n"] == 45
    entry = governed.audit.entries()[-1]
    assert any("35 positive and 10 negative" in line for line in entry.details["suppressed"])


def test_a_plain_model_update_is_refused_when_the_policy_requires_secure_aggregation(governed) -> None:
    agent = NodeAgent(node_id="va", table=load_hospital("va"), key=governed.node_key, client=None,
                      guard=governed.guard())
    model = {"coef": np.zeros(13), "intercept": np.zeros(1), "mean": np.zeros(13), "scale": np.ones(13)}
    from fedsante.federation.messages import pack

    result = agent.handle(governed.task("fit", arrays=pack(model)))
    assert result.ok is False and "only under secure aggregation" in result.error
