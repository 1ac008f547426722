"""The node's privacy checks and budget ledger: recomputed at the node, debited per release, capped per dataset."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from fedsante.audit.log import verify_file
from fedsante.data.heart import load_hospital
from fedsante.algorithms.logreg.params import LogRegParams
from fedsante.node.agent import NodeAgent
from fedsante.node.ledger import DEBIT, PrivacyLedger, carried_totals
from fedsante.node.policy import DatasetPolicy, load_policy, save_policy


@pytest.fixture
def agent(governed) -> NodeAgent:
    return NodeAgent(node_id="va", table=load_hospital("va"), key=governed.node_key, client=None,
                     guard=governed.guard())


def set_cap(governed, cap: float, **policy) -> None:
    current = load_policy(governed.policy_path)
    save_policy(governed.policy_path, current.model_copy(update={"datasets": {"va": DatasetPolicy(epsilon_cap=cap)},
                                                                 **policy}))


def run_tasks(governed, agent, run_id: str) -> list:
    """The statistics a DP run makes at a node outside secure aggregation: evaluation (with membership check)."""
    return [agent.handle(governed.task("evaluate", run_id=run_id, round=16,
                                       arrays=_model_arrays()))]


def _model_arrays() -> dict:
    import numpy as np

    from fedsante.federation.messages import pack

    return pack({"coef": np.zeros(13), "intercept": np.zeros(1), "mean": np.zeros(13), "scale": np.ones(13)})


def test_each_release_is_debited_in_the_chain_and_the_totals_are_reported(governed, agent) -> None:
    result = run_tasks(governed, agent, "run1")[0]

    assert result.ok, result.error
    debits = [e for e in governed.audit.entries() if DEBIT in e.details]
    assert len(debits) == 1 and debits[0].action == "task.executed"
    details = debits[0].details[DEBIT]
    assert details["dataset"] == "va" and details["run"] == "run1" and details["project"] == "RAIH-2026-0001"
    assert details["mechanism"] == "record" and details["delta"] == 1e-5
    # evaluation + membership on test rows; the subgroups' secure sum, a second evaluation release, spends the rest
    assert 0.5 <= details["epsilon"] <= details["run_epsilon"] < 0.99
    assert result.privacy == {"dataset": "va", "epsilon": details["run_epsilon"], "delta": 1e-5, "runs": 1,
                              "epsilon_cap": 10.0}
    assert result.metrics["noise_sd"] > 1  # the evaluation counts are noised
    # VA has 10 test patients without the disease: k_min applies to the true class counts, whatever the noise
    assert result.metrics["auc"] is None and result.metrics["n_positive"] is None
    assert verify_file(governed.audit.path).ok


def test_subgroup_statistics_never_leave_outside_a_secure_sum(governed, agent) -> None:
    result = agent.handle(governed.task("subgroups", run_id="run1", round=17, arrays=_model_arrays()))
    assert not result.ok and "only summed with other hospitals' by secure aggregation" in result.error
    assert not result.arrays and not [e for e in governed.audit.entries() if DEBIT in e.details]


def test_a_run_beyond_the_datasets_remaining_budget_is_refused_with_the_numbers(governed, agent) -> None:
    set_cap(governed, 1.5)
    assert run_tasks(governed, agent, "run1")[0].ok
    assert agent.handle(governed.task("moments", run_id="run1")).ok  # the same run goes on, within its plan

    refused = run_tasks(governed, agent, "run2")[0]

    assert not refused.ok
    # run1 made its evaluation and moments, not its subgroups' secure sum: it spent less than its epsilon = 1
    spent = max(e.details[DEBIT]["run_epsilon"] for e in governed.audit.entries() if DEBIT in e.details)
    assert 0.5 < spent < 1.0
    assert (f"privacy budget of dataset 'va' exhausted: earlier runs spent epsilon={spent:.4g} of its cap 1.5, and "
            f"this run needs epsilon=1 more ({spent + 1:.4g} in all)") in refused.error
    assert [e.action for e in governed.audit.entries()][-1] == "task.refused"
    # a fresh ledger (node restart) reads the same totals from the chain
    assert PrivacyLedger(governed.audit).spent("va") == pytest.approx(spent, rel=1e-9)
    assert not run_tasks(governed, agent, "run3")[0].ok


def test_the_node_recomputes_the_runs_spending_and_refuses_less_noise_than_approved(governed, agent) -> None:
    params = LogRegParams.model_validate(governed.task("fit").params)
    louder = params.model_copy(update={"noise_multiplier": params.noise_multiplier / 2}).model_dump()

    refused = agent.handle(governed.task("evaluate", params=louder, arrays=_model_arrays()))

    assert not refused.ok
    assert "the run would spend epsilon=" in refused.error and "more than its approval's epsilon=1" in refused.error
    assert not [e for e in governed.audit.entries() if DEBIT in e.details]


def test_a_release_beyond_the_runs_plan_is_refused(governed, agent) -> None:
    assert run_tasks(governed, agent, "run1")[0].ok
    again = agent.handle(governed.task("evaluate", run_id="run1", round=17, arrays=_model_arrays()))
    assert not again.ok and "has already made the 1 'evaluate' release(s) its privacy plan allows" in again.error
    assert agent.handle(governed.task("moments", run_id="run1")).ok  # scaling 'global': one moments release
    assert "already made the 1 'moments'" in agent.handle(governed.task("moments", run_id="run1")).error


def test_exact_outputs_are_refused_unless_the_policy_allows_them(governed, agent) -> None:
    exact = LogRegParams(privacy="none").model_dump(exclude_none=True)
    approval = governed.signed(parameters=exact)
    governed.acceptances.decide(approval, "accepted", "tester")

    refused = agent.handle(governed.task("evaluate", approval=approval, arrays=_model_arrays()))
    assert not refused.ok and "sends only differentially private ones" in refused.error

    set_cap(governed, 10.0, require_differential_privacy=False)  # only the hospital's operator can allow it
    allowed = agent.handle(governed.task("evaluate", approval=approval, arrays=_model_arrays()))
    assert allowed.ok and "noise_sd" not in allowed.metrics
    assert not [e for e in governed.audit.entries() if DEBIT in e.details]


def test_pruning_carries_the_totals_forward(governed, agent) -> None:
    run_tasks(governed, agent, "run1")
    governed.audit.append("operator", "policy.viewed", "va")
    before = PrivacyLedger(governed.audit).totals()["va"]

    removed = governed.audit.prune(1, now=datetime.now(UTC) + timedelta(days=3), carry=carried_totals)

    assert removed >= 1  # the task with its debit (the last entry always stays: append one after it)
    marker = governed.audit.entries()[-1]
    assert marker.action == "audit.pruned" and not any(DEBIT in e.details for e in governed.audit.entries())
    assert json.loads(json.dumps(marker.details["carried"]))["privacy"]["va"]["runs"] == 1
    after = PrivacyLedger(governed.audit).totals()["va"]
    assert after == before
    assert verify_file(governed.audit.path).ok


def test_evaluation_statistics_are_one_noisy_release_and_withheld_for_a_small_class(tmp_path, governed, agent) -> None:
    import numpy as np

    from conftest import make_governed
    from fedsante.federation.messages import unpack
    from fedsante.reports.performance import GroupStats, group_stats

    assert "stats" not in run_tasks(governed, agent, "run1")[0].arrays  # VA: 10 test patients without the disease

    cleveland = make_governed(tmp_path / "cleveland", node_id="cleveland", dataset="cleveland")
    node = NodeAgent(node_id="cleveland", table=load_hospital("cleveland"), key=cleveland.node_key, client=None,
                     guard=cleveland.guard())
    result = node.handle(cleveland.task("evaluate", run_id="run1", round=16, arrays=_model_arrays()))
    assert result.ok, result.error
    noisy = GroupStats.from_vector(unpack(result.arrays)["stats"])
    y = load_hospital("cleveland").part("test")[1]
    exact = group_stats(y, np.full(len(y), 0.5))  # the zero model predicts 0.5 for everyone
    assert noisy.as_vector().shape == exact.as_vector().shape == (42,)
    assert not np.allclose(noisy.counts, exact.counts)  # noised
    assert abs(noisy.counts.sum() - len(y)) < 20 * 4.5 * result.metrics["noise_sd"]
    assert result.metrics["n"] == len(y) and result.metrics["auc"] is not None
