"""Request and response bodies of the desk API (pydantic)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrganisationIn(_In):
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["hospital", "desk", "research", "company", "other"] = "hospital"


class NodeIn(_In):
    node_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    organisation: str = Field(min_length=1, description="Name of a registered organisation.")
    public_key: str = Field(min_length=40, max_length=64, description="Base64 of the raw Ed25519 public key.")
    hospital_name: str = ""
    territory: str = ""


class ProjectIn(_In):
    title: str = Field(min_length=3, max_length=300)
    organisation: str = Field(min_length=1)


class RunIn(_In):
    project_id: int
    nodes: list[str] = Field(min_length=1)
    algorithm: str = "logreg"
    params: dict[str, Any] = {}


class RunOut(BaseModel):
    id: str
    project_id: int
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
    created_at: datetime
    finished_at: datetime | None

    model_config = ConfigDict(from_attributes=True)
