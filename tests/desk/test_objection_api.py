"""The desk's objection API: sealed on arrival, receipts, withdrawal, the node's signed pulls, bad input."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from nacl.public import PrivateKey

from fedsante.common.keys import public_key_b64
from fedsante.desk.db import Objection
from fedsante.desk.settings import DeskSettings
from fedsante.federation.auth import sign_request
from fedsante.portal.app import create_app
from fedsante.privacy.objections import open_objection, public_b64, unseal

ADMIN = {"authorization": "Bearer t"}


@pytest.fixture
def desk(tmp_path):
    app = create_app(DeskSettings(data_dir=tmp_path, database_url="sqlite://"), admin_token="t")
    with TestClient(app) as client:
        assert client.post("/api/v1/organisations", json={"name": "CHU"}, headers=ADMIN).status_code == 201
        keys = {}
        for node in ("chu-lille", "chu-metz"):
            keys[node] = Ed25519PrivateKey.generate()
            assert client.post("/api/v1/nodes", headers=ADMIN, json={
                "node_id": node, "organisation": "CHU", "public_key": public_key_b64(keys[node])}).status_code == 201
        yield app, client, keys


def signed(client: TestClient, key, node: str, method: str, path: str, body: bytes = b""):
    headers = sign_request(key, node, method, path, body) | ({"content-type": "application/json"} if body else {})
    return client.request(method, path, content=body, headers=headers)


def publish(client, keys, node: str = "chu-lille") -> PrivateKey:
    box = PrivateKey.generate()
    body = ('{"objection_key": "%s", "datasets": ["eds-cardio"]}' % public_b64(box)).encode()
    assert signed(client, keys[node], node, "PUT", "/api/v1/node/profile", body).status_code == 200
    return box


def test_an_objection_is_stored_sealed_and_only_the_hospital_can_open_it(desk) -> None:
    app, client, keys = desk
    box = publish(client, keys)
    response = client.post("/api/v1/objections", json={"hospital": "chu-lille", "identifier": "IPP-0042"})
    assert response.status_code == 201 and response.json()["status"] == "received"
    receipt = response.json()["receipt"]
    with app.state.desk.sessions() as session:
        (row,) = session.query(Objection).all()
        assert "IPP-0042" not in row.ciphertext and receipt not in row.id
    pending = signed(client, keys["chu-lille"], "chu-lille", "GET", "/api/v1/node/objections").json()["pending"]
    assert [p["action"] for p in pending] == ["object"] and unseal(box, pending[0]["ciphertext"]) == "IPP-0042"
    assert signed(client, keys["chu-metz"], "chu-metz", "GET", "/api/v1/node/objections").json()["pending"] == []
    # another node cannot acknowledge it; the right one can, and the ciphertext is then dropped
    body = ('{"applied": [{"id": "%s", "action": "object"}]}' % pending[0]["id"]).encode()
    assert signed(client, keys["chu-metz"], "chu-metz", "POST", "/api/v1/node/objections/applied", body).json() == {
        "applied": 0}
    assert signed(client, keys["chu-lille"], "chu-lille", "POST", "/api/v1/node/objections/applied",
                  body).json() == {"applied": 1}
    status = client.get(f"/api/v1/objections/{receipt}").json()
    assert status["status"] == "applied" and status["applied_at"]
    with app.state.desk.sessions() as session:
        assert session.query(Objection).one().ciphertext is None


def test_a_date_of_birth_is_sealed_with_the_identifier_and_the_form_checks_it(desk) -> None:
    _, client, keys = desk
    box = publish(client, keys)
    body = {"hospital": "chu-lille", "identifier": "IPP-0042", "birth_date": "07/03/1951"}
    assert client.post("/api/v1/objections", json=body).status_code == 201
    blank = client.post("/opposition", data={**body, "birth_date": ""}, follow_redirects=False)
    assert blank.status_code == 303  # the date is optional
    refused = client.post("/en/objection", data={**body, "birth_date": "March 1951"})
    assert refused.status_code == 422 and "Give your date of birth as YYYY-MM-DD" in refused.text
    pending = signed(client, keys["chu-lille"], "chu-lille", "GET", "/api/v1/node/objections").json()["pending"]
    assert [open_objection(box, p["ciphertext"]) for p in pending] == [("IPP-0042", "1951-03-07"), ("IPP-0042", None)]


def test_a_withdrawal_before_the_node_saw_it_is_immediate_after_it_goes_through_the_node(desk) -> None:
    _, client, keys = desk
    publish(client, keys)
    first = client.post("/api/v1/objections", json={"hospital": "chu-lille", "identifier": "a"}).json()["receipt"]
    assert client.post(f"/api/v1/objections/{first}/withdraw").json()["status"] == "withdrawn"
    second = client.post("/api/v1/objections", json={"hospital": "chu-lille", "identifier": "b"}).json()["receipt"]
    (item,) = signed(client, keys["chu-lille"], "chu-lille", "GET", "/api/v1/node/objections").json()["pending"]
    body = ('{"applied": [{"id": "%s", "action": "object"}]}' % item["id"]).encode()
    signed(client, keys["chu-lille"], "chu-lille", "POST", "/api/v1/node/objections/applied", body)
    assert client.post(f"/api/v1/objections/{second}/withdraw").json()["status"] == "withdrawal_requested"
    (item,) = signed(client, keys["chu-lille"], "chu-lille", "GET", "/api/v1/node/objections").json()["pending"]
    assert item == {"id": item["id"], "action": "withdraw", "ciphertext": None}


def test_hospitals_list_says_who_accepts_objections_and_hides_small_counts(desk) -> None:
    app, client, keys = desk
    publish(client, keys)
    hospitals = {h["id"]: h for h in client.get("/api/v1/hospitals").json()}
    assert hospitals["chu-lille"]["accepts_objections"] and not hospitals["chu-metz"]["accepts_objections"]
    assert hospitals["chu-lille"]["objections_in_force"] is None  # 0 < k_min: not published
    assert hospitals["chu-lille"]["datasets"] == ["eds-cardio"] and hospitals["chu-metz"]["datasets"] == []


@pytest.mark.parametrize("body, status, pattern", [
    ({"hospital": "chu-nowhere", "identifier": "a"}, 404, "not part of this network"),
    ({"hospital": "chu-metz", "identifier": "a"}, 409, "cannot receive objections yet"),
    ({"hospital": "chu-lille", "identifier": ""}, 422, "identifier"),
    ({"hospital": "chu-lille", "identifier": "x" * 101}, 422, "identifier"),
    ({"hospital": "chu-lille", "identifier": "a\tb"}, 422, "printable"),
    ({"hospital": "chu-lille"}, 422, "identifier"),
    ({"hospital": "chu-lille", "identifier": "IPP-1", "birth_date": "31/02/1951"}, 422, "date of birth"),
    ({"hospital": "chu-lille", "identifier": "IPP-1", "birth_date": "1951-03-07T00"}, 422, "birth_date"),
])
def test_bad_objections_are_refused_with_a_reason(desk, body, status, pattern) -> None:
    _, client, keys = desk
    publish(client, keys)
    response = client.post("/api/v1/objections", json=body)
    assert response.status_code == status and pattern in response.json()["error"], response.text


def test_unknown_receipts_and_unsigned_or_bad_node_requests_are_refused(desk) -> None:
    _, client, keys = desk
    assert client.get("/api/v1/objections/AAAA-BBBB-CCCC-DDDD").status_code == 404
    assert client.post("/api/v1/objections/AAAA-BBBB-CCCC-DDDD/withdraw").status_code == 404
    assert client.get("/api/v1/node/objections").status_code == 401
    forged = signed(client, Ed25519PrivateKey.generate(), "chu-lille", "GET", "/api/v1/node/objections")
    assert forged.status_code == 401
    bad_key = signed(client, keys["chu-lille"], "chu-lille", "PUT", "/api/v1/node/profile",
                     b'{"objection_key": "' + b"A" * 48 + b'"}')  # 36 bytes
    assert bad_key.status_code == 422 and "32 bytes" in bad_key.json()["error"]


def test_one_address_may_submit_at_most_ten_objections_a_minute(desk) -> None:
    _, client, keys = desk
    publish(client, keys)
    codes = [client.post("/api/v1/objections", json={"hospital": "chu-lille", "identifier": f"p{i}"}).status_code
             for i in range(11)]
    assert codes == [201] * 10 + [429]
    refused = client.post("/api/v1/objections", json={"hospital": "chu-lille", "identifier": "p11"})
    assert "at most 10 per minute" in refused.json()["error"]
    form = client.post("/opposition", data={"hospital": "chu-lille", "identifier": "p12"})
    assert form.status_code == 429 and "attendez une minute" in form.text
