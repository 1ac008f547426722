"""The desk cannot lock itself out (last admin, local recovery), and one node key belongs to one node."""

from __future__ import annotations

import base64
import stat
from datetime import date, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fedsante.cli import app as cli
from fedsante.common.keys import public_key_b64
from fedsante.desk.app import create_app, recover_admin
from fedsante.desk.settings import DeskSettings

ADMIN = {"authorization": "Bearer t"}
END = (date.today() + timedelta(days=90)).isoformat()


def desk(tmp_path) -> TestClient:
    return TestClient(create_app(DeskSettings(data_dir=tmp_path), admin_token="t"))


def test_the_last_active_admin_cannot_be_disabled(tmp_path) -> None:
    with desk(tmp_path) as client:
        refused = client.post("/api/v1/accounts/admin/disable", headers=ADMIN)
        assert refused.status_code == 409 and "last active admin" in refused.json()["error"]
        assert client.get("/api/v1/accounts/me", headers=ADMIN).status_code == 200
        assert client.post("/api/v1/organisations", json={"name": "ARS"}, headers=ADMIN).status_code == 201
        second = client.post("/api/v1/accounts", headers=ADMIN, json={
            "name": "admin2", "organisation": "ARS", "role": "admin", "end_date": END}).json()["token"]
        assert client.post("/api/v1/accounts/admin/disable", headers=ADMIN).status_code == 200
        other = {"authorization": f"Bearer {second}"}
        assert client.post("/api/v1/accounts/admin2/disable", headers=other).status_code == 409
        assert client.get("/api/v1/accounts/me", headers=other).json()["name"] == "admin2"


def test_recover_re_enables_a_locked_out_admin_with_a_new_token_recorded_in_the_chain(tmp_path) -> None:
    with desk(tmp_path) as client:  # the bootstrap admin disabled by other means (an older desk, the database)
        from fedsante.desk.db import Account, utcnow

        with client.app.state.desk.sessions() as session:
            session.query(Account).update({Account.disabled_at: utcnow()})
            session.commit()
        assert client.get("/api/v1/accounts/me", headers=ADMIN).status_code == 401
    result = CliRunner().invoke(cli, ["desk", "admin", "recover", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "re-enabled" in result.output
    token_file = tmp_path / "admin-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    with desk(tmp_path) as client:
        assert client.get("/api/v1/accounts/me", headers={"authorization": f"Bearer {token}"}).json()["role"] == "admin"
        assert client.get("/api/v1/accounts/me", headers=ADMIN).status_code == 401  # the old token is gone
        last = client.app.state.desk.audit_log().entries()[-1]
        assert (last.actor, last.action, last.subject) == ("system", "account.recovered", "admin")
        assert last.details["recovery"] == "re-enabled" and last.details["previous"]["disabled"] is True
        assert client.app.state.desk.audit_log().verify().ok  # appended to the chain, which still verifies


def test_recover_creates_a_missing_admin_and_refuses_a_folder_without_a_desk(tmp_path) -> None:
    with desk(tmp_path):
        pass
    outcome, path = recover_admin(DeskSettings(data_dir=tmp_path), "rescue")
    assert outcome == "created" and path == tmp_path / "admin-token"
    with desk(tmp_path) as client:
        me = client.get("/api/v1/accounts/me", headers={"authorization": f"Bearer {path.read_text().strip()}"})
        assert me.json()["name"] == "rescue" and me.json()["role"] == "admin"
    result = CliRunner().invoke(cli, ["desk", "admin", "recover", "--data-dir", str(tmp_path / "nothing")])
    assert result.exit_code == 1 and "holds no desk database" in result.output


def test_a_public_key_registered_for_one_node_is_refused_for_another(tmp_path) -> None:
    key = public_key_b64(Ed25519PrivateKey.generate())
    with desk(tmp_path) as client:
        assert client.post("/api/v1/organisations", json={"name": "CHU"}, headers=ADMIN).status_code == 201
        node = {"organisation": "CHU", "public_key": key}
        assert client.post("/api/v1/nodes", headers=ADMIN, json={"node_id": "cleveland", **node}).status_code == 201
        second = client.post("/api/v1/nodes", headers=ADMIN, json={"node_id": "impostor", **node})
        assert second.status_code == 409 and "'cleveland'" in second.json()["error"]
        raw = bytearray(base64.b64decode(key))  # the same key spelt otherwise (unused low bits of the last char)
        spelt = base64.b64encode(bytes(raw)).decode()
        spelt = spelt[:-2] + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".index(spelt[-2]) ^ 1] + "="
        assert base64.b64decode(spelt) == bytes(raw) and spelt != key
        again = client.post("/api/v1/nodes", headers=ADMIN, json={"node_id": "impostor", **node, "public_key": spelt})
        assert again.status_code == 409
        assert [n["node_id"] for n in client.get("/api/v1/nodes", headers=ADMIN).json()] == ["cleveland"]
