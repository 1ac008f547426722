"""Approvals: the desk's signed decision that a project may run, in canonical JSON.

An approval names exactly what may run where: the project, its purpose, the hospitals and datasets,
the algorithm with the hash of its code, the approved parameters and their bounds, the privacy
budget (epsilon, delta), the minimum cell size k_min and an expiry. The desk signs the canonical JSON
of the document with its Ed25519 key; every node verifies it against the desk keys it trusts.
"""

from __future__ import annotations

from collections.abc import Collection

import base64
import hashlib
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fedsante.data.study import StudySchema
from fedsante.common.keys import canonical_json, sha256_hex, verify

Scalar = float | int | str | bool


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlgorithmRef(_Doc):
    """An entry of the algorithm catalogue: id, version and SHA-256 of its code."""

    id: str
    version: str
    code_hash: str


class DatasetScope(_Doc):
    node_id: str
    dataset: str


class CharterRef(_Doc):
    id: str
    version: str
    sha256: str


class ApprovalDocument(_Doc):
    """What the desk signs. Times are ISO-8601 UTC strings so that the canonical JSON is stable."""

    type: Literal["fedsante.approval"] = "fedsante.approval"
    format: Literal[1] = 1
    approval_id: str
    project_reference: str
    project_version: int
    title: str
    purpose_category: str
    datasets: list[DatasetScope] = Field(min_length=1)
    algorithm: AlgorithmRef
    study: StudySchema | None = None
    """The study schema (outcome, predictors, fairness attributes, filters, split): what every node compiles."""
    study_sha256: str = ""
    parameters: dict[str, Scalar]
    parameter_bounds: dict[str, tuple[float, float]] = {}
    epsilon: float | None
    delta: float | None
    k_min: int = Field(ge=1)
    charter: CharterRef
    reviewers: list[str]
    issued_at: str
    expires_at: str
    desk_key_id: str

    def expires(self) -> datetime:
        return datetime.fromisoformat(self.expires_at)

    def scope(self) -> dict[str, str]:
        """Node id -> dataset name."""
        return {d.node_id: d.dataset for d in self.datasets}


class SignedApproval(_Doc):
    document: ApprovalDocument
    signature: str

    def sha256(self) -> str:
        """Digest of the signed document: what a node's acceptance refers to."""
        return sha256_hex(canonical_json(self.document.model_dump(mode="json")))


def key_id(public_key_b64: str) -> str:
    """Short stable identifier of a public key: the first 16 hex digits of SHA-256 of its raw bytes."""
    return hashlib.sha256(base64.b64decode(public_key_b64)).hexdigest()[:16]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def signature_problem(signed: SignedApproval, trusted: dict[str, str]) -> str | None:
    """Why the approval's signature must not be trusted (``trusted``: key id -> public key), or None."""
    key = trusted.get(signed.document.desk_key_id)
    if key is None:
        return (f"approval {signed.document.approval_id} is signed with desk key {signed.document.desk_key_id}, "
                f"which this node does not trust (trusted: {', '.join(sorted(trusted)) or 'none'}); "
                "add the desk's key with 'fedsante node policy trust'")
    if not verify(key, canonical_json(signed.document.model_dump(mode="json")), signed.signature):
        return (f"approval {signed.document.approval_id} has an invalid signature for desk key "
                f"{signed.document.desk_key_id}: it was forged or altered after signing")
    return None


def verify_published(approval: dict, keys: list[dict]) -> list[str]:
    """Check an approval as the portal publishes it against the desk's published keys; return the problems.

    ``approval`` holds ``document``, ``signature`` and ``sha256``; ``keys`` is ``GET /api/v1/keys``
    (``key_id``, ``public_key``). Anyone can run this: it needs no account and no secret.
    """
    try:
        signed = SignedApproval(document=ApprovalDocument.model_validate(approval["document"]),
                                signature=approval["signature"])
    except (KeyError, ValueError) as exc:
        return [f"not a signed approval: {exc}"]
    problems = []
    digest = signed.sha256()
    if approval.get("sha256") not in (None, digest):
        problems.append(f"approval {signed.document.approval_id}: the published SHA-256 {approval['sha256'][:16]}... "
                        f"is not the document's ({digest[:16]}...)")
    published = {k["key_id"]: k["public_key"] for k in keys if key_id(k["public_key"]) == k["key_id"]}
    problem = signature_problem(signed, published)
    if problem:
        problems.append(problem.replace("which this node does not trust", "which the desk does not publish")
                        .replace("; add the desk's key with 'fedsante node policy trust'", ""))
    return problems


def bounds_problem(document: ApprovalDocument, params: dict[str, Scalar | None],
                   derived: Collection[str] = ()) -> str | None:
    """Why ``params`` lie outside what the approval allows, or None.

    Parameters named in ``derived`` and absent from the approval are set when the run starts (the
    noise multipliers, from the approval's privacy budget) and are checked elsewhere, not here.
    """
    params = {k: v for k, v in params.items() if not (k in derived and k not in document.parameters)}
    unknown = sorted(set(params) - set(document.parameters))
    if unknown:
        return f"parameter(s) {', '.join(unknown)} are not part of approval {document.approval_id}"
    for name, value in params.items():
        approved = document.parameters[name]
        if value == approved:
            continue
        bounds = document.parameter_bounds.get(name)
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if bounds is None or not numeric or not bounds[0] <= value <= bounds[1]:
            allowed = f"within [{bounds[0]:g}, {bounds[1]:g}]" if bounds else f"= {approved!r}"
            return f"parameter {name}={value!r} is outside approval {document.approval_id} ({name} {allowed})"
    return None


class AcceptanceNotice(_Doc):
    """A hospital's decision on an approval, signed with its node key and reported to the desk."""

    approval_id: str
    approval_sha256: str
    node_id: str
    decision: Literal["accepted", "declined"]
    reason: str = ""
    decided_at: str
    signature: str = ""

    def signed_content(self) -> dict:
        return self.model_dump(mode="json", exclude={"signature"})
