"""The life of a project through the desk API: submission, review rules, signed approval, transitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from fedsante.desk.app import create_app
from fedsante.desk.settings import DeskSettings
from fedsante.federation.approval import SignedApproval, signature_problem
from fedsante.sim.lifecycle import HOLDER_ORG, REVIEWER_ORGS, example_spec

ADMIN = "fst_admin-token-for-lifecycle-tests"


class Desk:
    """A desk in-process with a holder, two external reviewers and a reviewer of the holder's organisation."""

    def __init__(self, client: TestClient, app) -> None:
        self.client, self.app = client, app
        self.tokens = {"admin": ADMIN}
        for name, kind in ((HOLDER_ORG, "research"), (REVIEWER_ORGS[0], "desk"), (REVIEWER_ORGS[1], "desk")):
            self.call("admin", "POST", "/api/v1/organisations", json={"name": name, "kind": kind})
        end = (datetime.now(UTC).date() + timedelta(days=60)).isoformat()
        for user, org, role in (("holder", HOLDER_ORG, "holder"), ("other-holder", REVIEWER_ORGS[1], "holder"),
                                ("r1", REVIEWER_ORGS[0], "reviewer"), ("r2", REVIEWER_ORGS[1], "reviewer"),
                                ("insider", HOLDER_ORG, "reviewer")):
            self.tokens[user] = self.call("admin", "POST", "/api/v1/accounts", json={
                "name": user, "organisation": org, "role": role, "end_date": end}).json()["token"]

    def call(self, who: str, method: str, path: str, **kwargs):
        return self.client.request(method, path, headers={"authorization": f"Bearer {self.tokens[who]}"}, **kwargs)

    def draft(self, **changes) -> str:
        spec = example_spec().model_copy(update=changes).model_dump(mode="json")
        response = self.call("holder", "POST", "/api/v1/projects", json=spec)
        assert response.status_code == 201, response.text
        return response.json()["reference"]

    def submitted(self, **changes) -> str:
        reference = self.draft(**changes)
        response = self.call("holder", "POST", f"/api/v1/projects/{reference}/submit", json={})
        assert response.status_code == 200, response.text
        return reference

    def review(self, who: str, reference: str, decision: str, comment: str = "ok"):
        return self.call(who, "POST", f"/api/v1/projects/{reference}/reviews",
                         json={"decision": decision, "comment": comment})

    def status(self, reference: str) -> str:
        return self.call("holder", "GET", f"/api/v1/projects/{reference}").json()["status"]

    def audit_actions(self) -> list[str]:
        return [e.action for e in self.app.state.desk.audit_log().entries()]


@pytest.fixture
def desk(tmp_path):
    app = create_app(DeskSettings(data_dir=tmp_path, database_url="sqlite://"), admin_token=ADMIN)
    with TestClient(app) as client:
        yield Desk(client, app)


def test_two_external_approvals_sign_an_approval_that_verifies_with_the_published_key(desk) -> None:
    reference = desk.submitted()
    assert desk.review("r1", reference, "approve").json()["status"] == "in_review"
    assert desk.review("r2", reference, "approve").json()["status"] == "approved"

    body = desk.call("holder", "GET", f"/api/v1/projects/{reference}/approval").json()
    signed = SignedApproval.model_validate({k: body[k] for k in ("document", "signature")})
    keys = {k["key_id"]: k["public_key"] for k in desk.client.get("/api/v1/keys").json()}
    assert signature_problem(signed, keys) is None
    doc = signed.document
    assert doc.project_reference == reference and doc.reviewers == ["r1", "r2"]
    assert doc.epsilon == 1.0 and doc.k_min == 11 and doc.algorithm.id == "logreg"
    assert {d.node_id for d in doc.datasets} == {"cleveland", "hungarian", "switzerland", "va"}
    assert doc.charter.id == "grand-est" and len(doc.charter.sha256) == 64
    assert body["sha256"] == signed.sha256()
    history = desk.call("holder", "GET", f"/api/v1/projects/{reference}/history").json()
    assert [e["to"] for e in history] == ["draft", "submitted", "in_review", "approved"]
    assert all(e["actor"] and e["time"] for e in history)
    assert {"project.submitted", "review.approve", "project.approved", "approval.signed"} <= set(desk.audit_actions())


def test_one_approval_is_not_enough(desk) -> None:
    reference = desk.submitted()
    desk.review("r1", reference, "approve")
    desk.review("r1", reference, "approve")  # the same reviewer twice still counts once
    assert desk.status(reference) == "in_review"
    assert desk.call("holder", "GET", f"/api/v1/projects/{reference}/approval").status_code == 404


def test_self_review_is_refused(desk) -> None:
    reference = desk.submitted()
    response = desk.review("insider", reference, "approve")
    assert response.status_code == 403
    assert "no self-review" in response.json()["error"] and HOLDER_ORG in response.json()["error"]
    assert desk.status(reference) == "submitted"
    last = desk.app.state.desk.audit_log().entries()[-1]
    assert (last.actor, last.action) == ("insider", "access.refused") and "no self-review" in last.details["reason"]


def test_submission_with_failing_checks_is_refused_naming_them(desk) -> None:
    reference = desk.draft(lay_summary_fr="", epsilon=50.0)
    response = desk.call("holder", "POST", f"/api/v1/projects/{reference}/submit", json={})
    assert response.status_code == 422
    error = response.json()["error"]
    assert "lay_summary_fr" in error and "epsilon" in error
    assert desk.status(reference) == "draft"
    checks = desk.call("r1", "GET", f"/api/v1/projects/{reference}/checks").json()
    assert checks["ok"] is False and any(not c["ok"] and c["message_fr"] for c in checks["checks"])


def test_changes_requested_then_a_new_version_needs_new_approvals(desk) -> None:
    reference = desk.submitted()
    desk.review("r1", reference, "approve")
    assert desk.review("r2", reference, "changes_requested", "Add a fairness analysis by age band.").json()["status"] \
        == "changes_requested"
    spec = example_spec().model_copy(update={"equity_statement": "Per hospital, per sex and per age band."})
    updated = desk.call("holder", "PUT", f"/api/v1/projects/{reference}", json=spec.model_dump(mode="json")).json()
    assert updated["version"] == 2
    desk.call("holder", "POST", f"/api/v1/projects/{reference}/submit", json={})
    assert desk.review("r2", reference, "approve").json()["status"] == "in_review"  # r1's approval was for v1
    assert desk.review("r1", reference, "approve").json()["status"] == "approved"
    approval = desk.call("holder", "GET", f"/api/v1/projects/{reference}/approval").json()
    assert approval["document"]["approval_id"] == f"{reference}-v2"
    reviews = desk.call("r1", "GET", f"/api/v1/projects/{reference}/reviews").json()
    assert [(r["reviewer"], r["version"], r["decision"]) for r in reviews] == [
        ("r1", 1, "approve"), ("r2", 1, "changes_requested"), ("r2", 2, "approve"), ("r1", 2, "approve")]
    assert reviews[1]["comment"] == "Add a fairness analysis by age band."


def test_reject_is_final(desk) -> None:
    reference = desk.submitted()
    desk.review("r1", reference, "reject", "Purpose is insurance pricing.")
    assert desk.status(reference) == "rejected"
    response = desk.review("r2", reference, "approve")
    assert response.status_code == 409 and "rejected" in response.json()["error"]


def test_a_decision_other_than_approve_needs_a_comment(desk) -> None:
    reference = desk.submitted()
    response = desk.review("r1", reference, "reject", "")
    assert response.status_code == 422 and "needs a comment" in response.json()["error"]


def test_holders_act_only_on_their_own_organisations_projects(desk) -> None:
    reference = desk.draft()
    response = desk.call("other-holder", "POST", f"/api/v1/projects/{reference}/submit", json={})
    assert response.status_code == 403 and "another organisation" in response.json()["error"]


def test_an_approved_project_cannot_be_edited_and_invalid_transitions_say_what_is_possible(desk) -> None:
    reference = desk.submitted()
    desk.review("r1", reference, "approve")
    desk.review("r2", reference, "approve")
    spec = example_spec().model_dump(mode="json")
    assert desk.call("holder", "PUT", f"/api/v1/projects/{reference}", json=spec).status_code == 409
    response = desk.call("r1", "POST", f"/api/v1/projects/{reference}/release", json={})
    assert response.status_code == 409 and "cannot become results_released" in response.json()["error"]


def test_run_of_a_project_that_is_not_approved_is_refused(desk) -> None:
    reference = desk.submitted()
    response = desk.call("holder", "POST", "/api/v1/runs", json={"project": reference})
    assert response.status_code == 409 and "only an approved project can run" in response.json()["error"]


def test_run_outside_the_approval_is_refused(desk) -> None:
    reference = desk.submitted()
    desk.review("r1", reference, "approve")
    desk.review("r2", reference, "approve")
    response = desk.call("holder", "POST", "/api/v1/runs", json={"project": reference, "nodes": ["chu-x"]})
    assert response.status_code == 403 and "not in approval" in response.json()["error"]
    response = desk.call("holder", "POST", "/api/v1/runs", json={"project": reference, "params": {"rounds": 99}})
    assert response.status_code == 403 and "rounds=99 is outside approval" in response.json()["error"]
    response = desk.call("holder", "POST", "/api/v1/runs", json={"project": reference, "params": {"lr": 0.5}})
    assert response.status_code == 403 and "lr" in response.json()["error"]


def test_complete_release_archive(desk) -> None:
    reference = desk.submitted()
    desk.review("r1", reference, "approve")
    desk.review("r2", reference, "approve")
    desk.app.state.desk.record("test", "noop", reference)
    with desk.app.state.desk.sessions() as session:  # a run moved it to running (runs are tested end to end)
        from fedsante.desk import projects

        projects.move(desk.app.state.desk, session, projects.get_project(session, reference), "running", "holder")
        session.commit()
    assert desk.call("holder", "POST", f"/api/v1/projects/{reference}/complete", json={}).json()["status"] == "completed"
    assert desk.call("r1", "POST", f"/api/v1/projects/{reference}/release", json={}).json()["status"] == "results_released"
    assert desk.call("admin", "POST", f"/api/v1/projects/{reference}/archive", json={}).json()["status"] == "archived"
    history = [e["to"] for e in desk.call("holder", "GET", f"/api/v1/projects/{reference}/history").json()]
    assert history[-3:] == ["completed", "results_released", "archived"]


def test_unknown_project_fields_are_refused(desk) -> None:
    response = desk.call("holder", "POST", "/api/v1/projects", json={"title": "x", "colour": "blue"})
    assert response.status_code == 422 and "colour" in response.json()["error"]


def test_key_rotation_signs_new_approvals_with_the_new_key_and_keeps_the_old_one_published(desk) -> None:
    first = desk.submitted()
    desk.review("r1", first, "approve")
    desk.review("r2", first, "approve")
    new = desk.app.state.desk.keyring.rotate()
    second = desk.submitted()
    desk.review("r1", second, "approve")
    desk.review("r2", second, "approve")
    keys = desk.client.get("/api/v1/keys").json()
    assert len(keys) == 2 and keys[0]["retired_at"] and keys[1]["retired_at"] is None
    trusted = {k["key_id"]: k["public_key"] for k in keys}
    for reference, key in ((first, keys[0]["key_id"]), (second, new.key_id)):
        body = desk.call("holder", "GET", f"/api/v1/projects/{reference}/approval").json()
        signed = SignedApproval.model_validate({k: body[k] for k in ("document", "signature")})
        assert signed.document.desk_key_id == key and signature_problem(signed, trusted) is None
