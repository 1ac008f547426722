"""A hospital's own rules (policy file) and its list of accepted or declined approvals.

Both live in the node's data directory and belong to the hospital: the desk cannot change them.
A missing policy means "refuse everything", with a message naming the file and how to create it.
"""

from __future__ import annotations

import json
import os
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fedsante.data.mapping import Mapping
from fedsante.common.errors import ConfigError, field_problems
from fedsante.federation.approval import SignedApproval, iso


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrustedKey(_Strict):
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$", description="Desk key id (16 hex digits).")
    public_key: str = Field(min_length=40, max_length=64, description="Base64 raw Ed25519 public key.")
    label: str = Field("", description="Whose key this is, e.g. 'Guichet IA Grand-Est'.")


class DatasetPolicy(_Strict):
    epsilon_cap: float = Field(gt=0, description="Largest epsilon an approval may spend on this dataset.")


class AutoAccept(_Strict):
    enabled: bool = Field(False, description="Accept automatically approvals within the limits below.")
    algorithms: list[str] = Field([], description="Algorithm ids that may be accepted automatically.")
    purposes: list[str] = Field([], description="Purpose categories that may be accepted automatically.")
    max_epsilon: float = Field(1.0, gt=0, description="Largest epsilon accepted automatically.")


class NodePolicy(_Strict):
    """What this hospital allows; only tightening the desk's defaults is possible (k_min >= 11)."""

    k_min_floor: int = Field(11, ge=11, description="Smallest k_min this node accepts (never below 11).")
    trusted_desk_keys: list[TrustedKey] = Field([], description="Desk keys whose approvals this node trusts.")
    datasets: dict[str, DatasetPolicy] = Field({}, description="Per-dataset limits, by dataset name.")
    auto_accept: AutoAccept = AutoAccept()
    require_secure_aggregation: bool = Field(True, description="Send model updates only masked by secure aggregation.")
    require_differential_privacy: bool = Field(
        True, description="Run only differentially private tasks (privacy 'record' or 'client'), within the budget.")
    objection_burst_limit: int = Field(
        20, ge=0, le=100_000,
        description="Most new patient objections one refresh may apply; a larger batch is held, unapplied and "
                    "still sealed at the desk, until the operator runs 'fedsante node objections confirm' "
                    "(docs/objections.md).")
    objection_second_factor: Literal["none", "birth_date"] = Field(
        "none", description="'birth_date': apply an objection only to the patient whose identifier and date of "
                            "birth both match the one the patient gave (docs/objections.md).")
    objection_birth_date_column: str = Field(
        "birth_date", min_length=1, description="The dataset column holding the date of birth (YYYY-MM-DD, "
                                                "DD/MM/YYYY or YYYYMMDD), read at the node only.")

    def trusted(self) -> dict[str, str]:
        return {k.key_id: k.public_key for k in self.trusted_desk_keys}


def load_policy(path: Path) -> NodePolicy:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"Node policy {path} does not exist, so this node refuses all work. Create it with "
                          "'fedsante node policy init --config <node config>'.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Node policy {path} is not valid TOML: {exc}.") from None
    try:
        return NodePolicy.model_validate(raw)
    except ValidationError as exc:
        problems = field_problems(exc)
        raise ConfigError(f"Node policy {path} is invalid: {'; '.join(problems)}.", errors=problems) from None


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a valid TOML basic string


def dump_policy(policy: NodePolicy) -> str:
    lines = ["# fedsante node policy: this hospital's own limits. Edit with 'fedsante node policy'.",
             f"k_min_floor = {policy.k_min_floor}",
             f"require_secure_aggregation = {_toml_value(policy.require_secure_aggregation)}",
             f"require_differential_privacy = {_toml_value(policy.require_differential_privacy)}",
             f"objection_burst_limit = {policy.objection_burst_limit}",
             f"objection_second_factor = {_toml_value(policy.objection_second_factor)}",
             f"objection_birth_date_column = {_toml_value(policy.objection_birth_date_column)}", ""]
    for key in policy.trusted_desk_keys:
        lines += ["[[trusted_desk_keys]]", *(f"{k} = {_toml_value(v)}" for k, v in key.model_dump().items()), ""]
    for name, dataset in policy.datasets.items():
        lines += [f"[datasets.{json.dumps(name)}]", f"epsilon_cap = {dataset.epsilon_cap!r}", ""]
    lines += ["[auto_accept]", *(f"{k} = {_toml_value(v)}" for k, v in policy.auto_accept.model_dump().items())]
    return "\n".join(lines) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def save_policy(path: Path, policy: NodePolicy) -> None:
    _atomic_write(path, dump_policy(policy))


class Acceptances:
    """The node's acceptance list: ``<data dir>/acceptances.json``, re-read on every use."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def all(self) -> dict[str, dict]:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise ConfigError(f"Acceptance list {self.path} is unreadable ({exc}); this node refuses all work.") from None

    def get(self, approval_id: str) -> dict | None:
        return self.all().get(approval_id)

    def mapping(self, approval_id: str) -> Mapping:
        """The mapping stored with a decision (empty: each study variable from the column of its name)."""
        entry = self.get(approval_id) or {}
        try:
            return Mapping.model_validate(entry.get("mapping") or {})
        except ValidationError as exc:
            raise ConfigError(f"Acceptance list {self.path}: the mapping of {approval_id} is invalid "
                              f"({'; '.join(field_problems(exc))}); accept the project again.") from None

    def decide(self, signed: SignedApproval, decision: str, operator: str, reason: str = "",
               now: datetime | None = None, *, mapping: Mapping | None = None) -> dict:
        """Record a decision with the mapping of local columns onto the approval's study."""
        entry = {"decision": decision, "sha256": signed.sha256(), "project": signed.document.project_reference,
                 "decided_at": iso(now or datetime.now(UTC)), "operator": operator, "reason": reason,
                 "mapping": (mapping or Mapping()).model_dump(mode="json"),
                 "approval": signed.model_dump(mode="json")}
        entries = self.all()
        entries[signed.document.approval_id] = entry
        _atomic_write(self.path, json.dumps(entries, indent=2, ensure_ascii=False) + "\n")
        return entry
