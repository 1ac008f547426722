"""Node enforcement: every refusal path names its reason, is signed, and lands in the node's chain."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import calibrated
from fedsante.data.heart import load_hospital
from fedsante.federation.approval import AlgorithmRef, iso
from fedsante.common.keys import canonical_json, public_key_b64, verify
from fedsante.algorithms.catalogue import installed as installed_algorithms
from fedsante.node.agent import NodeAgent
from fedsante.node.guard import algorithm_problem, approval_problems
from fedsante.node.policy import NodePolicy, load_policy, save_policy


def agent_for(governed) -> NodeAgent:
    return NodeAgent(node_id=governed.node_id, table=load_hospital("va"), key=governed.node_key, client=None,
                     guard=governed.guard())


def refusal(governed, task) -> str:
    """Handle ``task`` at the node; return its refusal after checking it is signed and in the chain."""
    result = agent_for(governed).handle(task)
    assert result.ok is False and result.arrays == {}
    assert verify(public_key_b64(governed.node_key), canonical_json(result.signed_content()), result.signature)
    last = governed.audit.entries()[-1]
    assert last.action == "task.refused" and last.details["reason"] == result.error
    assert last.details["task_id"] == task.task_id and (result.audit_seq, result.audit_head) == (last.seq, last.hash)
    return result.error


def test_an_approved_accepted_task_runs_and_is_logged(governed) -> None:
    result = agent_for(governed).handle(governed.task("moments"))
    assert result.ok, result.error
    last = governed.audit.entries()[-1]
    assert last.action == "task.executed" and last.details["approval_id"] == "RAIH-2026-0001-v1"
    assert result.audit_head == last.hash


def test_forged_approval_signature(governed) -> None:
    forged = governed.approval.model_copy(update={"document": governed.document(epsilon=0.5)})
    assert "invalid signature" in refusal(governed, governed.task(approval=forged))


def test_approval_signed_with_an_untrusted_key(governed) -> None:
    stranger = Ed25519PrivateKey.generate()
    error = refusal(governed, governed.task(approval=governed.signed(stranger)))
    assert "which this node does not trust" in error


def test_task_sealed_with_an_untrusted_key(governed) -> None:
    error = refusal(governed, governed.task(key=Ed25519PrivateKey.generate()))
    assert "the task is signed with desk key" in error and "does not trust" in error


def test_task_altered_after_the_desk_signed_it(governed) -> None:
    task = governed.task()
    altered = task.model_copy(update={"params": {**task.params, "lr": 0.5}})
    assert "desk signature is invalid" in refusal(governed, altered)


def test_expired_approval(governed) -> None:
    past = datetime.now(UTC) - timedelta(days=1)
    expired = governed.signed(expires_at=iso(past))
    governed.acceptances.decide(expired, "accepted", "tester")
    assert f"expired on {iso(past)}" in refusal(governed, governed.task(approval=expired))


def test_approval_of_another_project_replayed(governed) -> None:
    error = refusal(governed, governed.task(project="RAIH-2026-0099"))
    assert "is for project RAIH-2026-0001, not for project RAIH-2026-0099" in error


def test_a_task_received_twice_is_not_run_twice(governed) -> None:
    agent = agent_for(governed)
    task = governed.task()
    assert agent.handle(task).ok
    again = agent.handle(task)
    assert again.ok is False and "already received once" in again.error


def test_algorithm_hash_changed(governed) -> None:
    changed = governed.document().algorithm.model_copy(update={"code_hash": "f" * 64})
    approval = governed.signed(algorithm=changed)
    governed.acceptances.decide(approval, "accepted", "tester")
    error = refusal(governed, governed.task(approval=approval))
    assert "code hash ffffffffffff... differs from the installed code" in error


def test_task_asks_for_other_code_than_the_approval(governed) -> None:
    other = governed.approval.document.algorithm.model_copy(update={"code_hash": "e" * 64})
    error = refusal(governed, governed.task(algorithm=other))
    assert "the task asks for logreg code hash eeeeeeeeeeee" in error


def test_dataset_not_in_scope(governed) -> None:
    from fedsante.federation.approval import DatasetScope

    approval = governed.signed(datasets=[DatasetScope(node_id="other", dataset="other")])
    governed.acceptances.decide(approval, "accepted", "tester")
    error = refusal(governed, governed.task(approval=approval))
    assert "dataset 'va' of node va is not in the scope of approval" in error


def test_node_has_not_accepted(tmp_path) -> None:
    from conftest import make_governed

    governed = make_governed(tmp_path / "n", accept=False)
    error = refusal(governed, governed.task())
    assert "has not been accepted at this node" in error and "fedsante node accept RAIH-2026-0001" in error


def test_node_declined(governed) -> None:
    governed.acceptances.decide(governed.approval, "declined", "dpo", "not our priority")
    assert "this hospital declined approval RAIH-2026-0001-v1" in refusal(governed, governed.task())


def test_accepted_document_differs_from_the_one_sent(governed) -> None:
    reissued = governed.signed(reviewers=["someone else"])  # same id, validly signed, different content
    assert "differs from the document this hospital accepted" in refusal(governed, governed.task(approval=reissued))


def test_parameter_outside_its_bounds(governed) -> None:
    task = governed.task(params={**governed.approval.document.parameters, "rounds": 31})
    assert "parameter rounds=31 is outside approval" in refusal(governed, task)


def test_parameter_within_its_bounds_runs(governed) -> None:
    task = governed.task(params={**calibrated(governed.approval.document), "rounds": 5})
    assert agent_for(governed).handle(task).ok


def test_parameter_without_bounds_must_equal_the_approved_value(governed) -> None:
    task = governed.task(params={**calibrated(governed.approval.document), "lr": 0.5})
    assert "parameter lr=0.5 is outside approval RAIH-2026-0001-v1 (lr = 0.1)" in refusal(governed, task)


def test_task_without_approval(governed) -> None:
    assert "carries no approval" in refusal(governed, governed.task().model_copy(update={"approval": None}))


def test_k_min_below_the_node_floor(governed) -> None:
    policy = load_policy(governed.policy_path)
    save_policy(governed.policy_path, policy.model_copy(update={"k_min_floor": 20}))
    assert "approval k_min 11 is below this node's floor 20" in refusal(governed, governed.task())


def test_epsilon_above_the_dataset_cap(governed) -> None:
    approval = governed.signed(epsilon=20.0)
    governed.acceptances.decide(approval, "accepted", "tester")
    assert "approval epsilon 20.0 exceeds this node's cap 10" in refusal(governed, governed.task(approval=approval))


def test_missing_policy_refuses_everything(governed) -> None:
    governed.policy_path.unlink()
    assert "does not exist, so this node refuses all work" in refusal(governed, governed.task())


def test_policy_cannot_lower_k_min_below_11() -> None:
    with pytest.raises(ValueError, match="k_min_floor"):
        NodePolicy(k_min_floor=5)


def test_auto_accept_within_limits(tmp_path) -> None:
    from conftest import make_governed

    governed = make_governed(tmp_path / "n", accept=False)
    policy = load_policy(governed.policy_path)
    rule = policy.auto_accept.model_copy(update={"enabled": True, "algorithms": ["logreg"], "purposes": ["research"],
                                                 "max_epsilon": 1.0})
    save_policy(governed.policy_path, policy.model_copy(update={"auto_accept": rule}))
    assert agent_for(governed).handle(governed.task()).ok
    entry = governed.acceptances.get("RAIH-2026-0001-v1")
    assert entry["decision"] == "accepted" and entry["operator"] == "policy:auto_accept"
    assert [e.action for e in governed.audit.entries()][-2:] == ["approval.accepted", "task.executed"]


def test_approval_problems_lists_every_problem(governed) -> None:
    approval = governed.signed(epsilon=20.0, k_min=5, expires_at=iso(datetime.now(UTC) - timedelta(days=1)))
    problems = approval_problems(approval, node_id="va", dataset="va", policy=load_policy(governed.policy_path),
                                 installed=installed_algorithms(), now=datetime.now(UTC))
    assert len(problems) == 3, problems


@pytest.mark.parametrize(("change", "expected"), [
    ({"code_hash": "f" * 64}, "code hash ffffffffffff... differs"),
    ({"version": "9.9"}, "version 9.9 differs from the installed"),
    ({"id": "svm"}, "algorithm 'svm' is not installed at this node (installed: logreg)"),
])
def test_algorithm_problem(change, expected) -> None:
    installed = installed_algorithms()
    wanted = AlgorithmRef(**{**installed["logreg"].model_dump(), **change})
    assert expected in algorithm_problem(wanted, installed)
    assert algorithm_problem(installed["logreg"], installed) is None


def test_acceptance_list_records_the_document_digest(governed) -> None:
    entry = json.loads((governed.folder / "acceptances.json").read_text())["RAIH-2026-0001-v1"]
    assert entry["sha256"] == governed.approval.sha256() and entry["decision"] == "accepted"


def test_a_task_addressed_to_another_node_is_refused(governed) -> None:
    # Prepare: a correctly signed task of an accepted project, but for cleveland, delivered to va
    task = governed.task("moments", node_id="cleveland")

    # Execute
    result = agent_for(governed).handle(task)

    # Assert
    assert result.ok is False
    assert "the task is addressed to node 'cleveland', not to this node (va)" in result.error
