"""Refusals travel: a node refuses a bad task, the desk records the refusal, the node records it too.

A real desk app and a real node agent talk over httpx's ASGI transport. The project is approved
through the API (two reviewers) and accepted by the node's operator; then the test hands the
desk's broker tasks that are wrong in exactly one way, each sealed with the desk's own key so that
only the intended check can fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from conftest import calibrated, seal, sign_approval
from fedsante.common.keys import load_key
from fedsante.data.heart import load_hospital
from fedsante.desk.app import create_app
from fedsante.desk.client import DeskClient
from fedsante.desk.settings import DeskSettings
from fedsante.federation.approval import DatasetScope, SignedApproval, iso
from fedsante.federation.messages import Task, pack
from fedsante.node import operator
from fedsante.node.agent import NodeAgent
from fedsante.node.config import NodeConfig
from fedsante.node.policy import Acceptances
from fedsante.sim import lifecycle

URL = "http://127.0.0.1"  # in-process (ASGI transport)


class Harness:
    def __init__(self, app, cfg: NodeConfig, approval: SignedApproval) -> None:
        self.app, self.cfg, self.approval = app, cfg, approval
        self.desk = app.state.desk

    def desk_key(self):
        return self.desk.keyring.current()[1]

    def resign(self, **changes) -> SignedApproval:
        """The approval changed and validly signed by the desk (as a compromised or buggy desk could)."""
        return sign_approval(self.approval.document.model_copy(update=changes), self.desk_key())

    def task(self, *, approval: SignedApproval | None = None, **changes) -> Task:
        approval = approval or self.approval
        fields = {"task_id": uuid.uuid4().hex, "run_id": "crafted", "node_id": "va",
                  "project": approval.document.project_reference,
                  "round": 0, "kind": "evaluate", "algorithm": approval.document.algorithm,
                  "study_sha256": approval.document.study_sha256, "arrays": pack({"coef": np.zeros(13), "intercept": np.zeros(1)}),
                  "params": calibrated(approval.document), "approval": approval, **changes}
        return seal(Task(**fields), self.desk_key())

    async def send(self, task: Task):
        return await asyncio.wait_for(self.desk.broker.submit("va", task), timeout=10)


@pytest.fixture
def harness(tmp_path: Path):
    async def setup_and_run(body):
        token = secrets.token_urlsafe(16)
        app = create_app(DeskSettings(data_dir=tmp_path / "desk", database_url="sqlite://"), admin_token=token)
        transport = httpx.ASGITransport(app=app)
        cfg = NodeConfig(node_id="va", desk_url=URL, data_dir=tmp_path / "va", dataset="va")
        async with DeskClient(URL, token, transport=transport) as admin:
            await admin.create_organisation("VA", kind="hospital")
            await admin.register_node("va", "VA", operator.init_node(cfg))
            await lifecycle.prepare_node(cfg, await admin.keys())
            cast = await lifecycle.create_cast(admin)
            project = await lifecycle.submit_and_approve(cast, lifecycle.example_spec(["va"]))
            await lifecycle.accept_everywhere([cfg], project["reference"], transport=transport)
            approval = SignedApproval.model_validate(
                {k: v for k, v in (await cast.holder.project(project["reference"], "approval")).items()
                 if k in ("document", "signature")})
            client = httpx.AsyncClient(base_url=URL, transport=transport)
            agent = NodeAgent(node_id="va", table=load_hospital("va"), key=load_key(cfg.key_path), client=client,
                              guard=operator.guard(cfg), poll_seconds=1)
            loop = asyncio.create_task(agent.run_forever())
            try:
                await admin.wait_for_nodes(["va"], timeout=5)
                return await body(Harness(app, cfg, approval))
            finally:
                loop.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop
                await client.aclose()
                await cast.close()

    return lambda body: asyncio.run(setup_and_run(body))


def assert_recorded_at_desk_and_node(h: Harness, task: Task, reason: str) -> None:
    desk_entry = next(e for e in reversed(h.desk.audit_log().entries()) if e.action == "task.refused")
    assert desk_entry.actor == "va" and desk_entry.details == {"task_id": task.task_id, "reason": reason}
    node_entry = operator.audit_log(h.cfg).entries()[-1]
    assert node_entry.action == "task.refused" and node_entry.details["task_id"] == task.task_id
    assert node_entry.details["reason"] == reason
    assert h.desk.audit_log().verify().ok and operator.audit_log(h.cfg).verify().ok


CASES = {
    "forged signature": (lambda h: h.task(approval=h.approval.model_copy(
        update={"document": h.approval.document.model_copy(update={"epsilon": 0.5})})), "invalid signature"),
    "wrong key": (lambda h: h.task(approval=h.approval.model_copy(update={"document": h.approval.document.model_copy(
        update={"desk_key_id": "0123456789abcdef"})})), "which this node does not trust"),
    "expired": (lambda h: h.task(approval=h.resign(expires_at=iso(datetime.now(UTC) - timedelta(hours=1)))),
                "expired on"),
    "other project": (lambda h: h.task(project="RAIH-2026-9999"), "not for project RAIH-2026-9999"),
    "algorithm hash changed": (lambda h: h.task(approval=h.resign(algorithm=h.approval.document.algorithm.model_copy(
        update={"code_hash": "f" * 64}))), "differs from the installed code"),
    "dataset not in scope": (lambda h: h.task(approval=h.resign(datasets=[DatasetScope(node_id="va", dataset="cleveland")])),
                             "is not in the scope of approval"),
    "node not accepted": (lambda h: h.task(approval=h.resign(approval_id="RAIH-2026-0001-v7")),
                          "has not been accepted at this node"),
    "parameter out of bounds": (lambda h: h.task(params={**calibrated(h.approval.document), "rounds": 31}),
                                "rounds=31 is outside approval"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refusal_is_signed_named_and_recorded_at_desk_and_node(harness, case: str) -> None:
    make, expected = CASES[case]

    async def body(h: Harness) -> None:
        ok = await h.send(h.task())  # the same node runs a correct task of the same approval
        assert ok.ok, ok.error
        task = make(h)
        result = await h.send(task)
        assert result.ok is False and expected in result.error, result.error
        assert_recorded_at_desk_and_node(h, task, result.error)

    harness(body)


def test_a_replayed_task_is_refused_and_recorded(harness) -> None:
    async def body(h: Harness) -> None:
        task = h.task()
        assert (await h.send(task)).ok
        replay = await h.send(task)
        assert replay.ok is False and "already received once" in replay.error
        assert_recorded_at_desk_and_node(h, task, replay.error)

    harness(body)


def test_a_declined_project_is_refused_and_the_desk_shows_the_decision(harness) -> None:
    async def body(h: Harness) -> None:
        doc = h.approval.document
        Acceptances(h.cfg.acceptances_path).decide(h.approval, "declined", "dpo", "capacity")
        task = h.task()
        result = await h.send(task)
        assert "this hospital declined approval" in result.error and "capacity" in result.error
        assert_recorded_at_desk_and_node(h, task, result.error)
        assert doc.approval_id in {e.subject for e in h.desk.audit_log().entries() if e.action == "approval.accepted"}

    harness(body)


def test_a_desk_whose_audit_chain_was_tampered_with_refuses_to_start(tmp_path: Path) -> None:
    from fedsante.common.errors import DataError

    settings = DeskSettings(data_dir=tmp_path, database_url="sqlite://")
    create_app(settings, admin_token="fst_t")
    chain = tmp_path / "audit.jsonl"
    chain.write_bytes(chain.read_bytes().replace(b'"role":"admin"', b'"role":"AUDIT"'))
    with pytest.raises(DataError, match=r"entry 0 \(line 1\).*keep the file as evidence"):
        create_app(settings, admin_token="fst_t")
