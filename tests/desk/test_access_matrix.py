"""Every desk endpoint x every role: allowed roles get past authorisation, the others get 403.

The expected matrix is written here independently of the code; a new endpoint without a row fails
the test, so nobody can add an endpoint without deciding who may call it.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from fedsante.desk.access import ROLES, Needs
from fedsante.desk.settings import DeskSettings
from fedsante.portal.app import create_app

ADMIN_TOKEN = "fst_bootstrap-admin-token-for-tests"
ALL = set(ROLES)
PUBLIC = "public"
NODE = "node"  # signed by a registered node's key, no account token

EXPECTED: dict[tuple[str, str], set[str] | str] = {
    ("GET", "/health"): PUBLIC,
    ("GET", "/api/v1/keys"): PUBLIC,
    ("GET", "/api/v1/charter"): PUBLIC,
    ("GET", "/api/v1/audit/heads"): PUBLIC,
    ("GET", "/api/v1/privacy"): PUBLIC,
    ("GET", "/api/v1/hospitals"): PUBLIC,
    # the public portal (fedsante.portal): pages, JSON twins, open data, the objection form
    **{("GET", path): PUBLIC for path in (
        "/", "/en/", "/index.json", "/en/index.json", "/projets", "/en/projects", "/projets.json", "/en/projects.json",
        "/projets/{reference}", "/en/projects/{reference}", "/projets/{reference}.json", "/en/projects/{reference}.json",
        "/projets/{reference}/rapport/{run_id}", "/en/projects/{reference}/report/{run_id}",
        "/hopitaux/{node_id}", "/en/hospitals/{node_id}", "/hopitaux/{node_id}.json", "/en/hospitals/{node_id}.json",
        "/verifier", "/en/verify", "/verifier.json", "/en/verify.json", "/vos-droits", "/en/your-rights",
        "/opposition", "/en/objection", "/opposition/{receipt}", "/en/objection/{receipt}",
        "/registre.csv", "/registre.dcat.json", "/flux.atom", "/schemas/portal.json", "/favicon.ico")},
    **{("POST", path): PUBLIC for path in ("/opposition", "/en/objection", "/opposition/{receipt}",
                                           "/en/objection/{receipt}")},
    ("POST", "/api/v1/objections"): PUBLIC,  # a patient objects: no account, the receipt is the credential
    ("GET", "/api/v1/objections/{receipt}"): PUBLIC,
    ("POST", "/api/v1/objections/{receipt}/withdraw"): PUBLIC,
    ("GET", "/api/v1/audit/desk"): {"auditor", "admin"},
    ("POST", "/api/v1/organisations"): {"admin"},
    ("GET", "/api/v1/organisations"): ALL,
    ("POST", "/api/v1/accounts"): {"admin"},
    ("GET", "/api/v1/accounts"): {"admin", "auditor"},
    ("GET", "/api/v1/accounts/me"): ALL,
    ("POST", "/api/v1/accounts/{name}/disable"): {"admin"},
    ("POST", "/api/v1/nodes"): {"admin", "operator"},
    ("GET", "/api/v1/nodes"): ALL,
    ("GET", "/api/v1/algorithms"): ALL,
    ("GET", "/api/v1/catalogue"): ALL,
    ("POST", "/api/v1/runs"): {"holder"},
    ("GET", "/api/v1/runs"): ALL,
    ("GET", "/api/v1/runs/{run_id}"): ALL,
    ("GET", "/api/v1/runs/{run_id}/tasks"): ALL,
    ("GET", "/api/v1/runs/{run_id}/checks"): ALL,
    ("POST", "/api/v1/runs/{run_id}/release"): {"reviewer"},
    ("POST", "/api/v1/projects"): {"holder"},
    # any account may call the project reads, but what it reads depends on the project: drafts and review
    # threads only for the applicant's organisation, reviewers, auditors and admins; others see what the
    # portal shows (a draft is a 404). Run outputs held for release: external reviewers, auditors, admins.
    # These row-level rules are tested in test_confidentiality.py.
    ("GET", "/api/v1/projects"): ALL,
    ("GET", "/api/v1/projects/{reference}"): ALL,
    ("PUT", "/api/v1/projects/{reference}"): {"holder"},
    ("GET", "/api/v1/projects/{reference}/checks"): ALL,
    ("POST", "/api/v1/projects/{reference}/submit"): {"holder"},
    ("POST", "/api/v1/projects/{reference}/reviews"): {"reviewer"},
    ("GET", "/api/v1/projects/{reference}/reviews"): ALL,
    ("GET", "/api/v1/projects/{reference}/history"): ALL,
    ("GET", "/api/v1/projects/{reference}/approval"): ALL,
    ("GET", "/api/v1/projects/{reference}/acceptances"): ALL,
    ("POST", "/api/v1/projects/{reference}/complete"): {"holder"},
    ("POST", "/api/v1/projects/{reference}/release"): {"reviewer"},
    ("POST", "/api/v1/projects/{reference}/archive"): {"admin"},
    ("GET", "/api/v1/node/tasks/next"): NODE,
    ("POST", "/api/v1/node/results"): NODE,
    ("GET", "/api/v1/node/approvals/{reference}"): NODE,
    ("POST", "/api/v1/node/acceptances"): NODE,
    ("PUT", "/api/v1/node/profile"): NODE,
    ("GET", "/api/v1/node/objections"): NODE,
    ("POST", "/api/v1/node/objections/applied"): NODE,
}


def api_routes(app):
    from fastapi.routing import APIRoute

    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        return [r for r in app.routes if isinstance(r, APIRoute)]
    return [c for c in iter_route_contexts(app.routes) if isinstance(c.original_route, APIRoute)]


def declared_roles(route) -> set[str] | str:
    """The roles a route's dependencies allow: PUBLIC, NODE or a set of roles."""
    calls = [d.call for d in route.dependant.dependencies]
    calls += [d.call for dep in route.dependant.dependencies for d in dep.dependencies]
    needs = [c for c in calls if isinstance(c, Needs)]
    if needs:
        return set.intersection(*(set(n.roles) for n in needs))
    return NODE if route.path.startswith("/api/v1/node/") else PUBLIC


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("desk")
    app = create_app(DeskSettings(data_dir=data_dir, database_url="sqlite://"), admin_token=ADMIN_TOKEN)
    with TestClient(app) as client:
        admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        client.post("/api/v1/organisations", json={"name": "Org"}, headers=admin)
        end = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
        tokens = {"admin": ADMIN_TOKEN}
        for role in ROLES:
            if role != "admin":
                response = client.post("/api/v1/accounts", headers=admin,
                                       json={"name": f"user-{role}", "organisation": "Org", "role": role, "end_date": end})
                tokens[role] = response.json()["token"]
        yield app, client, tokens


def test_every_endpoint_has_a_row_in_the_matrix(desk) -> None:
    app, _, _ = desk
    declared = {(m, r.path) for r in api_routes(app) for m in r.methods if r.path not in ("/docs", "/redoc")}
    declared = {(m, p) for m, p in declared if p != "/openapi.json" and not p.startswith("/docs")}
    assert declared == set(EXPECTED), (declared ^ set(EXPECTED))


def test_the_code_declares_the_same_roles_as_the_matrix(desk) -> None:
    app, _, _ = desk
    for route in api_routes(app):
        for method in route.methods:
            if (method, route.path) in EXPECTED:
                assert declared_roles(route) == EXPECTED[(method, route.path)], (method, route.path)


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


@pytest.mark.parametrize("role", [*ROLES, "no token", "bad token"])
@pytest.mark.parametrize(("method", "path"), sorted(EXPECTED))
def test_each_role_is_allowed_or_refused_as_the_matrix_says(desk, method, path, role) -> None:
    _, client, tokens = desk
    headers = {} if role == "no token" else {
        "authorization": f"Bearer {tokens.get(role, 'fst_not-a-real-token')}"}
    response = client.request(method, _concrete(path), headers=headers, json={} if method in ("POST", "PUT") else None)
    allowed = EXPECTED[(method, path)]
    if allowed == PUBLIC:
        assert response.status_code not in (401, 403), response.text
    elif allowed == NODE:
        assert response.status_code == 401, response.text  # an account token is not a node signature
    elif role in ("no token", "bad token"):
        assert response.status_code == 401, response.text
    elif role in allowed:
        assert response.status_code not in (401, 403), (role, response.text)
    else:
        assert response.status_code == 403, (role, response.text)
        assert "role" in response.json()["error"]
        last = desk[0].state.desk.audit_log().entries()[-1]
        assert (last.actor, last.action) == (f"user-{role}" if role != "admin" else "admin", "access.refused")


def test_an_account_past_its_end_date_is_refused(desk, monkeypatch) -> None:
    _, client, tokens = desk
    from fedsante.desk import access

    real = access.authenticate

    def later(request, today: date | None = None):
        return real(request, today=datetime.now(UTC).date() + timedelta(days=31))

    monkeypatch.setattr(access, "authenticate", later)
    response = client.get("/api/v1/accounts/me", headers={"authorization": f"Bearer {tokens['holder']}"})
    assert response.status_code == 401
    assert re.search(r"Account 'user-holder' ended on \d{4}-\d{2}-\d{2}; ask the desk admin to renew it",
                     response.json()["error"])
    last = desk[0].state.desk.audit_log().entries()[-1]
    assert (last.actor, last.action, last.subject) == ("user-holder", "access.refused", "GET /api/v1/accounts/me")
    assert last.details["status"] == 401 and "ended on" in last.details["reason"]


def test_a_disabled_account_is_refused(tmp_path) -> None:
    app = create_app(DeskSettings(data_dir=tmp_path, database_url="sqlite://"), admin_token=ADMIN_TOKEN)
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    with TestClient(app) as client:
        end = (datetime.now(UTC).date() + timedelta(days=3)).isoformat()
        token = client.post("/api/v1/accounts", headers=admin, json={
            "name": "leaver", "organisation": "Guichet IA régional", "role": "reviewer", "end_date": end}).json()["token"]
        assert client.get("/api/v1/accounts/me", headers={"authorization": f"Bearer {token}"}).status_code == 200
        assert client.post("/api/v1/accounts/leaver/disable", headers=admin).status_code == 200
        response = client.get("/api/v1/accounts/me", headers={"authorization": f"Bearer {token}"})
        assert response.status_code == 401 and "was disabled" in response.json()["error"]


@pytest.mark.parametrize("end_date", ["2000-01-01", "2999-01-01"])
def test_an_account_needs_an_end_date_between_today_and_three_years(desk, end_date) -> None:
    _, client, tokens = desk
    response = client.post("/api/v1/accounts", headers={"authorization": f"Bearer {tokens['admin']}"},
                           json={"name": f"u{end_date[:4]}", "organisation": "Org", "role": "holder",
                                 "end_date": end_date})
    assert response.status_code == 400 and "end_date" in response.json()["error"]


def test_an_account_without_an_end_date_is_refused(desk) -> None:
    _, client, tokens = desk
    response = client.post("/api/v1/accounts", headers={"authorization": f"Bearer {tokens['admin']}"},
                           json={"name": "noend", "organisation": "Org", "role": "holder"})
    assert response.status_code == 422 and "end_date" in response.json()["error"]


def test_tokens_are_stored_hashed(desk) -> None:
    app, _, tokens = desk
    from sqlalchemy import select

    from fedsante.desk.db import Account

    with app.state.desk.sessions() as session:
        stored = {a.token_sha256 for a in session.scalars(select(Account))}
    assert not set(tokens.values()) & stored
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in stored)
