"""The output release gate: outputs are withheld from the holder until two external reviewers release them."""

from __future__ import annotations

import pytest

from fedsante.desk import projects
from fedsante.desk.db import Project, Run, utcnow
from test_lifecycle import Desk, desk  # noqa: F401  (fixture)

RESULT = {
    "model": {"coef": [0.1] * 13, "intercept": [0.2]},
    "scaler": {"mean": [0.0] * 13, "scale": [1.0] * 13},
    "features": [f"f{i}" for i in range(13)],
    "node_metrics": {"cleveland": {"n": 104.0, "accuracy": 0.8, "auc": 0.9},
                     "va": {"n": 45.0, "accuracy": 0.7, "auc": 0.7}},
    "train_n": {"cleveland": 199.0, "va": 85.0},
    "round_seconds": [0.05],
}


PRIVACY = {"mechanism": "record", "epsilon": 0.99, "delta": 1e-5, "approved_epsilon": 1.0, "ledger": []}


def completed_run(desk: Desk, privacy: dict | None = PRIVACY, **result_changes) -> tuple[str, str]:
    reference = desk.submitted()
    desk.review("r1", reference, "approve")
    desk.review("r2", reference, "approve")
    state = desk.app.state.desk
    with state.sessions() as session:
        project = projects.get_project(session, reference)
        projects.move(state, session, project, "running", "holder", "run r1")
        run = Run(id=f"run-{project.id}", project_id=project.id, approval_id=f"{reference}-v1", started_by="holder",
                  status="completed", algorithm_id="logreg", algorithm_version="0", code_hash="0" * 64, params={},
                  nodes=["cleveland", "va"], rounds=1, current_round=1, result={**RESULT, **result_changes},
                  privacy=privacy, finished_at=utcnow())
        session.add(run)
        session.commit()
        return reference, run.id


def release(desk: Desk, who: str, run_id: str):
    return desk.call(who, "POST", f"/api/v1/runs/{run_id}/release", json={"comment": "checked"})


def test_outputs_are_held_until_two_external_reviewers_release_them(desk) -> None:
    reference, run_id = completed_run(desk)
    held = desk.call("holder", "GET", f"/api/v1/runs/{run_id}").json()
    assert held["held"] is True and held["result"] is None
    assert desk.call("r1", "GET", f"/api/v1/runs/{run_id}").json()["result"]["model"]  # reviewers see them
    assert all(c["ok"] for c in desk.call("r1", "GET", f"/api/v1/runs/{run_id}/checks").json()["checks"])

    first = release(desk, "r1", run_id).json()
    assert first == {"run_id": run_id, "released": False, "released_by": ["r1"], "needed": 2}
    assert desk.call("holder", "GET", f"/api/v1/runs/{run_id}").json()["result"] is None
    again = release(desk, "r1", run_id)
    assert again.status_code == 409 and "another reviewer must also" in again.json()["error"]
    insider = release(desk, "insider", run_id)
    assert insider.status_code == 403 and "applicant's organisation" in insider.json()["error"]

    assert release(desk, "r2", run_id).json()["released"] is True
    visible = desk.call("holder", "GET", f"/api/v1/runs/{run_id}").json()
    assert visible["held"] is False and visible["result"]["node_metrics"]["va"]["n"] == 45.0
    actions = desk.audit_actions()
    assert actions.count("run.release_signed") == 2 and "run.released" in actions
    assert [r["result"] for r in desk.call("holder", "GET", "/api/v1/runs").json()] != [None]


def test_a_site_under_k_min_blocks_the_release(desk) -> None:
    metrics = {**RESULT["node_metrics"], "va": {"n": 7.0, "accuracy": 0.7, "auc": 0.7}}
    _, run_id = completed_run(desk, node_metrics=metrics)
    checks = {c["id"]: c for c in desk.call("r1", "GET", f"/api/v1/runs/{run_id}/checks").json()["checks"]}
    assert checks["k_min"]["ok"] is False and checks["k_min"]["message"].endswith(": va")
    assert "7" not in checks["k_min"]["message"].replace("k_min = 11", "")  # no count under k_min
    response = release(desk, "r1", run_id)
    assert response.status_code == 409 and "k_min" in response.json()["error"]


@pytest.mark.parametrize(("changes", "check"), [
    ({"model": {"coef": [0.1] * 200, "intercept": [0.2]}}, "aggregates_only"),
    ({"train_n": {"cleveland": 20.0, "va": 10.0}}, "model_size"),
])
def test_outputs_that_could_disclose_are_not_released(desk, changes: dict, check: str) -> None:
    _, run_id = completed_run(desk, **changes)
    _assert_blocked(desk, run_id, check)


@pytest.mark.parametrize("privacy", [None, {**PRIVACY, "epsilon": 1.5}])
def test_a_run_without_privacy_within_its_approval_is_not_released(desk, privacy) -> None:
    _, run_id = completed_run(desk, privacy=privacy)
    _assert_blocked(desk, run_id, "privacy_budget")


def _assert_blocked(desk, run_id: str, check: str) -> None:
    failing = [c["id"] for c in desk.call("r1", "GET", f"/api/v1/runs/{run_id}/checks").json()["checks"] if not c["ok"]]
    assert check in failing
    assert release(desk, "r1", run_id).status_code == 409


def test_project_results_cannot_be_released_while_a_run_is_held(desk) -> None:
    reference, run_id = completed_run(desk)
    assert desk.call("holder", "POST", f"/api/v1/projects/{reference}/complete", json={}).status_code == 200
    response = desk.call("r1", "POST", f"/api/v1/projects/{reference}/release", json={})
    assert response.status_code == 409 and run_id in response.json()["error"]
    release(desk, "r1", run_id)
    release(desk, "r2", run_id)
    assert desk.call("r1", "POST", f"/api/v1/projects/{reference}/release", json={}).json()["status"] == "results_released"
    with desk.app.state.desk.sessions() as session:
        assert session.query(Project).one().status == "results_released"


def test_a_project_cannot_be_completed_while_a_run_is_recorded_as_running(desk) -> None:
    # Prepare: a run row still 'running' (e.g. driven by another desk process, or left by a crash before recovery)
    reference, run_id = completed_run(desk)
    state = desk.app.state.desk
    with state.sessions() as session:
        session.get(Run, run_id).status = "running"
        session.commit()

    # Execute / Assert
    refused = desk.call("holder", "POST", f"/api/v1/projects/{reference}/complete", json={"reason": "done"})
    assert refused.status_code == 409 and f"still has a run in progress ({run_id})" in refused.json()["error"]


def test_runs_left_running_by_a_previous_desk_process_are_failed_and_audited_at_start(desk) -> None:
    # Prepare
    reference, run_id = completed_run(desk)
    state = desk.app.state.desk
    with state.sessions() as session:
        session.get(Run, run_id).status = "running"
        session.commit()

    # Execute: what a restarted desk does first
    failed = state.runs.recover()

    # Assert
    assert failed == [run_id]
    run = desk.call("holder", "GET", f"/api/v1/runs/{run_id}").json()
    assert run["status"] == "failed" and run["error"].startswith("The desk restarted during the run")
    assert any(e.action == "run.failed" and e.subject == run_id for e in state.audit_log().entries())
    assert state.runs.recover() == []  # nothing left to recover
