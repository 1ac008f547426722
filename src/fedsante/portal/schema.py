"""The documented schema of the portal's JSON twins (served at /schemas/portal.json, described in docs/portal.md).

Each model forbids unknown fields, so a twin that grows a field without this schema growing too fails
its test.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_ID = "fedsante-portal/1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ProjectSummary(_Strict):
    reference: str = Field(description="Registry reference, e.g. RAIH-2026-0001.")
    title: str
    status: str = Field(description="submitted, in_review, changes_requested, approved, rejected, running, "
                                    "completed, results_released or archived.")
    purpose: str = Field(description="Purpose category (EHDS Art. 53).")
    organisation: str = Field(description="The project holder's organisation.")
    hospitals: list[str] = Field(description="Node ids of the hospitals whose data are requested.")
    territories: list[str]
    lay_summary_fr: str
    lay_summary_en: str
    submitted_at: str | None = Field(description="ISO 8601 date and time the project was created.")
    updated_at: str | None


class Figures(_Strict):
    projects: int
    projects_by_status: dict[str, int]
    hospitals: int
    runs: int
    runs_released: int
    epsilon_spent_max: float = Field(description="The largest privacy budget a hospital has spent on its dataset.")
    kg_co2e_released_runs: float | None = Field(description="Carbon of the released runs (None if none measured).")


class Home(_Strict):
    schema_: Literal["fedsante-portal/1"] = Field(alias="schema")
    page: Literal["home"]
    figures: Figures
    latest_projects: list[ProjectSummary]


class ProjectList(_Strict):
    schema_: Literal["fedsante-portal/1"] = Field(alias="schema")
    page: Literal["projects"]
    filters: dict[str, str] = Field(description="q, status, purpose, hospital, territory as applied.")
    count: int
    projects: list[ProjectSummary]
    choices: dict[str, list[str]] = Field(description="The values each filter can take.")


class Review(_Strict):
    version: int
    decision: str = Field(description="comment, approve, changes_requested or reject.")
    at: str
    reviewer_organisation: str
    public_reason: str = Field(description="The reason the reviewer chose to publish ('' if none); a reviewer's "
                                           "comment to the applicant is never public.")


class Event(_Strict):
    at: str
    from_: str | None = Field(alias="from")
    to: str
    reason: str


class Acceptance(_Strict):
    hospital: str
    decision: str = Field(description="accepted or declined, signed by the hospital's node key.")
    at: str
    signature: str


class Approval(_Strict):
    id: str
    sha256: str = Field(description="SHA-256 of the canonical JSON of the document.")
    signature: str = Field(description="Ed25519 signature of the canonical document, base64.")
    desk_key_id: str | None
    document: dict = Field(description="The signed approval document (fedsante.federation.approval).")
    expires_at: str | None
    created_at: str | None
    acceptances: list[Acceptance]


class RunView(_Strict):
    id: str
    status: str
    hospitals: list[str]
    rounds: int
    algorithm: str
    code_hash: str
    started_at: str | None
    finished_at: str | None
    released_at: str | None = Field(description="When two reviewers released its outputs; None while held.")
    epsilon: float | None
    delta: float | None
    mechanism: str | None
    error: str | None
    kg_co2e: float | None = Field(description="Carbon of the run (released runs whose hospitals measured it).")


class CheckView(_Strict):
    id: str
    principle: str
    ok: bool
    outcome: Literal["pass", "fail", "flag"] = Field(
        description="'flag': not a failure, a point the charter asks the reviewers to look at (e.g. sensitive "
                    "variables of the study).")
    message_fr: str
    message_en: str


class CharterChecks(_Strict):
    id: str
    version: str
    checks: list[CheckView]


class ProjectPage(ProjectSummary):
    schema_: Literal["fedsante-portal/1"] = Field(alias="schema")
    page: Literal["project"]
    version: int
    spec: dict = Field(description="The registry record (fedsante.desk.registry.ProjectSpec).")
    charter: CharterChecks = Field(description="The charter's automatic checks on the current version.")
    reviews: list[Review]
    events: list[Event]
    approvals: list[Approval]
    runs: list[RunView]


class HospitalProject(ProjectSummary):
    datasets: list[str]


class CatalogueColumn(_Strict):
    name: str
    type: Literal["numeric", "text"] = Field(description="numeric when every value present is a number, else text.")
    distinct: Literal["<= 20 levels", "many"] = Field(description="How many distinct values, coarsely (no count).")


class CatalogueDataset(_Strict):
    name: str
    description: str
    format: str = Field(description="csv or parquet.")
    columns: list[CatalogueColumn]


class HospitalPage(_Strict):
    schema_: Literal["fedsante-portal/1"] = Field(alias="schema")
    page: Literal["hospital"]
    id: str
    name: str
    territory: str
    accepts_objections: bool
    objections_in_force: int | None = Field(description="Objections applied; None when fewer than k_min.")
    datasets: list[str] = Field(description="Datasets the hospital's node offers, as it published them.")
    catalogue: list[CatalogueDataset] = Field(
        description="Each dataset offered with its columns' names and types, as the node published them: no value, "
                    "no count.")
    projects: list[HospitalProject]


class Key(_Strict):
    key_id: str
    public_key: str
    created_at: str
    retired_at: str | None


class Head(_Strict):
    seq: int | None
    hash: str | None
    reported_at: str | None = None


class Heads(_Strict):
    desk: Head
    nodes: dict[str, Head]


class CheckedApproval(Approval):
    project: str
    problems: list[str] = Field(description="Why the signature or digest does not check out; empty when valid.")


class VerifyPage(_Strict):
    schema_: Literal["fedsante-portal/1"] = Field(alias="schema")
    page: Literal["verify"]
    keys: list[Key]
    audit_heads: Heads
    approvals: list[CheckedApproval]


PAGES: dict[str, type[BaseModel]] = {"home": Home, "projects": ProjectList, "project": ProjectPage,
                                     "hospital": HospitalPage, "verify": VerifyPage}


def json_schema() -> dict:
    """The JSON Schema of every twin, by page."""
    return {"$id": SCHEMA_ID, "pages": {name: model.model_json_schema(by_alias=True) for name, model in PAGES.items()}}
