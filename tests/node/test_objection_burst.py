"""A burst of objections (more than the policy's objection_burst_limit in one refresh) is held, not applied,
until the operator confirms it; the objections stay sealed at the desk meanwhile."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from fedsante.audit import AuditLog
from fedsante.cli import app
from fedsante.data.heart import load_hospital
from fedsante.node.objections import Objections, policy_burst_limit
from fedsante.node.policy import NodePolicy, dump_policy, load_policy
from fedsante.privacy.objections import public_b64, seal

VA = [str(pid) for pid in load_hospital("va").patient_id]


class FakeDesk:
    """The desk's node routes for one node: pending objections (sealed), acknowledgements."""

    def __init__(self) -> None:
        self.pending: dict[str, dict] = {}
        self.key: str | None = None

    def object(self, identifiers: list[str]) -> list[str]:
        ids = []
        for identifier in identifiers:
            ids.append(secrets.token_hex(32))
            self.pending[ids[-1]] = {"id": ids[-1], "action": "object", "ciphertext": seal(self.key, identifier)}
        return ids

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            self.key = json.loads(request.content)["objection_key"]
            return httpx.Response(200, json={"ok": True})
        if request.method == "GET":
            return httpx.Response(200, json={"pending": list(self.pending.values())})
        for item in json.loads(request.content)["applied"]:
            if self.pending.get(item["id"], {}).get("action") == item["action"]:
                del self.pending[item["id"]]
        return httpx.Response(200, json={"applied": 1})


def node(tmp_path: Path, limit: int) -> tuple[Objections, FakeDesk]:
    key = Ed25519PrivateKey.generate()
    objections = Objections.open(tmp_path, "va", key, AuditLog(tmp_path / "audit.jsonl", key, "va"),
                                 burst_limit=lambda: limit)
    desk = FakeDesk()
    desk.key = public_b64(objections.box_key)
    return objections, desk


def refresh(objections: Objections, desk: FakeDesk, confirmed_by: str | None = None) -> tuple[int, int]:
    async def go():
        async with httpx.AsyncClient(base_url="http://desk", transport=httpx.MockTransport(desk.handler)) as client:
            return await objections.refresh(client, confirmed_by=confirmed_by)
    return asyncio.run(go())


def actions(tmp_path: Path) -> list[tuple[str, dict]]:
    return [(e["action"], e["details"]) for e in map(json.loads, (tmp_path / "audit.jsonl").read_text().splitlines())]


@pytest.mark.parametrize(("limit", "count"), [(1, 1), (3, 3), (20, 20), (20, 1)])
def test_up_to_the_limit_new_objections_are_applied_at_once(tmp_path: Path, limit: int, count: int) -> None:
    # Prepare
    objections, desk = node(tmp_path, limit)
    desk.object(VA[:count])

    # Execute
    added, removed = refresh(objections, desk)

    # Assert
    assert (added, removed) == (count, 0) and len(objections.table) == count and desk.pending == {}
    assert not objections.held_path.exists() and objections.newly_held == 0
    assert actions(tmp_path) == [("objections.applied", {"added": count, "withdrawn": 0, "in_force": count})]


@pytest.mark.parametrize(("limit", "count"), [(0, 1), (1, 2), (3, 4), (20, 21), (20, 130)])
def test_beyond_the_limit_none_of_the_batch_is_applied_and_the_chain_says_held(tmp_path: Path, limit: int,
                                                                               count: int) -> None:
    # Prepare
    objections, desk = node(tmp_path, limit)
    ids = desk.object(VA[:count])

    # Execute
    added, removed = refresh(objections, desk)

    # Assert: nothing applied, all still sealed at the desk, held for the operator
    assert (added, removed) == (0, 0) and len(objections.table) == 0 and objections.newly_held == count
    assert sorted(desk.pending) == sorted(ids) and all(p["ciphertext"] for p in desk.pending.values())
    assert sorted(objections.held()) == sorted(ids)
    assert actions(tmp_path) == [("objections.held", {"new": count, "held": count, "limit": limit})]
    assert objections.held_path.stat().st_mode & 0o777 == 0o600
    assert len(objections.cohort(load_hospital("va"), "run-1").y) == len(load_hospital("va").y)


def test_a_hold_takes_in_newer_objections_keeps_applying_withdrawals_and_confirming_applies_it(tmp_path) -> None:
    # Prepare: one objection applied, then a burst of 4 over a limit of 3
    objections, desk = node(tmp_path, 3)
    (first,) = desk.object(VA[:1])
    refresh(objections, desk)
    burst = desk.object(VA[1:5])
    refresh(objections, desk)

    # Execute: a later single objection joins the hold; a withdrawal goes through; a held one is withdrawn
    late = desk.object(VA[5:6])
    desk.pending[first] = {"id": first, "action": "withdraw", "ciphertext": None}
    del desk.pending[burst[0]]  # the patient withdrew before the node applied it: the desk dropped it
    added, removed = refresh(objections, desk)
    again = refresh(objections, desk)

    # Assert
    assert (added, removed) == (0, 1) and again == (0, 0) and len(objections.table) == 0
    assert sorted(objections.held()) == sorted(burst[1:] + late)
    held = [d for a, d in actions(tmp_path) if a == "objections.held"]
    assert held == [{"new": 4, "held": 4, "limit": 3}, {"new": 1, "held": 4, "limit": 3}]

    # Execute: the operator confirms
    added, removed = refresh(objections, desk, confirmed_by="dpo")

    # Assert: the four held are applied, the desk drops them, the chain names the operator
    assert (added, removed) == (4, 0) and desk.pending == {} and not objections.held_path.exists()
    assert actions(tmp_path)[-1] == ("objections.confirmed", {"operator": "dpo", "confirmed": 4, "in_force": 4})
    table = load_hospital("va")
    in_cohort = set(map(str, table.patient_id))
    assert len(objections.cohort(table, "run-2").y) == len(table.y) - len(set(VA[2:6]) & in_cohort)


def test_confirming_applies_only_what_was_held_and_a_new_burst_is_held_again(tmp_path) -> None:
    # Prepare: 3 held over a limit of 2, then 3 more arrive before the operator confirms
    objections, desk = node(tmp_path, 2)
    desk.object(VA[:3])
    refresh(objections, desk)
    newer = desk.object(VA[3:6])

    # Execute
    added, _ = refresh(objections, desk, confirmed_by="dpo")

    # Assert
    assert added == 3 and sorted(objections.held()) == sorted(newer) and sorted(desk.pending) == sorted(newer)


def test_the_burst_limit_is_a_policy_setting_default_20(tmp_path) -> None:
    # Prepare
    path = tmp_path / "policy.toml"

    # Execute / Assert
    assert NodePolicy().objection_burst_limit == 20 and policy_burst_limit(path)() == 20
    path.write_text(dump_policy(NodePolicy(objection_burst_limit=5)), encoding="utf-8")
    assert "objection_burst_limit = 5" in path.read_text() and load_policy(path).objection_burst_limit == 5
    assert policy_burst_limit(path)() == 5
    with pytest.raises(ValueError):
        NodePolicy(objection_burst_limit=-1)


def test_cli_confirm_applies_a_held_burst_and_refuses_when_nothing_is_held(tmp_path, monkeypatch) -> None:
    # Prepare: a node on the bundled VA data; a burst of 21 held under the default limit
    runner, config = CliRunner(), tmp_path / "node.toml"
    done = runner.invoke(app, ["node", "init", "--config", str(config), "--node-id", "va", "--dataset", "va",
                               "--data-dir", str(tmp_path / "va-data"), "--desk-url", "http://127.0.0.1:9"])
    assert done.exit_code == 0, done.output
    refused = runner.invoke(app, ["node", "objections", "confirm", "--config", str(config)])
    assert refused.exit_code == 1 and "No objection is held at va" in refused.output
    from fedsante.cli.node_objections import open_objections
    from fedsante.common.keys import load_key
    from fedsante.node.config import load_config
    from fedsante.node.operator import audit_log

    cfg = load_config(config)
    objections = open_objections(cfg, load_key(cfg.key_path), audit_log(cfg))
    desk = FakeDesk()
    desk.key = public_b64(objections.box_key)
    desk.object(VA[:21])
    refresh(objections, desk)
    shown = runner.invoke(app, ["node", "objections", "--config", str(config)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "0 objection(s) in force" in shown.output and "21 objection(s) held since" in " ".join(shown.output.split())
    real = httpx.AsyncClient
    monkeypatch.setattr(httpx, "AsyncClient", lambda **kw: real(transport=httpx.MockTransport(desk.handler), **kw))

    # Execute
    done = runner.invoke(app, ["node", "objections", "confirm", "--config", str(config), "--operator", "dpo"],
                         env={"COLUMNS": "200"})

    # Assert
    assert done.exit_code == 0, done.output
    assert "21 objection(s) applied at va (21 were held), 0 withdrawn; 21 in force." in " ".join(done.output.split())
    assert desk.pending == {} and audit_log(cfg).entries()[-1].action == "objections.confirmed"
