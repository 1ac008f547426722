"""Shared fixtures: a node that trusts a desk key and accepted an approval, and signed tasks for it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedsante.audit import AuditLog
from fedsante.data.bundled import bundled_study
from fedsante.federation.approval import (ApprovalDocument, CharterRef, DatasetScope, SignedApproval, iso, key_id)
from fedsante.algorithms.catalogue import get_algorithm
from fedsante.common.keys import canonical_json, public_key_b64, sign
from fedsante.federation.messages import Task
from fedsante.algorithms.logreg.params import LogRegParams
from fedsante.node.agent import NodeGuard
from fedsante.node.policy import Acceptances, DatasetPolicy, NodePolicy, TrustedKey, save_policy


HEART = bundled_study("heart")


def sign_approval(document: ApprovalDocument, key: Ed25519PrivateKey) -> SignedApproval:
    return SignedApproval(document=document, signature=sign(key, canonical_json(document.model_dump(mode="json"))))


def seal(task: Task, key: Ed25519PrivateKey) -> Task:
    task = task.model_copy(update={"desk_key_id": key_id(public_key_b64(key))})
    return task.model_copy(update={"desk_signature": sign(key, canonical_json(task.signed_content()))})


def calibrated(document: ApprovalDocument) -> dict:
    """The approved parameters with the noise multipliers the desk would set for the approval's budget."""
    params = LogRegParams.model_validate(document.parameters)
    return params.within_budget(document.epsilon, document.delta).model_dump() if document.epsilon else params.model_dump()


@dataclass
class Governed:
    """A node ``node_id`` with dataset ``dataset``, a desk key it trusts and an accepted approval."""

    node_id: str
    dataset: str
    desk_key: Ed25519PrivateKey
    node_key: Ed25519PrivateKey
    folder: Path
    approval: SignedApproval

    def document(self, **changes) -> ApprovalDocument:
        return self.approval.document.model_copy(update=changes)

    def signed(self, key: Ed25519PrivateKey | None = None, **changes) -> SignedApproval:
        key = key or self.desk_key
        return sign_approval(self.document(desk_key_id=key_id(public_key_b64(key)), **changes), key)

    def task(self, kind: str = "moments", *, approval: SignedApproval | None = None, key=None,
             project: str | None = None, **changes) -> Task:
        approval = approval or self.approval
        fields = {"task_id": uuid.uuid4().hex, "run_id": "run1", "node_id": self.node_id,
                  "project": project or approval.document.project_reference,
                  "round": 0, "kind": kind, "algorithm": approval.document.algorithm,
                  "study_sha256": approval.document.study_sha256,
                  "params": calibrated(approval.document), "approval": approval, **changes}
        return seal(Task(**fields), key or self.desk_key)

    @property
    def policy_path(self) -> Path:
        return self.folder / "policy.toml"

    @property
    def acceptances(self) -> Acceptances:
        return Acceptances(self.folder / "acceptances.json")

    @property
    def audit(self) -> AuditLog:
        return AuditLog(self.folder / "audit.jsonl", self.node_key, self.node_id)

    def guard(self) -> NodeGuard:
        return NodeGuard(node_id=self.node_id, dataset=self.dataset, policy_path=self.policy_path,
                         acceptances=self.acceptances, audit=self.audit)


def make_governed(folder: Path, node_id: str = "va", dataset: str = "va", *, accept: bool = True) -> Governed:
    desk_key, node_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    desk_public = public_key_b64(desk_key)
    now = datetime.now(UTC)
    document = ApprovalDocument(
        approval_id="RAIH-2026-0001-v1", project_reference="RAIH-2026-0001", project_version=1,
        title="Test project", purpose_category="research",
        datasets=[DatasetScope(node_id=node_id, dataset=dataset), DatasetScope(node_id="other", dataset="other")],
        algorithm=get_algorithm("logreg").ref(), study=HEART, study_sha256=HEART.sha256(), parameters=LogRegParams(scaling="global").model_dump(exclude_none=True),
        parameter_bounds={"rounds": (1, 30)}, epsilon=1.0, delta=1e-5, k_min=11,
        charter=CharterRef(id="grand-est", version="1.0", sha256="0" * 64), reviewers=["a", "b"],
        issued_at=iso(now), expires_at=iso(now + timedelta(days=30)), desk_key_id=key_id(desk_public),
    )
    governed = Governed(node_id, dataset, desk_key, node_key, folder, sign_approval(document, desk_key))
    save_policy(governed.policy_path, NodePolicy(
        trusted_desk_keys=[TrustedKey(key_id=key_id(desk_public), public_key=desk_public, label="test desk")],
        datasets={dataset: DatasetPolicy(epsilon_cap=10.0)}))
    if accept:
        governed.acceptances.decide(governed.approval, "accepted", "tester")
    return governed


@pytest.fixture
def governed(tmp_path: Path) -> Governed:
    return make_governed(tmp_path / "node")
