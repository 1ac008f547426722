"""Request and response bodies of the desk API (pydantic)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from fedsante.desk.access import Role


class ErrorBody(BaseModel):
    """The one JSON error shape of the desk (``fedsante.desk.app.error_body``)."""

    ok: Literal[False] = False
    error: str = Field(description="What was wrong and how to fix it.")
    errors: list[str] = Field(description="One line per problem (for a 422: 'field: problem').")
    status: int = Field(description="The HTTP status, repeated.")


def _error(description: str) -> dict:
    return {"model": ErrorBody, "description": description}


ERROR_RESPONSES: dict[int | str, dict] = {
    400: _error("Bad request: the request breaks a rule of the desk (the message says which)."),
    401: _error("Unauthorized: no valid account token, or no valid node signature."),
    403: _error("Forbidden: the caller's role or organisation may not do this."),
    404: _error("Not found."),
    409: _error("Conflict with the current state (already exists, wrong status...)."),
    413: _error("Request body too large."),
    422: _error("Invalid request: each field at fault is named."),
    429: _error("Too many requests: wait a minute."),
}
"""Error statuses every desk operation declares (routers' ``responses=``), all with the body ``ErrorBody``."""


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrganisationIn(_In):
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["hospital", "desk", "research", "company", "other"] = "hospital"


class AccountIn(_In):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,119}$", description="Unique login name.")
    organisation: str = Field(min_length=1, description="Name of a registered organisation.")
    role: Role
    end_date: date = Field(description="Mandatory last day of validity (at most 3 years ahead).")


class NodeIn(_In):
    node_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    organisation: str = Field(min_length=1, description="Name of a registered organisation.")
    public_key: str = Field(min_length=40, max_length=64, description="Base64 of the raw Ed25519 public key.")
    hospital_name: str = ""
    territory: str = ""


class RunIn(_In):
    project: str = Field(min_length=1, description="Reference of an approved project, e.g. RAIH-2026-0001.")
    nodes: list[str] | None = Field(None, description="Nodes to run on; default: every node of the approval.")
    params: dict[str, Any] = Field({}, description="Changes to the approved parameters, within their bounds.")


class RunOut(BaseModel):
    id: str
    project_id: int
    approval_id: str | None
    started_by: str
    status: str
    algorithm_id: str
    algorithm_version: str
    code_hash: str
    params: dict[str, Any]
    nodes: list[str]
    rounds: int
    current_round: int
    error: str | None
    result: dict[str, Any] | None
    privacy: dict[str, Any] | None = Field(None, description="What the run spends at each node: epsilon, delta, "
                                                              "release by release, against the approval.")
    created_at: datetime
    finished_at: datetime | None
    released_at: datetime | None = None
    held: bool = Field(False, description="Completed but not yet released: outputs are withheld from the holder.")
    left_out: dict[str, str] = Field({}, description="Hospitals left out by the feasibility stage (fewer than "
                                                     "k_min patients), with the reason in plain words; no count.")
    notes: dict[str, list[str]] = Field({}, description="Hospitals that took part with an outcome class under k_min "
                                                        "in a split: their own figures for it are withheld.")

    model_config = ConfigDict(from_attributes=True)


class ReleaseIn(_In):
    comment: str = Field("", max_length=5_000, description="What you checked.")
