"""What a hospital data officer does at the node: set policy, trust desk keys, accept or decline projects.

Each action is written to the node's own audit chain. Acceptances are also reported to the desk
(signed with the node's key) so that the desk and the public can see them; the node's list is the
one that counts.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx

from fedsante.audit import AuditLog
from fedsante.data.mapping import Mapping
from fedsante.common.errors import ConfigError, DeskUnreachable, Forbidden
from fedsante.federation.approval import AcceptanceNotice, SignedApproval, iso, key_id
from fedsante.federation.auth import sign_request
from fedsante.common.keys import canonical_json, generate_key, load_key, parse_public_key, public_key_b64, sign
from fedsante.algorithms.catalogue import installed
from fedsante.node.agent import NodeGuard
from fedsante.node.replies import raise_for_status
from fedsante.node.config import NodeConfig, write_config
from fedsante.node.datasets import build_cohort, format_problem, mapping_check
from fedsante.node.guard import approval_problems
from fedsante.node.ledger import PrivacyLedger
from fedsante.node.policy import Acceptances, DatasetPolicy, NodePolicy, TrustedKey, load_policy, save_policy

DEFAULT_EPSILON_CAP = 10.0


def audit_log(cfg: NodeConfig) -> AuditLog:
    return AuditLog(cfg.audit_path, load_key(cfg.key_path), cfg.node_id)


def guard(cfg: NodeConfig) -> NodeGuard:
    audit = audit_log(cfg)
    return NodeGuard(node_id=cfg.node_id, dataset=cfg.dataset_name, policy_path=cfg.policy_path,
                     acceptances=Acceptances(cfg.acceptances_path), audit=audit, ledger=PrivacyLedger(audit))


def init_node(cfg: NodeConfig, config_path: Path | None = None) -> str:
    """Create the node's key (if absent) and default policy, write its config; return the public key."""
    key = load_key(cfg.key_path) if cfg.key_path.exists() else generate_key(cfg.key_path)
    if config_path is not None:
        write_config(config_path, cfg)
    if not cfg.policy_path.exists():
        init_policy(cfg)
    return public_key_b64(key)


def init_policy(cfg: NodeConfig, *, epsilon_cap: float = DEFAULT_EPSILON_CAP) -> NodePolicy:
    """Write the default policy (k_min 11, no trusted desk yet, an epsilon cap for the node's dataset)."""
    if cfg.policy_path.exists():
        raise ConfigError(f"Node policy {cfg.policy_path} already exists; edit it with 'fedsante node policy'.")
    policy = NodePolicy(datasets={cfg.dataset_name: DatasetPolicy(epsilon_cap=epsilon_cap)})
    save_policy(cfg.policy_path, policy)
    audit_log(cfg).append("operator", "policy.created", cfg.node_id, json.loads(policy.model_dump_json()))
    return policy


def update_policy(cfg: NodeConfig, change: str, **values: object) -> NodePolicy:
    """Apply one change: 'trust', 'untrust', 'set-cap', 'k-min', 'auto-accept', 'secure-aggregation'
    or 'differential-privacy'."""
    policy = load_policy(cfg.policy_path)
    data = policy.model_dump()
    if change == "trust":
        public_key = str(values["public_key"])
        parse_public_key(public_key)
        kid = key_id(public_key)
        data["trusted_desk_keys"] = [k for k in data["trusted_desk_keys"] if k["key_id"] != kid]
        data["trusted_desk_keys"].append(TrustedKey(key_id=kid, public_key=public_key,
                                                    label=str(values.get("label", ""))).model_dump())
    elif change == "untrust":
        data["trusted_desk_keys"] = [k for k in data["trusted_desk_keys"] if k["key_id"] != values["key_id"]]
    elif change == "set-cap":
        data["datasets"][str(values["dataset"])] = {"epsilon_cap": values["epsilon_cap"]}
    elif change == "k-min":
        data["k_min_floor"] = values["k_min_floor"]
    elif change == "secure-aggregation":
        data["require_secure_aggregation"] = bool(values["required"])
    elif change == "differential-privacy":
        data["require_differential_privacy"] = bool(values["required"])
    elif change == "auto-accept":
        data["auto_accept"] = {**data["auto_accept"], **values}
    else:
        raise ConfigError(f"Unknown policy change {change!r}.")
    try:
        policy = NodePolicy.model_validate(data)
    except ValueError as exc:
        raise ConfigError(f"Policy change refused: {exc}") from None
    save_policy(cfg.policy_path, policy)
    audit_log(cfg).append("operator", f"policy.{change}", cfg.node_id, {k: str(v) for k, v in values.items()})
    return policy


async def _signed(cfg: NodeConfig, method: str, path: str, body: bytes = b"",
                  transport: httpx.AsyncBaseTransport | None = None) -> httpx.Response:
    key = load_key(cfg.key_path)
    headers = sign_request(key, cfg.node_id, method, path, body)
    if body:
        headers["content-type"] = "application/json"
    try:
        async with httpx.AsyncClient(base_url=cfg.desk_url, transport=transport, timeout=30,
                                     verify=cfg.verify()) as client:
            response = await client.request(method, path, content=body, headers=headers)
    except httpx.TransportError as exc:
        raise DeskUnreachable(f"Cannot reach the desk at {cfg.desk_url} ({type(exc).__name__}).") from None
    raise_for_status(response)
    return response


async def fetch_approval(cfg: NodeConfig, reference: str, *,
                         transport: httpx.AsyncBaseTransport | None = None) -> SignedApproval:
    response = await _signed(cfg, "GET", f"/api/v1/node/approvals/{reference}", transport=transport)
    return SignedApproval.model_validate(response.json())


async def decide(cfg: NodeConfig, reference: str, decision: str, *, operator: str, reason: str = "",
                 mapping: Mapping | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> tuple[SignedApproval, dict]:
    """Verify a project's approval against local policy, record the decision, report it to the desk.

    Accepting is refused (with every reason) if the approval fails any check or, when it carries a
    study, if ``mapping`` leaves values the study cannot read; declining always works. The mapping is
    stored with the decision.
    """
    signed = await fetch_approval(cfg, reference, transport=transport)
    mapping = mapping or Mapping()
    if decision == "accepted":
        problems = approval_problems(signed, node_id=cfg.node_id, dataset=cfg.dataset_name,
                                     policy=load_policy(cfg.policy_path), installed=installed(),
                                     now=datetime.now(UTC))
        if problems:
            audit_log(cfg).append(operator, "approval.refused", signed.document.approval_id, {"problems": problems})
            raise Forbidden(f"Cannot accept {reference}: " + "; ".join(problems), errors=problems)
        check_mapping(cfg, signed, mapping, operator=operator)
    entry = Acceptances(cfg.acceptances_path).decide(signed, decision, operator, reason, mapping=mapping)
    audit_log(cfg).append(operator, f"approval.{decision}", signed.document.approval_id,
                          {"project": reference, "sha256": entry["sha256"], "reason": reason})
    notice = AcceptanceNotice(approval_id=signed.document.approval_id, approval_sha256=entry["sha256"],
                              node_id=cfg.node_id, decision=decision, reason=reason,
                              decided_at=iso(datetime.now(UTC)))
    notice = notice.model_copy(update={"signature": sign(load_key(cfg.key_path), canonical_json(notice.signed_content()))})
    await _signed(cfg, "POST", "/api/v1/node/acceptances", notice.model_dump_json().encode(), transport=transport)
    return signed, entry


async def accept(cfg: NodeConfig, reference: str, *, operator: str, reason: str = "within local policy",
                 mapping: Mapping | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> tuple[SignedApproval, dict]:
    """Accept a project with ``mapping`` of this node's columns onto its study (see :func:`decide`)."""
    return await decide(cfg, reference, "accepted", operator=operator, reason=reason, mapping=mapping,
                        transport=transport)


def check_mapping(cfg: NodeConfig, signed: SignedApproval, mapping: Mapping, *, operator: str) -> None:
    """Compile the cohort of the approval's study (if it carries one); raise Forbidden on a mapping problem.

    The error lists each problem with file, column, value and count for the operator's screen; the
    audit chain records only how many problems and which variables, never a value nor a count of rows.
    """
    study = getattr(signed.document, "study", None)
    if study is None:
        return
    problems = mapping_check(cfg, study, mapping)
    if problems:
        approval_id = signed.document.approval_id
        audit_log(cfg).append(operator, "approval.refused", approval_id,
                              {"mapping_problems": len(problems),
                               "variables": sorted({p.variable for p in problems})})
        lines = [format_problem(p) for p in problems]
        raise Forbidden(f"Cannot accept {signed.document.project_reference}: the mapping leaves {len(problems)} "
                        f"problem{'s' if len(problems) > 1 else ''} for study {study.id!r} (shown here only, "
                        "nothing is sent):\n  " + "\n  ".join(lines)
                        + "\nFix the values or map them (--map variable=Column:{local:study}), then accept again.",
                        errors=lines)
    build_cohort(cfg, study, mapping)
