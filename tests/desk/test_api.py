"""The desk HTTP API: tokens, registry, run validation, node authentication, error shape."""

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from fedsante.common.keys import public_key_b64
from fedsante.desk.app import create_app
from fedsante.desk.settings import DeskSettings
from fedsante.federation.auth import sign_request
from fedsante.sim.lifecycle import example_spec

TOKEN = "t"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
ERROR_KEYS = {"ok", "error", "errors", "status"}
NEXT_TASK = "/api/v1/node/tasks/next?wait=0"


@pytest.fixture
def app(tmp_path):
    return create_app(DeskSettings(data_dir=tmp_path, database_url="sqlite://"), admin_token=TOKEN)


@pytest.fixture
def client(app):
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def node_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def assert_error(response, status: int, pattern: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["ok"] is False and body["status"] == status
    assert re.search(pattern, body["error"]), body["error"]
    assert isinstance(body["errors"], list) and body["errors"]
    return body


def create_org(client: TestClient, name: str = "CHU Lille") -> None:
    assert client.post("/api/v1/organisations", json={"name": name}, headers=ADMIN).status_code == 201


def register_node(client: TestClient, key: Ed25519PrivateKey, node_id: str = "chu-lille", org: str = "CHU Lille"):
    return client.post("/api/v1/nodes", headers=ADMIN,
                       json={"node_id": node_id, "organisation": org, "public_key": public_key_b64(key)})


def api_routes(app) -> list[tuple[str, str, bool]]:
    """``(method, path, include_in_schema)`` of every API route of the app, included routers too."""
    try:
        from fastapi.routing import iter_route_contexts  # newer FastAPI: included routers stay lazy
    except ImportError:
        routes = [r for r in app.routes if isinstance(r, APIRoute)]
    else:
        routes = [c for c in iter_route_contexts(app.routes) if isinstance(c.original_route, APIRoute)]
    return sorted((method, r.path, bool(r.include_in_schema)) for r in routes for method in r.methods)


def admin_routes(app) -> list[tuple[str, str]]:
    return [(method, path) for method, path, _ in api_routes(app)
            if path.startswith("/api/v1/") and not path.startswith("/api/v1/node/")]


# --- service -------------------------------------------------------------------------------------

def test_health_is_ok_without_a_token(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["ok"] is True and response.json()["service"] == "fedsante-desk"


def test_openapi_schema_lists_every_route(app, client: TestClient) -> None:
    # Prepare
    routes = {(method.lower(), path) for method, path, in_schema in api_routes(app) if in_schema}
    assert len(routes) >= 30

    # Execute
    schema = client.get("/openapi.json").json()

    # Assert
    listed = {(method, path) for path, ops in schema["paths"].items() for method in ops}
    assert routes <= listed
    assert {"/health", "/api/v1/runs", "/api/v1/runs/{run_id}", "/api/v1/node/tasks/next", "/api/v1/node/results"} <= set(schema["paths"])


# --- tokens (the role x endpoint matrix is in test_access_matrix.py) -----------------------------

@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer "}, {"authorization": "Basic dDp0"}])
def test_account_endpoints_without_a_token_say_how_to_send_one(app, client: TestClient, headers: dict) -> None:
    for method, path in admin_routes(app):
        if path in ("/api/v1/keys", "/api/v1/charter", "/api/v1/audit/heads", "/api/v1/privacy",
                    "/api/v1/hospitals") or path.startswith("/api/v1/objections"):
            continue
        response = client.request(method, re.sub(r"\{[^}]+\}", "x", path), headers=headers, json={})
        assert_error(response, 401, r"This endpoint needs an account token: send 'Authorization: Bearer <token>'")


@pytest.mark.parametrize("token", ["wrong", "t2", "T"])
def test_an_unknown_token_is_refused(client: TestClient, token: str) -> None:
    response = client.get("/api/v1/organisations", headers={"authorization": f"Bearer {token}"})
    assert_error(response, 401, r"Unknown or revoked token")


def test_the_bearer_scheme_is_case_insensitive(client: TestClient) -> None:
    assert client.get("/api/v1/organisations", headers={"authorization": f"bearer {TOKEN}"}).status_code == 200


def test_error_shape_is_exactly_ok_error_errors_status(client: TestClient) -> None:
    response = client.get("/api/v1/organisations")
    assert response.json() == {
        "ok": False,
        "error": response.json()["error"],
        "errors": [response.json()["error"]],
        "status": 401,
    }
    assert list(response.json()) == ["ok", "error", "errors", "status"]


def test_validation_errors_and_unknown_routes_use_the_same_shape(client: TestClient) -> None:
    body = assert_error(client.post("/api/v1/organisations", json={"name": "X", "extra": 1}, headers=ADMIN),
                        422, r"Invalid request: body\.extra: Extra inputs are not permitted")
    assert body["errors"] == ["body.extra: Extra inputs are not permitted"]
    assert_error(client.get("/api/v1/nowhere", headers=ADMIN), 404, r"Not Found")


# --- registry ------------------------------------------------------------------------------------

def test_organisation_create_list_and_duplicate(client: TestClient) -> None:
    # Execute
    created = client.post("/api/v1/organisations", json={"name": "CHU Lille"}, headers=ADMIN)
    duplicate = client.post("/api/v1/organisations", json={"name": "CHU Lille", "kind": "research"}, headers=ADMIN)

    # Assert
    assert created.status_code == 201 and created.json()["kind"] == "hospital"
    assert_error(duplicate, 409, r"Organisation 'CHU Lille' already exists\.")
    assert [o["name"] for o in client.get("/api/v1/organisations", headers=ADMIN).json()] == [
        "Guichet IA régional", "CHU Lille"]  # the desk's own organisation comes first


def test_register_node_then_list_it(client: TestClient, node_key) -> None:
    create_org(client)

    response = register_node(client, node_key)

    assert response.status_code == 201
    assert response.json() == {"node_id": "chu-lille", "organisation": "CHU Lille"}
    nodes = client.get("/api/v1/nodes", headers=ADMIN).json()
    assert nodes == [{"node_id": "chu-lille", "hospital_name": "", "territory": "", "connected": False,
                      "audit_seq": None, "audit_head": None}]


def test_register_node_with_an_unknown_organisation(client: TestClient, node_key) -> None:
    assert_error(register_node(client, node_key, org="Nobody"), 404,
                 r"Organisation 'Nobody' is not registered\. Create it with 'fedsante account org'\.")


@pytest.mark.parametrize("public_key", ["!" * 44, "A" * 44])
def test_register_node_with_a_bad_public_key(client: TestClient, public_key: str) -> None:
    create_org(client)
    response = client.post("/api/v1/nodes", headers=ADMIN,
                           json={"node_id": "chu-lille", "organisation": "CHU Lille", "public_key": public_key})
    assert_error(response, 400, r"is not base64 of 32 raw Ed25519 bytes")


def test_register_node_twice_is_a_conflict(client: TestClient, node_key) -> None:
    create_org(client)
    register_node(client, node_key)
    assert_error(register_node(client, Ed25519PrivateKey.generate()), 409, r"Node 'chu-lille' is already registered\.")


def test_algorithms_lists_logreg_with_its_code_hash(client: TestClient) -> None:
    algorithms = client.get("/api/v1/algorithms", headers=ADMIN).json()
    assert [a["id"] for a in algorithms] == ["logreg"]
    assert re.fullmatch(r"[0-9a-f]{64}", algorithms[0]["code_hash"])


# --- runs ----------------------------------------------------------------------------------------

@pytest.fixture
def registered(client: TestClient, node_key) -> dict:
    """One registered node 'chu-lille' and an approved project over it; returns the holder's headers."""
    create_org(client)
    assert register_node(client, node_key).status_code == 201
    end = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
    tokens = {}
    for name, org, role in (("holder", "CHU Lille", "holder"), ("r1", "Desk A", "reviewer"), ("r2", "Desk B", "reviewer")):
        if org != "CHU Lille":
            create_org(client, org)
        tokens[name] = client.post("/api/v1/accounts", headers=ADMIN, json={
            "name": name, "organisation": org, "role": role, "end_date": end}).json()["token"]
    spec = example_spec(["chu-lille"]).model_dump(mode="json")
    headers = {name: {"authorization": f"Bearer {token}"} for name, token in tokens.items()}
    reference = client.post("/api/v1/projects", json=spec, headers=headers["holder"]).json()["reference"]
    assert client.post(f"/api/v1/projects/{reference}/submit", json={}, headers=headers["holder"]).status_code == 200
    for reviewer in ("r1", "r2"):
        client.post(f"/api/v1/projects/{reference}/reviews", json={"decision": "approve"}, headers=headers[reviewer])
    return {"reference": reference, "headers": headers["holder"]}


def start_run(client: TestClient, registered: dict, **body):
    return client.post("/api/v1/runs", headers=registered["headers"], json={"project": registered["reference"], **body})


def test_run_with_an_unknown_param_names_it(client: TestClient, registered: dict) -> None:
    response = start_run(client, registered, params={"bogus": 1})
    body = assert_error(response, 400, r"Invalid run parameters: params\.bogus: Extra inputs are not permitted")
    assert body["errors"] == ["params.bogus: Extra inputs are not permitted"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"rounds": 0}, r"params\.rounds: Input should be greater than or equal to 1"),
        ({"lr": 0}, r"params\.lr: Input should be greater than 0"),
        ({"scaling": "none"}, r"params\.scaling: Input should be 'bounds', 'global' or 'local'"),
    ],
)
def test_run_with_an_out_of_range_param(client: TestClient, registered: dict, params: dict, message: str) -> None:
    assert_error(start_run(client, registered, params=params), 400, message)


def test_a_run_that_would_exceed_its_privacy_budget_does_not_start_and_says_by_how_much(
        client: TestClient, registered: dict) -> None:
    response = start_run(client, registered, params={"noise_multiplier": 0.5})
    assert_error(response, 403, r"Run refused: This run would spend epsilon=\d[\d.]* at delta=1e-05 \(150 DP-SGD steps "
                                r"at q=0\.1, sigma=0\.5; .*more than the approved epsilon=1\. Raise the noise")


@pytest.mark.parametrize(("params", "status", "message"), [
    ({"privacy": "none"}, 403, r"parameter privacy='none' is outside approval RAIH-\d{4}-0001-v1 \(privacy = 'record'\)"),
    ({"scaling": "local"}, 400, r"scaling 'local' is not differentially private"),
])
def test_a_run_without_differential_privacy_is_refused(client: TestClient, registered: dict, params: dict,
                                                       status: int, message: str) -> None:
    assert_error(start_run(client, registered, params=params), status, message)


def test_run_with_a_node_outside_the_approval(client: TestClient, registered: dict) -> None:
    response = start_run(client, registered, nodes=["chu-lille", "ghost"])
    assert_error(response, 403, r"Node\(s\) ghost are not in approval RAIH-\d{4}-0001-v1 \(approved: chu-lille\)")


def test_run_with_the_same_node_twice(client: TestClient, registered: dict) -> None:
    assert_error(start_run(client, registered, nodes=["chu-lille"] * 2), 400, r"A run needs distinct nodes")


def test_run_with_no_nodes(client: TestClient, registered: dict) -> None:
    assert_error(start_run(client, registered, nodes=[]), 400, r"A run needs distinct nodes; got \[\]")


def test_a_run_on_one_hospital_is_refused(client: TestClient, registered: dict) -> None:
    assert_error(start_run(client, registered), 400, r"A run needs at least 2 hospitals; got \['chu-lille'\]\. With one, "
                 r"secure aggregation could not hide its model updates")


def test_run_of_an_unknown_project(client: TestClient, registered: dict) -> None:
    response = client.post("/api/v1/runs", headers=registered["headers"], json={"project": "RAIH-1999-0001"})
    assert_error(response, 404, r"Project 'RAIH-1999-0001' does not exist")


def test_a_run_cannot_choose_its_algorithm(client: TestClient, registered: dict) -> None:
    assert_error(start_run(client, registered, algorithm="svm"), 422, r"body\.algorithm: Extra inputs are not permitted")


def test_failed_run_requests_create_no_run(client: TestClient, registered: dict) -> None:
    start_run(client, registered, nodes=["ghost"])
    assert client.get("/api/v1/runs", headers=ADMIN).json() == []


def test_get_an_unknown_run(client: TestClient) -> None:
    assert_error(client.get("/api/v1/runs/nope", headers=ADMIN), 404, r"Run 'nope' does not exist\.")


def test_tasks_of_an_unknown_run_are_empty(client: TestClient) -> None:
    assert client.get("/api/v1/runs/nope/tasks", headers=ADMIN).json() == []


# --- node endpoints ------------------------------------------------------------------------------

def test_next_task_from_an_unregistered_node(client: TestClient, node_key) -> None:
    headers = sign_request(node_key, "stranger", "GET", NEXT_TASK, b"")
    assert_error(client.get(NEXT_TASK, headers=headers), 401,
                 r"Node 'stranger' is not registered at this desk\. Register its public key first\.")


def test_next_task_without_any_node_header(client: TestClient) -> None:
    assert_error(client.get(NEXT_TASK), 401, r"Node '' is not registered at this desk")


def test_next_task_with_a_bad_signature(client: TestClient, registered: int) -> None:
    headers = sign_request(Ed25519PrivateKey.generate(), "chu-lille", "GET", NEXT_TASK, b"")
    assert_error(client.get(NEXT_TASK, headers=headers), 401,
                 r"Signature of node 'chu-lille' does not verify with its registered key")


def test_next_task_signed_for_another_wait(client: TestClient, registered: int, node_key) -> None:
    headers = sign_request(node_key, "chu-lille", "GET", "/api/v1/node/tasks/next?wait=5", b"")
    assert_error(client.get(NEXT_TASK, headers=headers), 401, r"does not verify")


def test_next_task_with_a_garbage_timestamp(client: TestClient, registered: int, node_key) -> None:
    headers = sign_request(node_key, "chu-lille", "GET", NEXT_TASK, b"") | {"x-fedsante-time": "soon"}
    assert_error(client.get(NEXT_TASK, headers=headers), 401, r"Header 'x-fedsante-time' must be a Unix time; got 'soon'")


def test_next_task_correctly_signed_with_no_task_is_204(client: TestClient, registered: int, node_key) -> None:
    # Execute
    response = client.get(NEXT_TASK, headers=sign_request(node_key, "chu-lille", "GET", NEXT_TASK, b""))

    # Assert
    assert response.status_code == 204 and response.content == b""
    assert client.get("/api/v1/nodes", headers=ADMIN).json()[0]["connected"] is True


def test_result_for_an_unknown_task_is_a_conflict(client: TestClient, registered: int, node_key) -> None:
    # Prepare: a correctly signed result of a task the desk never sent
    from fedsante.common.keys import canonical_json, sign
    from fedsante.federation.messages import TaskResult

    result = TaskResult(task_id="ghost", run_id="r1", node_id="chu-lille", ok=True)
    result = result.model_copy(update={"signature": sign(node_key, canonical_json(result.signed_content()))})
    body = result.model_dump_json().encode()
    headers = sign_request(node_key, "chu-lille", "POST", "/api/v1/node/results", body) | {"content-type": "application/json"}

    # Execute / Assert
    assert_error(client.post("/api/v1/node/results", content=body, headers=headers), 409,
                 r"Task 'ghost' is not awaiting a result")


def test_result_that_names_another_node_is_forbidden(client: TestClient, registered: int, node_key) -> None:
    body = json.dumps({"task_id": "t", "run_id": "r", "node_id": "other", "ok": True}).encode()
    headers = sign_request(node_key, "chu-lille", "POST", "/api/v1/node/results", body)
    assert_error(client.post("/api/v1/node/results", content=body, headers=headers), 403,
                 r"Result names node 'other' but the request is signed by 'chu-lille'\.")


def test_result_without_a_valid_result_signature_is_refused(client: TestClient, registered: int, node_key) -> None:
    body = json.dumps({"task_id": "t", "run_id": "r", "node_id": "chu-lille", "ok": True, "signature": ""}).encode()
    headers = sign_request(node_key, "chu-lille", "POST", "/api/v1/node/results", body)
    assert_error(client.post("/api/v1/node/results", content=body, headers=headers), 401,
                 r"Result of task 't' does not carry a valid signature of node 'chu-lille'\.")


def test_result_that_is_not_a_task_result_is_refused_with_the_field(client: TestClient, registered: int,
                                                                    node_key) -> None:
    body = b'{"hello": "desk"}'
    headers = sign_request(node_key, "chu-lille", "POST", "/api/v1/node/results", body)
    assert_error(client.post("/api/v1/node/results", content=body, headers=headers), 422,
                 r"Result refused: sent an invalid result \(task_id: Field required\)")


@pytest.mark.parametrize("change, field", [
    ({"metrics": {"auc": "NaN"}}, r"metrics\.auc"), ({"audit_seq": 10**30}, "audit_seq"),
    ({"arrays": {"stats": {"shape": [1], "data": "AAAAAAAA+H8="}}}, "arrays.stats"),  # a NaN
])
def test_a_result_with_nan_or_huge_numbers_is_refused_before_it_reaches_a_run(client: TestClient, registered: int,
                                                                              node_key, change, field) -> None:
    body = json.dumps({"task_id": "t", "run_id": "r", "node_id": "chu-lille", "ok": True, **change}).encode()
    headers = sign_request(node_key, "chu-lille", "POST", "/api/v1/node/results", body)
    assert_error(client.post("/api/v1/node/results", content=body, headers=headers), 422,
                 rf"Result refused: sent an invalid result \({field}")


def test_a_replayed_long_poll_is_refused_so_nobody_else_takes_the_nodes_task(client: TestClient, registered: int,
                                                                             node_key) -> None:
    # Prepare: one captured long-poll of the node
    path = "/api/v1/node/tasks/next?wait=0"
    headers = sign_request(node_key, "chu-lille", "GET", path, b"")

    # Execute / Assert: the node's own request passes, the same request sent again does not
    assert client.get(path, headers=headers).status_code == 204
    assert_error(client.get(path, headers=headers), 401, r"nonce of node 'chu-lille' was already used: a replayed")
