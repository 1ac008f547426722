"""Confidentiality by role: each leak of the issue reproduced, then shown closed.

- a reviewer's comment never reaches the portal (page, JSON twin, /en) nor another organisation;
  only the decision, the reviewer's organisation and an optional public reason are published;
- drafts and review threads are read by the applicant's organisation, reviewers, auditors and admins
  only; other accounts see what the portal shows (and a draft does not exist for them);
- held run outputs are never shown to a reviewer of the applicant's organisation before release;
- the desk's SQLite files are 0600; registre.csv cells cannot start a formula; security headers on
  every response.
"""

from __future__ import annotations

import csv
import io
import os
import stat
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from fedsante.desk.db import make_sessionmaker
from fedsante.desk.settings import DeskSettings
from fedsante.portal.app import create_app
from fedsante.portal.opendata import csv_cell
from fedsante.sim.lifecycle import HOLDER_ORG, REVIEWER_ORGS
from test_lifecycle import ADMIN, Desk
from test_release import completed_run, release

SECRET = "Private to the applicant: the PI's previous study was retracted."
PUBLIC = "The purpose does not match the requested datasets."


@pytest.fixture
def desk(tmp_path):
    app = create_app(DeskSettings(data_dir=tmp_path, database_url="sqlite://"), admin_token=ADMIN)
    with TestClient(app) as client:
        desk = Desk(client, app)
        end = (datetime.now(UTC).date() + timedelta(days=60)).isoformat()
        for user, org, role in (("auditor", REVIEWER_ORGS[0], "auditor"), ("operator", REVIEWER_ORGS[1], "operator"),
                                ("colleague", HOLDER_ORG, "holder")):
            desk.tokens[user] = desk.call("admin", "POST", "/api/v1/accounts", json={
                "name": user, "organisation": org, "role": role, "end_date": end}).json()["token"]
        yield desk


def _review(desk: Desk, who: str, reference: str, decision: str, comment: str, public_reason: str = ""):
    response = desk.call(who, "POST", f"/api/v1/projects/{reference}/reviews",
                         json={"decision": decision, "comment": comment, "public_reason": public_reason})
    assert response.status_code == 201, response.text
    return response.json()


PORTAL = ("/projets/{}", "/projets/{}.json", "/en/projects/{}", "/en/projects/{}.json")


@pytest.mark.parametrize("decision", ["reject", "changes_requested"])
def test_a_reviewer_comment_is_never_public_only_the_decision_and_a_public_reason(desk, decision) -> None:
    reference = desk.submitted()
    _review(desk, "r1", reference, decision, SECRET, PUBLIC)
    for path in PORTAL:
        response = desk.client.get(path.format(reference))
        assert response.status_code == 200
        assert SECRET not in response.text and "retracted" not in response.text, path
        assert PUBLIC in response.text and REVIEWER_ORGS[0] in response.text, path
    twin = desk.client.get(f"/projets/{reference}.json").json()
    (review,) = twin["reviews"]
    assert review == {"version": 1, "decision": decision, "at": review["at"],
                      "reviewer_organisation": REVIEWER_ORGS[0], "public_reason": PUBLIC}
    assert twin["events"][-1]["reason"] == PUBLIC
    # the applicant reads the comment; another organisation's holder and the API history do not
    thread = desk.call("holder", "GET", f"/api/v1/projects/{reference}/reviews").json()
    assert thread[0]["comment"] == SECRET and thread[0]["reviewer"] == "r1"
    outsider = desk.call("other-holder", "GET", f"/api/v1/projects/{reference}/reviews")
    assert outsider.status_code == 200 and SECRET not in outsider.text and PUBLIC in outsider.text
    assert "reviewer" not in outsider.json()[0] and "comment" not in outsider.json()[0]
    history = desk.call("other-holder", "GET", f"/api/v1/projects/{reference}/history")
    assert SECRET not in history.text


def test_without_a_public_reason_the_portal_shows_the_decision_only(desk) -> None:
    reference = desk.submitted()
    _review(desk, "r1", reference, "reject", SECRET)
    for path in PORTAL:
        text = desk.client.get(path.format(reference)).text
        assert SECRET not in text
    twin = desk.client.get(f"/projets/{reference}.json").json()
    assert twin["reviews"][0]["public_reason"] == "" and twin["events"][-1] == {
        **twin["events"][-1], "to": "rejected", "reason": ""}


def test_drafts_are_read_only_by_the_applicant_organisation_reviewers_auditors_and_admins(desk) -> None:
    draft = desk.draft(title="Brouillon confidentiel")
    for who in ("holder", "colleague", "insider", "r1", "auditor", "admin"):
        assert desk.call(who, "GET", f"/api/v1/projects/{draft}").status_code == 200, who
        assert draft in {p["reference"] for p in desk.call(who, "GET", "/api/v1/projects").json()}, who
    for who in ("other-holder", "operator"):
        assert draft not in desk.call(who, "GET", "/api/v1/projects").text, who
        for part in ("", "/reviews", "/history", "/checks", "/approval", "/acceptances"):
            response = desk.call(who, "GET", f"/api/v1/projects/{draft}{part}")
            assert response.status_code == 404, (who, part, response.text)
    assert desk.client.get(f"/projets/{draft}.json").status_code == 404


def test_other_accounts_see_a_submitted_project_as_the_portal_does(desk) -> None:
    reference = desk.submitted()
    _review(desk, "r1", reference, "comment", SECRET)
    for who in ("other-holder", "operator"):
        project = desk.call(who, "GET", f"/api/v1/projects/{reference}").json()
        assert project["status"] == "in_review" and "owner" not in project
        (review,) = desk.call(who, "GET", f"/api/v1/projects/{reference}/reviews").json()
        assert set(review) == {"version", "decision", "reviewer_organisation", "public_reason", "created_at"}
    for who in ("holder", "colleague", "r2", "auditor", "admin"):  # auditors read everything, change nothing
        (review,) = desk.call(who, "GET", f"/api/v1/projects/{reference}/reviews").json()
        assert review["comment"] == SECRET, who
        assert desk.call(who, "GET", f"/api/v1/projects/{reference}").json()["owner"] == "holder"


def test_held_outputs_are_never_shown_to_a_reviewer_of_the_applicant_organisation(desk) -> None:
    _, run_id = completed_run(desk)
    seen = {who: desk.call(who, "GET", f"/api/v1/runs/{run_id}").json()["result"]
            for who in ("holder", "insider", "operator", "r1", "r2", "auditor", "admin")}
    assert {who for who, result in seen.items() if result} == {"r1", "r2", "auditor", "admin"}
    listed = [r for r in desk.call("insider", "GET", "/api/v1/runs").json() if r["id"] == run_id]
    assert listed[0]["held"] is True and listed[0]["result"] is None
    release(desk, "r1", run_id)
    assert desk.call("insider", "GET", f"/api/v1/runs/{run_id}").json()["result"] is None
    release(desk, "r2", run_id)
    assert desk.call("insider", "GET", f"/api/v1/runs/{run_id}").json()["result"]["model"]


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_desk_database_and_its_wal_and_shm_files_are_private(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "desk.db"
        sessions = make_sessionmaker(f"sqlite:///{path}")
        with sessions() as session:
            session.execute(__import__("sqlalchemy").text("SELECT 1"))
            files = [path, tmp_path / "desk.db-wal", tmp_path / "desk.db-shm"]
            assert all(f.exists() for f in files)
            assert [_mode(f) for f in files] == [0o600] * 3
        path.chmod(0o644)  # a database an earlier version created
        (tmp_path / "desk.db-wal").chmod(0o644)
        with make_sessionmaker(f"sqlite:///{path}")() as session:
            session.execute(__import__("sqlalchemy").text("SELECT 1"))
            assert _mode(path) == _mode(tmp_path / "desk.db-wal") == 0o600
    finally:
        os.umask(old)


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_registry_csv_cells_cannot_start_a_formula(desk, start) -> None:
    title = f"{start}HYPERLINK(\"http://evil.example\",\"clic\")"
    reference = desk.submitted(title=title)
    assert csv_cell(title) == "'" + title and csv_cell("Prédire") == "Prédire" and csv_cell(3) == 3
    rows = list(csv.reader(io.StringIO(desk.client.get("/registre.csv").text)))
    (row,) = [r for r in rows if r[0] == reference]
    assert row[1] == "'" + title
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows for cell in r)


SECURITY = {"x-frame-options": "DENY", "x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}


def _assert_secured(response, path: str) -> None:
    for name, value in SECURITY.items():
        assert response.headers.get(name) == value, (path, name)
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, path
    script = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
    assert "unsafe-inline" not in script, path


def test_every_response_carries_the_security_headers(desk) -> None:
    reference = desk.submitted()

    @desk.app.get("/test-boom")
    def boom() -> None:
        raise RuntimeError("boom")

    paths = ["/", "/en/", "/index.json", "/projets", f"/projets/{reference}", f"/projets/{reference}.json",
             f"/en/projects/{reference}.json", "/registre.csv", "/registre.dcat.json", "/flux.atom", "/verifier",
             "/opposition", "/api/v1/keys", "/health", "/projets/RAIH-0000-0000", "/en/projects/nope.json",
             "/api/v1/projects", "/api/v1/nothing-here", "/docs", "/redoc", "/openapi.json"]
    for path in paths:
        _assert_secured(desk.client.get(path), path)
    _assert_secured(desk.call("holder", "GET", f"/api/v1/projects/{reference}"), "api")
    _assert_secured(desk.call("holder", "GET", "/api/v1/accounts"), "403")
    _assert_secured(desk.call("holder", "POST", "/api/v1/projects", json={"title": 3}), "422")
    with TestClient(desk.app, raise_server_exceptions=False) as client:
        response = client.get("/test-boom")
        assert response.status_code == 500
        _assert_secured(response, "500")
    page = desk.client.get("/projets").headers["content-security-policy"]
    assert "style-src 'self' 'unsafe-inline'" in page and "script-src 'self';" in page
