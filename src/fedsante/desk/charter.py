"""The ethics charter as data, and its automatic checks on a project's registry record.

The charter (``charters/grand_est.toml``) lists principles; each has automatic checks, run here on a
:class:`~fedsante.desk.registry.ProjectSpec`, and questions that reviewers answer. Each check kind is
one small pure function registered in :data:`CHECKS`. Failure messages name the fields to fix.

>>> charter = load_charter()
>>> charter.id, charter.version, len(charter.digest)
('grand-est', '1.1', 64)
>>> [r.id for r in failed(run_checks(ProjectSpec(), charter))][:3]
['registry_complete', 'prohibited_purposes_attested', 'territorial_scope_declared']

A check declared with ``severity = "flag"`` never fails: what it finds is shown to reviewers as a
flag (``outcome == "flag"``) and does not block submission.

>>> [r.message_en for r in flagged(run_checks(ProjectSpec(study="heart"), charter))]
['variables marked sensitive: sex; fairness attributes: sex (female, male), age (<45, 45-54, 55-64, >=65).']
"""

from __future__ import annotations

import re

import hashlib
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from fedsante.desk import charter_checks as study_checks
from fedsante.desk.charter_checks import Problem
from fedsante.desk.registry import ProjectSpec, Report, algorithm_params
from fedsante.common.errors import ConfigError, DataError, field_problems
from fedsante.algorithms.catalogue import catalogue, get_algorithm

CheckFn = Callable[[ProjectSpec, dict[str, Any], "Charter", date], list[Problem]]

_STRICT = ConfigDict(extra="forbid")
Id = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]
Text = Annotated[str, Field(min_length=1)]


def _known_kind(kind: str) -> str:
    if kind not in CHECKS:
        raise ValueError(f"unknown check kind {kind!r}; known kinds: {', '.join(CHECKS)}")
    return kind


@dataclass(frozen=True)
class CharterPolicy:
    """Numeric rules of the charter, applied by the checks, the desk and the nodes."""

    __pydantic_config__ = _STRICT
    k_min_floor: Annotated[int, Field(ge=1)]
    epsilon_max: Annotated[float, Field(gt=0)]
    delta_max: Annotated[float, Field(ge=0, lt=1)]
    min_reviewers: Annotated[int, Field(ge=1)]
    approval_validity_days: Annotated[int, Field(ge=1)]
    max_retention_years: Annotated[int, Field(ge=1)]
    fairness_gap_threshold: Annotated[float, Field(gt=0, le=1)]
    direct_identifiers: tuple[Annotated[str, Field(min_length=1)], ...]


@dataclass(frozen=True)
class Statement:
    """A bilingual item with an id: a prohibited purpose, or a question reviewers answer."""

    __pydantic_config__ = _STRICT
    id: Id
    fr: Text
    en: Text


ProhibitedPurpose = Question = Statement


@dataclass(frozen=True)
class Check:
    """An automatic check: its kind names a function of :data:`CHECKS`; messages say what passes.

    ``severity`` is ``"fail"`` (what the function finds blocks submission) or ``"flag"`` (it is shown to
    reviewers and blocks nothing).
    """

    __pydantic_config__ = _STRICT
    id: Id
    kind: Annotated[str, AfterValidator(_known_kind)]
    message_fr: Text
    message_en: Text
    severity: Literal["fail", "flag"] = "fail"
    parameters: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Principle:
    __pydantic_config__ = _STRICT
    id: Id
    name_fr: Text
    name_en: Text
    summary_fr: Text
    summary_en: Text
    checks: tuple[Check, ...] = ()
    questions: tuple[Question, ...] = ()


@dataclass(frozen=True)
class Charter:
    """A versioned charter; ``digest`` is the SHA-256 of its file, which approvals cite."""

    __pydantic_config__ = _STRICT
    id: Id
    version: Text
    title_fr: Text
    title_en: Text
    source: Text
    policy: CharterPolicy
    prohibited_purposes: tuple[ProhibitedPurpose, ...]
    principles: tuple[Principle, ...]
    digest: str = ""


@dataclass(frozen=True)
class CheckResult:
    """One check on one project: ``outcome`` is pass, fail or flag; ``ok`` is False only for fail."""

    id: str
    principle: str
    ok: bool
    message_en: str
    message_fr: str
    outcome: Literal["pass", "fail", "flag"] = "pass"


# --- check parameters --------------------------------------------------------------------------


class _NoParams(BaseModel):
    model_config = _STRICT


class _FieldsParams(_NoParams):
    fields: list[str] = Field(min_length=1)

    @field_validator("fields")
    @classmethod
    def _spec_fields(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in ProjectSpec.model_fields]
        if unknown:
            raise ValueError(f"not ProjectSpec fields: {', '.join(unknown)}")
        return names


class _ReportsParams(_NoParams):
    reports: list[Report] = Field(min_length=1)


# --- the checks --------------------------------------------------------------------------------


def _empty(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, list | dict | tuple) and not value)


def required_fields(spec: ProjectSpec, params: dict, charter: Charter, today: date) -> list[Problem]:
    missing = ", ".join(n for n in params["fields"] if _empty(getattr(spec, n)))
    return [(f"missing required field(s): {missing}", f"champ(s) obligatoire(s) non renseigné(s) : {missing}")] \
        if missing else []


def prohibited_purposes(spec: ProjectSpec, params: dict, charter: Charter, today: date) -> list[Problem]:
    known = [p.id for p in charter.prohibited_purposes]
    missing = ", ".join(p for p in known if p not in spec.prohibited_purposes_absent)
    unknown = ", ".join(p for p in spec.prohibited_purposes_absent if p not in known)
    problems = []
    if missing:
        problems.append((f"prohibited_purposes_absent lacks the attestation(s): {missing}",
                         f"prohibited_purposes_absent ne contient pas l'attestation : {missing}"))
    if unknown:
        problems.append((f"prohibited_purposes_absent names unknown purpose(s): {unknown} "
                         f"(the charter's are: {', '.join(known)})",
                         f"prohibited_purposes_absent cite des finalités inconnues : {unknown} "
                         f"(celles de la charte : {', '.join(known)})"))
    return problems


def authorisation(spec: ProjectSpec, params: dict, charter: Charter, today: date) -> list[Problem]:
    if spec.formality == "authorisation" and not spec.authorisation_number.strip():
        return [("formality is 'authorisation' but authorisation_number is empty: give the CNIL authorisation "
                 "number", "formality vaut « authorisation » mais authorisation_number est vide : indiquez le "
                 "numéro d'autorisation de la CNIL")]
    return []


def privacy_policy(spec: ProjectSpec, params: dict, charter: Charter, today: date) -> list[Problem]:
    policy, problems = charter.policy, []
    if spec.k_min < policy.k_min_floor:
        problems.append((f"k_min is {spec.k_min}, below the charter's floor of {policy.k_min_floor}",
                         f"k_min vaut {spec.k_min}, sous le plancher de la charte ({policy.k_min_floor})"))
    for name, value, low, high in (("epsilon", spec.epsilon, "0 <", policy.epsilon_max),
                                   ("delta", spec.delta, "0 <=", policy.delta_max)):
        if value is None:
            problems.append((f"{name} is missing: the charter requires {low} {name} <= {high}",
                             f"{name} n'est pas renseigné : la charte exige {low} {name} <= {high}"))
        elif value > high or (value <= 0 if name == "epsilon" else value < 0):
            problems.append((f"{name} is {value}, outside the charter's policy ({low} {name} <= {high})",
                             f"{name} vaut {value}, hors de la politique de la charte ({low} {name} <= {high})"))
    return problems


def minimisation(spec: ProjectSpec, params: dict, charter: Charter, today: date) -> list[Problem]:
    problems = []
    if not spec.data_categories:
        problems.append(("data_categories is empty: list the data categories requested",
                         "data_categories est vide : listez les catégories de données demandées"))
    for category in spec.data_categories:
        words = set(re.findall(r"[a-z0-9_]+", category.lower().replace(" ", "_"))) | set(
            re.findall(r"[a-z0-9]+", category.lower()))
        hits = [i for i in charter.policy.direct_identifiers if i.lower() in words]
        if hits:
            problems.append((f"data_categories has {category!r}, a direct identifier ({', '.join(hits)})",
                             f"data_categories contient {category!r}, un identifiant direct ({', '.join(hits)})"))
    if not spec.population.strip():
        problems.append(("population is empty: describe the inclusion criteria and period",
                         "population est vide : décrivez les critères d'inclusion et la période"))
    return problems


def territories(spec: ProjectSpec, params: dict, charter: Charter, today: date) -> list[Problem]:
    if not spec.claims_regional_value:
        return []
    problems = []
    places = len({t.strip().casefold() for t in spec.territories if t.strip()})
    if places < 2:
        problems.append((f"claims_regional_value is true but territories has {places} distinct territory; "
                         "at least 2 are needed", f"claims_regional_value est vrai mais territories ne cite que "
                         f"{places} territoire distinct ; il en faut au moins 2"))
    nodes = len({d.node_id for d in spec.datasets})
    if nodes < 2:
        problems.append((f"claims_regional_value is true but datasets has {nodes} distinct node_id; at least 2 "
                         "are needed", f"claims_regional_value est vrai mais datasets ne couvre que {nodes} "
                         "node_id distinct ; il en faut au moins 2"))
    return problems


def reports_requested(spec: ProjectSpec, params: dict, charter: Charter, today: date) -> list[Problem]:
    missing = ", ".join(r for r in params["reports"] if r not in spec.reports_requested)
    return [(f"reports_requested lacks: {missing}", f"reports_requested ne contient pas : {missing}")] \
        if missing else []


def algorithm(spec: ProjectSpec, params: dict, charter: Charter, today: date) -> list[Problem]:
    if spec.algorithm not in catalogue():
        known = ", ".join(sorted(catalogue()))
        return [(f"algorithm {spec.algorithm!r} is not in the catalogue (available: {known})",
                 f"algorithm {spec.algorithm!r} n'est pas au catalogue (disponibles : {known})")]
    try:
        values = algorithm_params(spec).model_dump()
    except DataError as exc:
        return [(line, f"paramètre invalide : {line}") for line in exc.errors]
    model = get_algorithm(spec.algorithm).params_model
    numeric = [n for n, f in model.model_fields.items() if f.annotation in (int, float)]
    problems = []
    for name, (lower, upper) in spec.parameter_bounds.items():
        if name not in numeric:
            problems.append((f"parameter_bounds.{name}: not a numeric parameter of {spec.algorithm!r} "
                             f"(numeric parameters: {', '.join(numeric)})",
                             f"parameter_bounds.{name} : pas un paramètre numérique de {spec.algorithm!r} "
                             f"(paramètres numériques : {', '.join(numeric)})"))
        elif not lower <= values[name] <= upper:
            problems.append((f"parameter_bounds.{name}: the parameter value {values[name]} lies outside "
                             f"[{lower}, {upper}]", f"parameter_bounds.{name} : la valeur du paramètre "
                             f"{values[name]} est hors de [{lower}, {upper}]"))
    return problems


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def retention(spec: ProjectSpec, params: dict, charter: Charter, today: date) -> list[Problem]:
    end, years = spec.retention_end_date, charter.policy.max_retention_years
    if end is None:
        return [("retention_end_date is missing: give the date by which data extracts and models are deleted",
                 "retention_end_date n'est pas renseignée : indiquez la date de suppression des extraits et "
                 "des modèles")]
    problems = []
    if spec.planned_end_date is not None and end <= spec.planned_end_date:
        problems.append((f"retention_end_date ({end}) must be after planned_end_date ({spec.planned_end_date})",
                         f"retention_end_date ({end}) doit être postérieure à planned_end_date "
                         f"({spec.planned_end_date})"))
    start = spec.start_date or today
    latest = _add_years(start, years)
    if end > latest:
        origin = ("start_date", "start_date") if spec.start_date else ("today", "aujourd'hui")
        problems.append((f"retention_end_date ({end}) is more than {years} years after {origin[0]} ({start}); "
                         f"the latest allowed is {latest}",
                         f"retention_end_date ({end}) dépasse de plus de {years} ans {origin[1]} ({start}) ; "
                         f"la date la plus tardive permise est {latest}"))
    return problems


def carbon(spec: ProjectSpec, params: dict, charter: Charter, today: date) -> list[Problem]:
    value = spec.expected_carbon_kgco2e
    if value is None or value < 0:
        return [("expected_carbon_kgco2e is missing: estimate the project's carbon footprint in kgCO2e (>= 0)",
                 "expected_carbon_kgco2e n'est pas renseigné : estimez l'empreinte carbone du projet en kg "
                 "d'équivalent CO2 (>= 0)")]
    return []


CHECKS: dict[str, tuple[CheckFn, type[BaseModel]]] = {
    "required_fields": (required_fields, _FieldsParams),
    "prohibited_purposes": (prohibited_purposes, _NoParams),
    "authorisation": (authorisation, _NoParams),
    "privacy_policy": (privacy_policy, _NoParams),
    "minimisation": (minimisation, _NoParams),
    "territories": (territories, _NoParams),
    "reports_requested": (reports_requested, _ReportsParams),
    "algorithm": (algorithm, _NoParams),
    "retention": (retention, _NoParams),
    "carbon": (carbon, _NoParams),
    "study_defined": (study_checks.study_defined, _NoParams),
    "justifications": (study_checks.justifications, _NoParams),
    "outcome_type": (study_checks.outcome_type, _NoParams),
    "sensitive_variables": (study_checks.sensitive_variables, _NoParams),
    "fairness_attributes": (study_checks.fairness_attributes, _NoParams),
}
"""Every check kind a charter may use: its function and the model of its parameters."""


# --- loading and running -----------------------------------------------------------------------


def load_charter(path: str | Path | None = None) -> Charter:
    """Read and strictly validate a charter file (default: the packaged Grand-Est charter)."""
    resource = Path(path) if path is not None else files("fedsante.desk") / "charters" / "grand_est.toml"
    try:
        raw = resource.read_bytes()
        data = tomllib.loads(raw.decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"Charter file {resource} cannot be read: {exc.strerror or exc}.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Charter file {resource} is not valid TOML: {exc}.") from None
    problems = ["digest: computed from the file, it cannot be declared in it"] if "digest" in data else []
    try:
        charter = TypeAdapter(Charter).validate_python(data)
    except ValidationError as exc:
        problems += field_problems(exc)
    else:
        for principle in charter.principles:
            for check in principle.checks:
                try:
                    CHECKS[check.kind][1].model_validate(check.parameters)
                except ValidationError as exc:
                    problems += field_problems(exc, f"principles.{principle.id}.checks.{check.id}.parameters.")
        for what, ids in (("principle", [p.id for p in charter.principles]),
                          ("check", [c.id for p in charter.principles for c in p.checks]),
                          ("question", [q.id for p in charter.principles for q in p.questions]),
                          ("prohibited purpose", [p.id for p in charter.prohibited_purposes])):
            problems += [f"duplicate {what} id {i!r}" for i, n in Counter(ids).items() if n > 1]
    if problems:
        raise ConfigError(f"Charter file {resource} is invalid: " + "; ".join(problems), errors=problems)
    return replace(charter, digest=hashlib.sha256(raw).hexdigest())


def run_checks(spec: ProjectSpec, charter: Charter, *, today: date | None = None) -> list[CheckResult]:
    """Every check of every principle, in charter order; ``today`` anchors date rules without a start date."""
    day = today or date.today()
    results = []
    for principle in charter.principles:
        for check in principle.checks:
            problems = CHECKS[check.kind][0](spec, check.parameters, charter, day)
            outcome = check.severity if problems else "pass"
            results.append(CheckResult(
                id=check.id, principle=principle.id, ok=outcome != "fail", outcome=outcome,
                message_en="; ".join(en for en, _ in problems) + "." if problems else check.message_en,
                message_fr=" ; ".join(fr for _, fr in problems) + "." if problems else check.message_fr))
    return results


def failed(results: Iterable[CheckResult]) -> list[CheckResult]:
    """The results that did not pass (flags pass)."""
    return [r for r in results if not r.ok]


def flagged(results: Iterable[CheckResult]) -> list[CheckResult]:
    """The results that pass with a flag for reviewers."""
    return [r for r in results if r.outcome == "flag"]
