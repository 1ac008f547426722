"""The project registry record, the Grand-Est charter as data, and the charter's automatic checks."""

import copy
import hashlib
import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from fedsante.data.bundled import bundled_study
from fedsante.desk.app import create_app
from fedsante.desk.charter import CHECKS, Charter, failed, flagged, load_charter, run_checks
from fedsante.desk.registry import (Controller, DatasetRequest, ProjectSpec, algorithm_params,
                                   load_project_file)
from fedsante.common.errors import ConfigError, DataError, NotFound
from fedsante.algorithms.catalogue import catalogue
from fedsante.desk.settings import DeskSettings
from fedsante.sim.lifecycle import EXAMPLE_PROJECT, HOLDER_ORG

EXAMPLE = EXAMPLE_PROJECT
CHARTER_TEXT = (files("fedsante.desk") / "charters" / "grand_est.toml").read_text(encoding="utf-8")
TODAY = date(2026, 11, 25)
HEART = bundled_study("heart").model_dump(mode="json")
FLAG_KINDS = {"sensitive_variables"}
PRINCIPLES = {"ethics_transparency", "territorial_equity", "explainability", "user_involvement",
              "environmental_impact", "data_protection"}


@pytest.fixture(scope="module")
def charter() -> Charter:
    return load_charter()


@pytest.fixture(scope="module")
def example() -> ProjectSpec:
    return load_project_file(EXAMPLE)


def changed(spec: ProjectSpec, **update: Any) -> ProjectSpec:
    """A validated copy of ``spec`` with some fields changed."""
    return ProjectSpec.model_validate({**spec.model_dump(), **update})


def heart(*edits: Callable[[dict], Any]) -> dict:
    """The bundled heart study as a dict, with each edit applied to a copy."""
    study = copy.deepcopy(HEART)
    for edit in edits:
        edit(study)
    return study


def blank_justification(*indices: int) -> Callable[[dict], None]:
    return lambda study: [study["predictors"][i].update(justification="  ") for i in indices]


def continuous_outcome(study: dict) -> None:
    study["outcome"] = {**study["outcome"], "type": "continuous", "positive": [], "negative": []}


def no_fairness(study: dict) -> None:
    study["fairness"] = []


def not_sensitive(study: dict) -> None:
    for predictor in study["predictors"]:
        predictor["sensitive"] = False


# --- the example and the checks ------------------------------------------------------------------


def test_the_example_passes_every_check(example: ProjectSpec, charter: Charter) -> None:
    results = run_checks(example, charter, today=TODAY)

    assert failed(results) == []
    assert [r.id for r in results] == [c.id for p in charter.principles for c in p.checks]
    assert {c.kind for p in charter.principles for c in p.checks} == set(CHECKS)


def test_an_empty_draft_is_a_valid_spec_that_fails_the_checks(charter: Charter) -> None:
    results = run_checks(ProjectSpec(), charter, today=TODAY)
    assert {r.id for r in failed(results)} >= {"registry_complete", "privacy_budget", "retention_bounded"}


BREAKS = [  # (check kind, change to the example, the check that must fail, what its message must name)
    ("required_fields", {"lay_summary_en": "  "}, "registry_complete", "lay_summary_en"),
    ("required_fields", {"controllers": []}, "registry_complete", "controllers"),
    ("required_fields", {"equity_statement": ""}, "territorial_scope_declared", "equity_statement"),
    ("required_fields", {"patient_involvement": ""}, "involvement_described", "patient_involvement"),
    ("prohibited_purposes", {"prohibited_purposes_absent": ["product_promotion", "insurance_selection",
                                                            "detrimental_decisions", "employment_decisions"]},
     "prohibited_purposes_attested", "reidentification"),
    ("prohibited_purposes", {"prohibited_purposes_absent": ["product_promotion", "insurance_selection",
                                                            "detrimental_decisions", "employment_decisions",
                                                            "reidentification", "marketing"]},
     "prohibited_purposes_attested", "marketing"),
    ("authorisation", {"formality": "authorisation"}, "formality_documented", "authorisation_number"),
    ("privacy_policy", {"k_min": 5}, "privacy_budget", "k_min"),
    ("privacy_policy", {"epsilon": 20.0}, "privacy_budget", "epsilon"),
    ("privacy_policy", {"epsilon": None}, "privacy_budget", "epsilon"),
    ("privacy_policy", {"delta": 1e-3}, "privacy_budget", "delta"),
    ("minimisation", {"data_categories": ["age in years", "Patient NAME"]}, "data_minimisation", "data_categories"),
    ("minimisation", {"data_categories": []}, "data_minimisation", "data_categories"),
    ("minimisation", {"population": ""}, "data_minimisation", "population"),
    ("territories", {"territories": ["Ohio, USA", " ohio, usa "]}, "regional_coverage", "territories"),
    ("territories", {"datasets": [{"node_id": "va", "dataset": "va"}, {"node_id": "va", "dataset": "va2"}]},
     "regional_coverage", "datasets"),
    ("reports_requested", {"reports_requested": ["explanation", "calibration", "carbon"]},
     "explanation_fairness_reports", "fairness"),
    ("reports_requested", {"reports_requested": ["explanation", "fairness"]}, "carbon_report_requested", "carbon"),
    ("algorithm", {"algorithm": "deep-net"}, "catalogued_algorithm", "algorithm"),
    ("algorithm", {"parameters": {"rounds": 0}}, "catalogued_algorithm", "parameters.rounds"),
    ("algorithm", {"parameters": {"bogus": 1}}, "catalogued_algorithm", "parameters.bogus"),
    ("algorithm", {"parameter_bounds": {"rounds": [1, 10]}}, "catalogued_algorithm", "parameter_bounds.rounds"),
    ("algorithm", {"parameter_bounds": {"scaling": [0, 1]}}, "catalogued_algorithm", "parameter_bounds.scaling"),
    ("retention", {"retention_end_date": None}, "retention_bounded", "retention_end_date"),
    ("retention", {"retention_end_date": date(2028, 6, 30)}, "retention_bounded", "planned_end_date"),
    ("retention", {"retention_end_date": date(2030, 1, 5)}, "retention_bounded", "start_date"),
    ("carbon", {"expected_carbon_kgco2e": None}, "carbon_estimated", "expected_carbon_kgco2e"),
    ("study_defined", {"study": None}, "study_defined", "study"),
    ("justifications", {"study": heart(blank_justification(2, 3))}, "variables_justified", "trestbps, chol"),
    ("outcome_type", {"study": heart(continuous_outcome)}, "outcome_supported", "'continuous'"),
    ("fairness_attributes", {"study": heart(no_fairness)}, "fairness_declared", "study.fairness"),
    ("fairness_attributes", {"parameters": {"fairness_attributes": "sex,ethnicity"}}, "fairness_declared",
     "ethnicity"),
]


@pytest.mark.parametrize(("kind", "update", "check_id", "names"), BREAKS,
                         ids=[f"{b[0]}-{b[3]}" for b in BREAKS])
def test_a_minimal_break_fails_exactly_that_check(example: ProjectSpec, charter: Charter, kind: str,
                                                  update: dict, check_id: str, names: str) -> None:
    problems = failed(run_checks(changed(example, **update), charter, today=TODAY))

    assert [r.id for r in problems] == [check_id]
    assert {c.kind for p in charter.principles for c in p.checks if c.id == check_id} == {kind}
    assert names in problems[0].message_en and names in problems[0].message_fr


def test_every_check_kind_has_a_break_or_is_a_flag() -> None:
    assert {b[0] for b in BREAKS} | FLAG_KINDS == set(CHECKS)
    assert not {b[0] for b in BREAKS} & FLAG_KINDS


# --- the checks on the study -----------------------------------------------------------------------


def test_the_example_declares_a_justified_supported_fair_study(example: ProjectSpec, charter: Charter) -> None:
    results = {r.id: r for r in run_checks(example, charter, today=TODAY)}

    for check_id in ("study_defined", "variables_justified", "outcome_supported", "fairness_declared"):
        assert results[check_id].outcome == "pass" and results[check_id].ok, check_id
    assert results["study_defined"].principle == results["variables_justified"].principle == "data_protection"


def test_a_missing_study_says_how_to_declare_one(example: ProjectSpec, charter: Charter) -> None:
    (result,) = failed(run_checks(changed(example, study=None), charter, today=TODAY))

    assert result.outcome == "fail"
    for message in (result.message_en, result.message_fr):
        assert 'study = "heart"' in message and "[study]" in message and "docs/data.md" in message


def test_an_unsupported_outcome_names_the_outcome_type_and_the_algorithm(example: ProjectSpec,
                                                                         charter: Charter) -> None:
    (result,) = failed(run_checks(changed(example, study=heart(continuous_outcome)), charter, today=TODAY))

    assert result.id == "outcome_supported"
    for message in (result.message_en, result.message_fr):
        assert "'continuous'" in message and "'logreg'" in message and "binary" in message


def test_no_fairness_attribute_is_needed_without_the_fairness_report(example: ProjectSpec, charter: Charter) -> None:
    spec = changed(example, study=heart(no_fairness), reports_requested=["explanation", "calibration", "carbon"])

    assert [r.id for r in failed(run_checks(spec, charter, today=TODAY))] == ["explanation_fairness_reports"]


def test_sensitive_variables_and_fairness_attributes_are_flagged_not_failed(example: ProjectSpec,
                                                                            charter: Charter) -> None:
    results = run_checks(example, charter, today=TODAY)
    (flag,) = flagged(results)

    assert flag.id == "sensitive_flagged" and flag.outcome == "flag" and flag.ok and flag not in failed(results)
    assert flag.message_en.startswith("variables marked sensitive: sex; fairness attributes: sex (female, male), "
                                      "age (<45")
    assert flag.message_fr.startswith("variables marquées sensibles : sex ; attributs d'équité : sex (female, male)")


def test_a_study_without_sensitive_variables_or_fairness_attributes_has_no_flag(example: ProjectSpec,
                                                                                charter: Charter) -> None:
    spec = changed(example, study=heart(no_fairness, not_sensitive), reports_requested=["explanation", "carbon"],
                   parameters={"fairness_attributes": ""})
    results = {r.id: r for r in run_checks(spec, charter, today=TODAY)}

    assert flagged(results.values()) == []
    assert results["sensitive_flagged"].outcome == "pass"
    assert results["sensitive_flagged"].message_en == next(
        c.message_en for p in charter.principles for c in p.checks if c.id == "sensitive_flagged")


def test_submission_through_the_api_is_refused_naming_the_failing_study_checks(tmp_path: Path) -> None:
    # Prepare: a desk with a holder, and a draft whose study breaks three checks (and is flagged)
    admin = "fst_admin-token-for-charter-tests"
    app = create_app(DeskSettings(data_dir=tmp_path, database_url="sqlite://"), admin_token=admin)
    with TestClient(app) as client:
        as_admin = {"authorization": f"Bearer {admin}"}
        client.post("/api/v1/organisations", json={"name": HOLDER_ORG, "kind": "research"}, headers=as_admin)
        end = (datetime.now(UTC).date() + timedelta(days=60)).isoformat()
        token = client.post("/api/v1/accounts", headers=as_admin, json={
            "name": "holder", "organisation": HOLDER_ORG, "role": "holder", "end_date": end}).json()["token"]
        as_holder = {"authorization": f"Bearer {token}"}
        study = heart(blank_justification(0), continuous_outcome, no_fairness)
        spec = changed(load_project_file(EXAMPLE), study=study).model_dump(mode="json")
        reference = client.post("/api/v1/projects", json=spec, headers=as_holder).json()["reference"]

        # Execute
        refused = client.post(f"/api/v1/projects/{reference}/submit", json={}, headers=as_holder)
        checks = client.get(f"/api/v1/projects/{reference}/checks", headers=as_holder).json()

    # Assert
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert "variables_justified" in error and "age" in error
    assert "outcome_supported" in error and "fairness_declared" in error and "sensitive_flagged" not in error
    outcomes = {c["id"]: c["outcome"] for c in checks["checks"]}
    assert outcomes["variables_justified"] == "fail" and outcomes["sensitive_flagged"] == "flag"
    assert checks["ok"] is False


def test_retention_without_start_date_counts_from_today(example: ProjectSpec, charter: Charter) -> None:
    spec = changed(example, start_date=None, planned_end_date=None, retention_end_date=date(2029, 11, 26))
    (result,) = failed(run_checks(spec, charter, today=TODAY))
    assert result.id == "retention_bounded" and "today" in result.message_en and "aujourd'hui" in result.message_fr
    assert failed(run_checks(spec, charter, today=date(2026, 11, 26))) == []


def test_no_regional_claim_needs_no_second_territory(example: ProjectSpec, charter: Charter) -> None:
    spec = changed(example, claims_regional_value=False, territories=["Ohio, USA"],
                   datasets=[{"node_id": "cleveland", "dataset": "cleveland"}])
    assert failed(run_checks(spec, charter, today=TODAY)) == []


def test_authorisation_with_its_number_passes(example: ProjectSpec, charter: Charter) -> None:
    spec = changed(example, formality="authorisation", authorisation_number="DR-2027-042")
    assert failed(run_checks(spec, charter, today=TODAY)) == []


# --- ProjectSpec and algorithm parameters --------------------------------------------------------


@pytest.mark.parametrize(("data", "field"), [
    ({"titel": "x"}, "titel"),
    ({"k_min": "many"}, "k_min"),
    ({"k_min": 0}, "k_min"),
    ({"epsilon": 0}, "epsilon"),
    ({"delta": 1.5}, "delta"),
    ({"purpose_category": "marketing"}, "purpose_category"),
    ({"formality": "MR-003"}, "formality"),
    ({"datasets": [{"node_id": "Bad Node", "dataset": "x"}]}, "datasets.0.node_id"),
    ({"datasets": [{"node_id": "va", "dataset": "va", "site": "x"}]}, "datasets.0.site"),
    ({"controllers": [{"name": ""}]}, "controllers.0.name"),
    ({"controllers": [{"name": "CHU", "role": "owner"}]}, "controllers.0.role"),
    ({"parameter_bounds": {"rounds": [30, 1]}}, "parameter_bounds"),
    ({"parameter_bounds": {"rounds": [1, float("inf")]}}, "parameter_bounds.rounds.1"),
    ({"reports_requested": ["shap"]}, "reports_requested.0"),
    ({"expected_carbon_kgco2e": -1}, "expected_carbon_kgco2e"),
    ({"start_date": "next year"}, "start_date"),
    ({"title": "x" * 301}, "title"),
    ({"lay_summary_fr": "x" * 1501}, "lay_summary_fr"),
])
def test_project_spec_rejects_bad_input_naming_the_field(data: dict, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ProjectSpec.model_validate(data)
    assert field in {".".join(map(str, e["loc"])) for e in caught.value.errors()}


def test_every_field_is_documented() -> None:
    for model in (ProjectSpec, Controller, DatasetRequest):
        assert all(f.description for f in model.model_fields.values()), model.__name__


def test_algorithm_params_fills_defaults_and_names_bad_parameters(example: ProjectSpec) -> None:
    assert algorithm_params(changed(example, parameters={"rounds": 20})).rounds == 20
    with pytest.raises(DataError, match=r"parameters\.lr") as caught:
        algorithm_params(changed(example, parameters={"lr": -1}))
    assert caught.value.errors[0].startswith("parameters.lr:")
    with pytest.raises(NotFound, match="Unknown algorithm 'deep-net'"):
        algorithm_params(changed(example, algorithm="deep-net"))


def test_every_catalogue_algorithm_has_a_parameters_model() -> None:
    from fedsante.algorithms import AlgorithmParams

    assert all(issubclass(a.params_model, AlgorithmParams) for a in catalogue().values())


# --- project files -------------------------------------------------------------------------------


def test_a_json_project_file_loads_like_the_toml_one(example: ProjectSpec, tmp_path: Path) -> None:
    path = tmp_path / "project.json"
    path.write_text(example.model_dump_json(), encoding="utf-8")
    assert load_project_file(path) == example


@pytest.mark.parametrize(("name", "text", "pattern"), [
    ("absent.toml", None, r"absent\.toml does not exist"),
    ("bad.toml", 'title = "unterminated\n', r"bad\.toml is not valid TOML"),
    ("bad.json", '{"title": ', r"bad\.json is not valid JSON"),
    ("list.json", "[1, 2]", r"list\.json must hold a table of fields"),
    ("unknown.toml", 'titel = "x"\n', r"unknown\.toml is invalid: titel: Extra inputs are not permitted"),
    ("types.toml", 'k_min = "eleven"\nepsilon = -1\n', r"types\.toml is invalid: epsilon: .*; k_min: "),
    ("project.yaml", "title: x\n", r"project\.yaml: unknown extension '\.yaml'; use \.toml or \.json"),
])
def test_project_file_errors_name_the_file_and_field(tmp_path: Path, name: str, text: str | None,
                                                     pattern: str) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=pattern):
        load_project_file(path)


# --- the charter file ----------------------------------------------------------------------------


def test_the_charter_is_versioned_and_hashed(charter: Charter) -> None:
    assert (charter.id, charter.version) == ("grand-est", "1.1")
    assert charter.digest == hashlib.sha256(CHARTER_TEXT.encode("utf-8")).hexdigest()
    policy = charter.policy
    assert (policy.k_min_floor, policy.epsilon_max, policy.delta_max, policy.min_reviewers) == (11, 10.0, 1e-5, 2)
    assert (policy.approval_validity_days, policy.max_retention_years, policy.fairness_gap_threshold) == (365, 3, 0.1)
    assert {"name", "nir", "ins", "address", "birth_date"} <= set(policy.direct_identifiers)


def test_a_custom_charter_file_loads_with_its_own_digest(tmp_path: Path) -> None:
    path = tmp_path / "charter.toml"
    path.write_text(CHARTER_TEXT.replace('version = "1.1"', 'version = "1.2"'), encoding="utf-8")
    custom = load_charter(path)
    assert custom.version == "1.2" and custom.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert custom.digest != load_charter().digest


@pytest.mark.parametrize(("old", "new", "pattern"), [
    ('kind = "carbon"', 'kind = "carbon_offset"', r"unknown check kind 'carbon_offset'"),
    ("k_min_floor = 11\n", "", r"policy\.k_min_floor: Field required"),
    ("epsilon_max = 10.0", "epsilon_max = -1.0", r"policy\.epsilon_max: Input should be greater than 0"),
    ("min_reviewers = 2", "min_reviewers = 2\nreviewers_max = 5", r"policy\.reviewers_max: Unexpected keyword"),
    ('fields = ["patient_involvement"]', 'fields = ["patient_involvment"]',
     r"principles\.user_involvement\.checks\.involvement_described\.parameters\.fields: .*patient_involvment"),
    ('reports = ["carbon"]', 'reports = ["co2"]', r"carbon_report_requested\.parameters\.reports\.0"),
    ('id = "carbon_estimated"', 'id = "privacy_budget"', r"duplicate check id 'privacy_budget'"),
    ('id = "grand-est"', 'id = "grand-est"\ndigest = "abc"', r"digest: computed from the file"),
    ('title_fr = "Charte', 'title_fr = "Charte\n', r"is not valid TOML"),
])
def test_a_broken_charter_is_refused_naming_the_problem(tmp_path: Path, old: str, new: str, pattern: str) -> None:
    assert old in CHARTER_TEXT
    path = tmp_path / "broken.toml"
    path.write_text(CHARTER_TEXT.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.toml") as caught:
        load_charter(path)
    assert any(re.search(pattern, line) for line in [caught.value.message, *caught.value.errors])


def test_a_missing_charter_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.toml cannot be read"):
        load_charter(tmp_path / "nowhere.toml")


def test_the_six_principles_are_all_present(charter: Charter) -> None:
    assert {p.id for p in charter.principles} == PRINCIPLES


def test_every_principle_is_bilingual_and_has_a_check_or_question(charter: Charter) -> None:
    for principle in charter.principles:
        assert principle.name_fr and principle.name_en and principle.summary_fr and principle.summary_en
        assert principle.checks or principle.questions, principle.id
        for item in (*principle.checks, *principle.questions):
            assert item.id


def french_texts(charter: Charter) -> list[str]:
    texts = [charter.title_fr, *(p.fr for p in charter.prohibited_purposes)]
    for p in charter.principles:
        texts += [p.name_fr, p.summary_fr, *(c.message_fr for c in p.checks), *(q.fr for q in p.questions)]
    return texts


def test_french_texts_are_finished(charter: Charter, example: ProjectSpec) -> None:
    results = run_checks(ProjectSpec(), charter, today=TODAY) + run_checks(example, charter, today=TODAY)
    for text in french_texts(charter) + [r.message_fr for r in results]:
        assert text.strip() and "TODO" not in text.upper() and "XXX" not in text, text
    assert any(ch in "".join(french_texts(charter)) for ch in "éèàç")


def test_charter_results_serialise_for_the_api(example: ProjectSpec, charter: Charter) -> None:
    results = run_checks(example, charter, today=TODAY)
    assert json.loads(json.dumps([vars(r) for r in results]))[0]["principle"] == "ethics_transparency"
