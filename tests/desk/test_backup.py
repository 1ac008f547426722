"""The desk's restore drill: back up a running desk (SQLite in WAL mode), restore it elsewhere, start it there."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from fedsante.audit import verify_file
from fedsante.common.errors import ConfigError, DataError
from fedsante.desk.app import create_app
from fedsante.desk.backup import backup_desk, restore_desk
from fedsante.desk.settings import DeskSettings
from fedsante.federation.approval import SignedApproval, signature_problem
from fedsante.sim.lifecycle import HOLDER_ORG, REVIEWER_ORGS, example_spec

ADMIN = "fst_admin-token-for-backup-tests"


class Desk:
    """A desk with a holder and two external reviewers, on a SQLite file in its data folder."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.tokens = {"admin": ADMIN}

    def populate(self) -> None:
        for name, kind in ((HOLDER_ORG, "research"), (REVIEWER_ORGS[0], "desk"), (REVIEWER_ORGS[1], "desk")):
            assert self.call("admin", "POST", "/api/v1/organisations", json={"name": name, "kind": kind}).is_success
        end = (datetime.now(UTC).date() + timedelta(days=60)).isoformat()
        for user, org, role in (("holder", HOLDER_ORG, "holder"), ("r1", REVIEWER_ORGS[0], "reviewer"),
                                ("r2", REVIEWER_ORGS[1], "reviewer")):
            self.tokens[user] = self.call("admin", "POST", "/api/v1/accounts", json={
                "name": user, "organisation": org, "role": role, "end_date": end}).json()["token"]

    def call(self, who: str, method: str, path: str, **kwargs):
        return self.client.request(method, path, headers={"authorization": f"Bearer {self.tokens[who]}"}, **kwargs)

    def approved(self) -> tuple[str, dict]:
        """A new project, submitted and approved by both reviewers; its reference and signed approval."""
        response = self.call("holder", "POST", "/api/v1/projects", json=example_spec().model_dump(mode="json"))
        assert response.status_code == 201, response.text
        reference = response.json()["reference"]
        assert self.call("holder", "POST", f"/api/v1/projects/{reference}/submit", json={}).status_code == 200
        for reviewer in ("r1", "r2"):
            self.call(reviewer, "POST", f"/api/v1/projects/{reference}/reviews",
                      json={"decision": "approve", "comment": "ok"})
        approval = self.call("holder", "GET", f"/api/v1/projects/{reference}/approval")
        assert approval.status_code == 200, approval.text
        return reference, approval.json()

    def verifies(self, approval: dict) -> bool:
        signed = SignedApproval.model_validate({k: approval[k] for k in ("document", "signature")})
        keys = {k["key_id"]: k["public_key"] for k in self.client.get("/api/v1/keys").json()}
        return signature_problem(signed, keys) is None


@pytest.fixture
def running(tmp_path):
    """A populated desk, still running (its database open in WAL mode), with one approved project."""
    settings = DeskSettings(data_dir=tmp_path / "desk")
    with TestClient(create_app(settings, admin_token=ADMIN)) as client:
        desk = Desk(client)
        desk.populate()
        reference, approval = desk.approved()
        yield settings, desk, reference, approval


def test_the_restore_drill_brings_back_projects_accounts_keys_and_the_chain(tmp_path, running) -> None:
    settings, desk, reference, approval = running
    assert (settings.data_dir / "desk.db-wal").exists()  # backed up live, in WAL mode

    manifest = backup_desk(settings, tmp_path / "backup")

    backup = tmp_path / "backup"
    assert manifest["database"]["alembic_revision"] and manifest["audit"]["head_seq"] is not None
    assert {"desk.db", "audit.jsonl", "keys/keyring.json"} <= set(manifest["files"])
    assert all((backup / name).stat().st_mode & 0o777 == 0o600 for name in [*manifest["files"], "manifest.json"])
    assert not (backup / "desk.db-wal").exists()  # one self-contained file
    restored = tmp_path / "restored"

    restore_desk(backup, restored)

    check = verify_file(restored / "audit.jsonl")
    assert check.ok and (check.head_seq, check.head_hash) == (manifest["audit"]["head_seq"],
                                                             manifest["audit"]["head_hash"])
    with TestClient(create_app(DeskSettings(data_dir=restored), admin_token=ADMIN)) as client:
        again = Desk(client)
        again.tokens = dict(desk.tokens)
        project = again.call("holder", "GET", f"/api/v1/projects/{reference}")
        assert project.status_code == 200 and project.json()["status"] == "approved"
        assert {a["name"] for a in again.call("admin", "GET", "/api/v1/accounts").json()} >= {"holder", "r1", "r2"}
        _, second = again.approved()
        assert second["document"]["desk_key_id"] == approval["document"]["desk_key_id"]
        assert again.verifies(second) and again.verifies(approval)
    assert verify_file(restored / "audit.jsonl").ok


def test_a_corrupted_backup_is_refused_naming_the_file(tmp_path, running) -> None:
    settings = running[0]
    backup_desk(settings, tmp_path / "backup")
    keyring = tmp_path / "backup" / "keys" / "keyring.json"
    keyring.write_text(keyring.read_text().replace("created_at", "created_on"))

    with pytest.raises(DataError, match=r"keys/keyring\.json does not match its SHA-256"):
        restore_desk(tmp_path / "backup", tmp_path / "restored")
    assert not (tmp_path / "restored").exists() or not any((tmp_path / "restored").iterdir())


def test_a_restored_chain_that_does_not_verify_leaves_nothing(tmp_path, running) -> None:
    settings = running[0]
    backup_desk(settings, tmp_path / "backup")
    chain = tmp_path / "backup" / "audit.jsonl"
    chain.write_bytes(chain.read_bytes().replace(b'"holder"', b'"holdeR"', 1))
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    manifest["files"]["audit.jsonl"]["sha256"] = __import__("hashlib").sha256(chain.read_bytes()).hexdigest()
    (tmp_path / "backup" / "manifest.json").write_text(json.dumps(manifest))

    with pytest.raises(DataError, match="restored audit chain"):
        restore_desk(tmp_path / "backup", tmp_path / "restored")
    assert not any(p.name.startswith(".restored") for p in tmp_path.iterdir())


def test_a_backup_or_restore_into_a_non_empty_folder_is_refused(tmp_path, running) -> None:
    settings = running[0]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("keep me")

    with pytest.raises(ConfigError, match="not empty"):
        backup_desk(settings, tmp_path / "full")
    backup_desk(settings, tmp_path / "backup")
    with pytest.raises(ConfigError, match="not empty"):
        restore_desk(tmp_path / "backup", tmp_path / "full")
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["notes.txt"]


def test_a_server_database_is_left_to_pg_dump(tmp_path) -> None:
    settings = DeskSettings(data_dir=tmp_path / "desk", database_url="postgresql://desk@db.example/desk")
    settings.data_dir.mkdir()
    (settings.data_dir / "keys").mkdir()
    (settings.data_dir / "keys" / "keyring.json").write_text("[]\n")

    manifest = backup_desk(settings, tmp_path / "backup")

    assert manifest["database"]["file"] is None and "pg_dump" in manifest["database"]["note"]
    assert "keys/keyring.json" in manifest["files"] and "desk.db" not in manifest["files"]
    shutil.rmtree(tmp_path / "backup")
