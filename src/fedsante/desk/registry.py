"""The project registry record: what a project holder declares, and what the public registry shows.

:class:`ProjectSpec` holds the fields of a public project entry (standards §3.3) plus what the desk
needs to review and approve a federated run. Every field has an empty default so that drafts
validate; whether a project is complete is decided by the charter's checks, not by this type.

>>> spec = ProjectSpec(title="Prédire la maladie coronarienne", epsilon=1.0)
>>> spec.algorithm, spec.k_min, spec.lay_summary_fr
('logreg', 11, '')
>>> algorithm_params(spec).rounds
15
"""

from __future__ import annotations

import json
import tomllib
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, ValidationError, field_validator

from fedsante.data.bundled import bundled_study
from fedsante.data.study import StudySchema

from fedsante.common.errors import ConfigError, DataError, field_problems
from fedsante.algorithms.catalogue import get_algorithm
from fedsante.algorithms.base import AlgorithmParams


Report = Literal["explanation", "fairness", "calibration", "carbon"]


class Controller(BaseModel):
    """A data controller (or joint controller, or processor) of the project."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="Legal name of the organisation.")
    type: str = Field("", description="Entity type in the HDH typology, e.g. 'Etablissement public de santé', "
                                      "'Université', 'INSERM', 'Entreprise'.")
    role: Literal["controller", "joint_controller", "processor"] = Field(
        "controller", description="GDPR role: controller, joint_controller or processor.")
    dpo_contact: str = Field("", description="Generic contact of the data protection officer (DPO).")


class DatasetRequest(BaseModel):
    """A dataset requested at one hospital node."""

    model_config = ConfigDict(extra="forbid")

    node_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$", description="Id of the hospital node at the desk.")
    dataset: str = Field(min_length=1, description="Name of the dataset at that node.")
    justification: str = Field("", description="Why this dataset is needed for the objectives.")


class ProjectSpec(BaseModel):
    """A project as its holder declares it; everything here is public registry content."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field("", max_length=300, description="Project title.")
    lay_summary_fr: str = Field("", max_length=1500, description="Plain-language summary in French (≤ 1,500 chars).")
    lay_summary_en: str = Field("", max_length=1500, description="Plain-language summary in English (≤ 1,500 chars).")
    purpose_category: Literal["", "research", "study", "evaluation", "indicator_production",
                              "algorithm_development"] = Field(
        "", description="Purpose category (HDH 'Finalité de l'étude'; EHDS Art. 53(1)).")
    objectives: str = Field("", description="Objectives pursued (HDH 'Objectifs poursuivis').")
    public_interest_justification: str = Field("", description="Why the project serves the public interest.")
    medical_domains: list[str] = Field([], description="Medical domains investigated, e.g. 'cardiologie'.")
    controllers: list[Controller] = Field([], description="Data controllers, joint controllers and processors.")
    legal_basis: str = Field("", description="GDPR legal basis, e.g. 'Art. 6(1)(e) and 9(2)(j) GDPR'.")
    formality: Literal["", "MR-004", "MR-007", "MR-008", "authorisation", "EDS"] = Field(
        "", description="French formality: a CNIL reference methodology, an authorisation, or EDS conformity.")
    authorisation_number: str = Field("", description="CNIL authorisation number (required if formality is "
                                                      "'authorisation').")
    cesrees_opinion: str = Field("", description="Reference and date of the CESREES opinion, if any.")
    dpia_reference: str = Field("", description="Reference of the data protection impact assessment (DPIA).")
    datasets: list[DatasetRequest] = Field([], description="Datasets requested, one entry per hospital node.")
    data_categories: list[str] = Field([], description="Categories of data requested (variables, OMOP domains); "
                                                       "no direct identifier.")
    population: str = Field("", description="Population studied: inclusion criteria and period.")
    study: StudySchema | None = Field(
        None, description="The study schema: outcome, predictors with labels, bounds and justifications, fairness "
                          "attributes, filters and split (docs/data.md); or the name of a bundled study, e.g. 'heart'.")
    algorithm: str = Field("logreg", description="Id of the algorithm in the catalogue.")
    parameters: dict[str, Any] = Field({}, description="Parameters of the algorithm; omitted ones take their "
                                                       "defaults.")
    parameter_bounds: dict[str, tuple[FiniteFloat, FiniteFloat]] = Field(
        {}, description="Allowed [lower, upper] range of numeric parameters a run may use.")
    epsilon: float | None = Field(None, gt=0, description="Differential-privacy budget epsilon for the project.")
    delta: float | None = Field(None, ge=0, lt=1, description="Differential-privacy delta for the project.")
    k_min: int = Field(11, ge=1, description="Smallest count allowed in anything leaving a hospital.")
    territories: list[str] = Field([], description="Territories the data come from and the model is meant for.")
    claims_regional_value: bool = Field(False, description="Whether the project claims value for the whole region.")
    patient_involvement: str = Field("", description="How patients or users were involved, and what changed.")
    equity_statement: str = Field("", description="Territories and subgroups whose results will be analysed.")
    expected_carbon_kgco2e: float | None = Field(None, ge=0, description="Expected carbon footprint in kgCO2e.")
    start_date: date | None = Field(None, description="Planned start of processing.")
    planned_end_date: date | None = Field(None, description="Planned end of processing.")
    retention_end_date: date | None = Field(None, description="Date by which data extracts and models are deleted.")
    prohibited_purposes_absent: list[str] = Field(
        [], description="Ids of the charter's prohibited purposes that the holder attests are not pursued.")
    reports_requested: list[Report] = Field(
        [], description="Reports to compute: explanation, fairness, calibration, carbon.")
    funding: str = Field("", description="Funding of the project.")
    conflicts_of_interest: str = Field("", description="Declared conflicts of interest.")

    @field_validator("study", mode="before")
    @classmethod
    def _bundled_study(cls, value: object) -> object:
        return bundled_study(value) if isinstance(value, str) else value

    @field_validator("parameter_bounds")
    @classmethod
    def _ordered_bounds(cls, bounds: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for name, (lower, upper) in bounds.items():
            if lower > upper:
                raise ValueError(f"{name}: lower bound {lower} is above upper bound {upper}")
        return bounds


def load_project_file(path: str | Path) -> ProjectSpec:
    """Read a project from a TOML (``.toml``) or JSON (``.json``) file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise ConfigError(f"Project file {path}: unknown extension {suffix or '(none)'!r}; use .toml or .json.")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"Project file {path} does not exist.") from None
    except OSError as exc:
        raise ConfigError(f"Project file {path} cannot be read: {exc.strerror or exc}.") from None
    try:
        data = tomllib.loads(raw.decode("utf-8")) if suffix == ".toml" else json.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Project file {path} is not valid {suffix[1:].upper()}: {exc}.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Project file {path} must hold a table of fields, not {type(data).__name__}.")
    try:
        return ProjectSpec.model_validate(data)
    except ValidationError as exc:
        problems = field_problems(exc)
        raise ConfigError(f"Project file {path} is invalid: " + "; ".join(problems), errors=problems) from None


def algorithm_params(spec: ProjectSpec) -> AlgorithmParams:
    """The validated parameters of the spec's algorithm (defaults filled in).

    Raises the catalogue's NotFound for an unknown algorithm, DataError naming each bad parameter.
    """
    model = get_algorithm(spec.algorithm).params_model
    try:
        return model.model_validate(spec.parameters)
    except ValidationError as exc:
        problems = field_problems(exc, "parameters.")
        raise DataError(f"Invalid parameters for algorithm {spec.algorithm!r}: " + "; ".join(problems),
                        errors=problems) from None
