"""Abuse limits: request bodies bounded while they stream, rate limits shared by every desk worker."""

from __future__ import annotations

import asyncio
import json
import tracemalloc

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from nacl.public import PrivateKey

from fedsante.common.keys import canonical_json, public_key_b64, sign
from fedsante.desk import limits
from fedsante.desk.settings import DeskSettings
from fedsante.federation.auth import sign_request
from fedsante.federation.messages import TaskResult
from fedsante.portal.app import create_app
from fedsante.privacy.objections import public_b64

ADMIN = {"authorization": "Bearer t"}
MB = 1024 * 1024


def make_desk(tmp_path, **settings):
    url = f"sqlite:///{tmp_path / 'desk.db'}"  # a file: several apps on it are several workers
    return create_app(DeskSettings(data_dir=tmp_path, database_url=url, **settings), admin_token="t")


def call(app, path: str, chunks, headers: list[tuple[bytes, bytes]] = ()):
    """Send one POST through the ASGI app, its body streamed from ``chunks``; return (status, body, bytes read)."""
    pulled = 0
    sent: list[dict] = []
    iterator = iter(chunks)

    async def receive():
        nonlocal pulled
        chunk = next(iterator, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json"), *headers], "client": ("10.0.0.1", 5000),
             "server": ("testserver", 80)}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body, pulled


def test_a_300_mb_streamed_body_is_refused_at_the_limit_and_memory_stays_flat(tmp_path) -> None:
    app = make_desk(tmp_path)
    chunk = b"x" * 65536
    tracemalloc.start()
    try:
        status, body, pulled = call(app, "/api/v1/objections", (chunk for _ in range(300 * MB // len(chunk))))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 413
    error = json.loads(body)
    assert (error["ok"], error["status"]) == (False, 413) and "at most 2,097,152 bytes" in error["error"]
    assert pulled <= 2 * MB + len(chunk)  # reading stopped as soon as the limit was passed
    assert peak < 12 * MB, f"peak {peak / MB:.1f} MB while refusing a 300 MB body"


def test_a_declared_content_length_above_the_limit_is_refused_before_reading(tmp_path) -> None:
    app = make_desk(tmp_path, max_body_bytes=4096)
    status, body, pulled = call(app, "/api/v1/objections", [b"{}"], [(b"content-length", str(50 * MB).encode())])
    assert (status, pulled) == (413, 0) and b"at most 4,096 bytes" in body
    assert call(app, "/api/v1/objections", [b"{}"], [(b"content-length", b"nonsense")])[0] == 413
    with TestClient(app) as client:  # under the limit, the usual answers
        assert client.post("/api/v1/objections", json={"hospital": "nowhere", "identifier": "x"}).status_code == 404
        refused = client.post("/api/v1/objections", content=b"{" + b" " * 5000 + b"}",
                              headers={"content-type": "application/json"})
        assert refused.status_code == 413 and refused.json()["errors"] == [refused.json()["error"]]


def test_node_routes_take_larger_bodies_up_to_their_own_limit(tmp_path) -> None:
    app = make_desk(tmp_path, max_body_bytes=4096, max_node_body_bytes=64 * 1024)
    status, _, _ = call(app, "/api/v1/node/results", [b"x" * 10_000])
    assert status == 401  # past the JSON limit, under the node limit: the request reaches authentication
    assert call(app, "/api/v1/node/results", [b"x" * 100_000], [(b"content-length", b"100000")])[0] == 413


def test_shared_counts_at_the_boundary_and_in_the_next_window(tmp_path) -> None:
    app = make_desk(tmp_path)
    desk = app.state.desk
    assert [limits.allow(desk, "k", 3, now=120.0 + i) for i in range(4)] == [True, True, True, False]
    assert limits.allow(desk, "k", 3, now=179.999) is False  # same window
    assert limits.allow(desk, "k", 3, now=180.0) is True  # a new window starts at the boundary
    assert limits.allow(desk, "other", 3, now=180.0) is True  # keys are counted apart
    assert limits.allow(desk, "k", 1, now=180.0) is False


def publish(client, key, node: str) -> None:
    body = ('{"objection_key": "%s", "datasets": ["eds"]}' % public_b64(PrivateKey.generate())).encode()
    headers = sign_request(key, node, "PUT", "/api/v1/node/profile", body) | {"content-type": "application/json"}
    assert client.put("/api/v1/node/profile", content=body, headers=headers).status_code == 200


@pytest.fixture
def two_workers(tmp_path):
    """Two desk applications on one database, as two worker processes would be, with a node 'chu-lille'."""
    settings = {"objections_per_minute": 3, "withdrawals_per_minute": 2, "receipt_lookups_per_minute": 4,
                "node_refusals_per_minute": 2}
    first, second = make_desk(tmp_path, **settings), make_desk(tmp_path, **settings)
    with TestClient(first) as a, TestClient(second) as b:
        assert a.post("/api/v1/organisations", json={"name": "CHU"}, headers=ADMIN).status_code == 201
        key = Ed25519PrivateKey.generate()
        assert a.post("/api/v1/nodes", headers=ADMIN, json={
            "node_id": "chu-lille", "organisation": "CHU", "public_key": public_key_b64(key)}).status_code == 201
        publish(a, key, "chu-lille")
        yield a, b, key


def test_objections_are_limited_across_workers(two_workers) -> None:
    a, b, _ = two_workers
    codes = [(a if i % 2 else b).post("/api/v1/objections", json={"hospital": "chu-lille", "identifier": f"p{i}"})
             .status_code for i in range(4)]
    assert codes == [201, 201, 201, 429]
    refused = a.post("/api/v1/objections", json={"hospital": "chu-lille", "identifier": "p9"})
    assert refused.status_code == 429 and "at most 3 per minute" in refused.json()["error"]


def test_withdrawals_and_receipt_lookups_are_limited_across_workers(two_workers) -> None:
    a, b, _ = two_workers
    receipts = [a.post("/api/v1/objections", json={"hospital": "chu-lille", "identifier": f"p{i}"}).json()["receipt"]
                for i in range(3)]
    lookups = [(a if i % 2 else b).get(f"/api/v1/objections/{receipts[0]}").status_code for i in range(5)]
    assert lookups == [200] * 4 + [429]
    withdrawals = [(a if i % 2 else b).post(f"/api/v1/objections/{r}/withdraw").status_code for i, r in
                   enumerate(receipts)]
    assert withdrawals == [200, 200, 429]
    assert "at most 2 per minute" in b.post(f"/api/v1/objections/{receipts[2]}/withdraw").json()["error"]


def refusal(client, key, number: int):
    result = TaskResult(task_id=f"fake-{number}", run_id="run-x", node_id="chu-lille", ok=False, error="refused")
    result = result.model_copy(update={"signature": sign(key, canonical_json(result.signed_content()))})
    body = result.model_dump_json().encode()
    headers = sign_request(key, "chu-lille", "POST", "/api/v1/node/results", body) | {
        "content-type": "application/json"}
    return client.post("/api/v1/node/results", content=body, headers=headers)


def test_node_refusals_are_limited_and_no_more_are_audited(two_workers) -> None:
    a, b, key = two_workers
    desk = a.app.state.desk

    def refusals() -> int:
        return sum(e.action == "task.refused" for e in desk.audit_log().entries())

    codes = [refusal(a if i % 2 else b, key, i).status_code for i in range(5)]
    # a refusal for a task that awaits nothing is refused (409) before anything is audited: fake refusals cannot
    # grow the desk's chain at all (refusals of real pending tasks are bounded per node and minute, limits.check)
    assert codes == [409, 409, 409, 409, 409]
    assert refusals() == 0
