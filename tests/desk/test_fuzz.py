"""Fuzz the desk API from its OpenAPI schema (schemathesis), in-process, under every identity.

Each generated request is sent once per identity (no token, a bad token, one account of each role, and for
the node protocol a registered node signing the request):
no answer may be a 5xx, and every status must be one the schema declares for the operation (the
desk's error statuses are declared once per router, fedsante.desk.schemas.ERROR_RESPONSES). The
run is derandomized (the same requests on every run) and bounded: about 10,000 requests in all.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import requests
import schemathesis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from fedsante.common.keys import public_key_b64
from fedsante.desk.access import ROLES
from fedsante.desk.schemas import ERROR_RESPONSES
from fedsante.desk.settings import DeskSettings
from fedsante.federation.auth import sign_request
from fedsante.portal.app import create_app

ADMIN_TOKEN = "fst_fuzz-admin-token-for-tests"
NODE_ID = "fuzz-node"
NODE_KEY = Ed25519PrivateKey.generate()
MIN_REQUESTS = 10_000
EXAMPLES_PER_OPERATION = 35  # x 2 modes x operations x identities >= MIN_REQUESTS (asserted below)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def is_desk_api(path: str) -> bool:
    """The desk's JSON API (the portal's HTML pages are fuzzed by their own tests)."""
    return path == "/health" or path.startswith("/api/")


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("fuzz-desk")
    settings = DeskSettings(data_dir=data_dir, database_url="sqlite://", long_poll_max_seconds=0.01)
    app = create_app(settings, admin_token=ADMIN_TOKEN)
    with TestClient(app) as client:
        admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        assert client.post("/api/v1/organisations", json={"name": "Org"}, headers=admin).status_code == 201
        end = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
        identities: dict[str, dict[str, str]] = {"no token": {}, "bad token": {"authorization": "Bearer fst_not-a-token"}}
        for role in ROLES:
            if role == "admin":
                token = ADMIN_TOKEN
            else:
                response = client.post("/api/v1/accounts", headers=admin, json={
                    "name": f"fuzz-{role}", "organisation": "Org", "role": role, "end_date": end})
                token = response.json()["token"]
            identities[role] = {"authorization": f"Bearer {token}"}
        assert client.post("/api/v1/nodes", headers=admin, json={
            "node_id": NODE_ID, "organisation": "Org", "public_key": public_key_b64(NODE_KEY)}).status_code == 201
        identities["node"] = {}  # signed per request (node_headers)
        yield app, identities


def node_headers(case) -> dict[str, str]:
    """Headers signing ``case`` as the registered node (path with its query, body bytes as sent)."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    prepared = requests.Request(**{k: v for k, v in kwargs.items() if k in (
        "method", "url", "headers", "params", "json", "data", "files", "cookies")}).prepare()
    body = prepared.body or b""
    return sign_request(NODE_KEY, NODE_ID, case.method, prepared.path_url,
                        body.encode() if isinstance(body, str) else body)


def test_every_desk_operation_declares_the_error_statuses_with_the_error_body(desk) -> None:
    app, _ = desk
    spec = app.openapi()
    assert set(spec["components"]["schemas"]["ErrorBody"]["required"]) == {"error", "errors", "status"}
    for path, methods in spec["paths"].items():
        if is_desk_api(path):
            for method, operation in methods.items():
                for status in ERROR_RESPONSES:
                    declared = operation["responses"].get(str(status))
                    assert declared, (method, path, status)
                    assert declared["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/ErrorBody"}, (method, path, status)


def test_the_desk_api_answers_every_generated_request_without_a_server_error(desk) -> None:
    app, identities = desk
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if is_desk_api(op.path)]
    assert len(operations) >= 40, [op.label for op in operations]
    statuses: Counter[int] = Counter()
    node_statuses: Counter[int] = Counter()  # the signed node's requests: many get past its signature
    failures: list[str] = []

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def fuzz(case) -> None:
                for who, headers in identities.items():
                    if who == "node":
                        if not operation.path.startswith("/api/v1/node/"):
                            continue
                        headers = node_headers(case)
                    response = case.call(headers=dict(headers))  # call() adds its own headers to the dict
                    statuses[response.status_code] += 1
                    if who == "node":
                        node_statuses[response.status_code] += 1
                    try:
                        case.validate_response(response, checks=CHECKS,
                                               headers=dict(headers))
                    except AssertionError as exc:
                        raise AssertionError(f"{operation.label} ({mode.value}) as {who}: {exc}") from None

            try:
                fuzz()
            except Unsatisfiable:  # no invalid request exists for an operation without parameters
                assert mode is GenerationMode.NEGATIVE, operation.label
            except AssertionError as exc:
                failures.append(str(exc))

    assert not failures, "\n\n".join(failures)
    total = sum(statuses.values())
    assert total >= MIN_REQUESTS, (total, statuses)
    assert not [s for s in statuses if s >= 500], statuses
    assert sum(n for status, n in node_statuses.items() if status < 300) >= 25, node_statuses
    print(f"fuzz: node {dict(sorted(node_statuses.items()))}")
    print(f"fuzz: {total} requests, statuses {dict(sorted(statuses.items()))}")
