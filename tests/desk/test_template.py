"""`fedsante project template`: a complete project file, every parameter of the algorithm, a study to copy."""

import re
import tomllib
from datetime import date

import pytest
from typer.testing import CliRunner

from fedsante.algorithms.catalogue import get_algorithm
from fedsante.cli import app
from fedsante.common.errors import NotFound
from fedsante.desk.charter import failed, flagged, load_charter, run_checks
from fedsante.desk.registry import ProjectSpec
from fedsante.desk.template import project_template

TODAY = date(2026, 11, 25)


@pytest.fixture(scope="module")
def template() -> str:
    return project_template("logreg")


def own_study(template: str) -> str:
    """The template with `study = "heart"` removed and the commented [study] table uncommented."""
    start = template.index("\n# [study]\n")
    head = re.sub(r'(?m)^study = "heart".*$', "", template[:start])
    return head + re.sub(r"(?m)^# ?", "", template[start:])


def test_the_template_is_a_project_that_passes_every_charter_check(template: str) -> None:
    spec = ProjectSpec.model_validate(tomllib.loads(template))
    results = run_checks(spec, load_charter(), today=TODAY)

    assert failed(results) == []
    assert spec.study is not None and spec.study.id == "heart" and spec.parameters == {}
    assert [r.id for r in flagged(results)] == ["sensitive_flagged"]


def test_every_parameter_of_the_algorithm_is_listed_with_its_default_and_meaning(template: str) -> None:
    model = get_algorithm("logreg").params_model

    for name, info in model.model_fields.items():
        assert re.search(rf"(?m)^# {name}( = |: unset by default$)", template), name
    assert "# rounds = 15\n#     Integer, 1 <= rounds <= 1000. Number of FedAvg rounds." in template
    assert '# strategy = "fedavg"\n#     One of \'fedavg\', \'fedprox\'.' in template
    assert "# noise_multiplier: unset by default\n#     Number (or unset), 0 <= noise_multiplier <= 10000." in template
    assert "Set by the desk when a run starts." in template


def test_an_uncommented_parameter_is_taken(template: str) -> None:
    spec = ProjectSpec.model_validate(tomllib.loads(template.replace("# rounds = 15\n", "rounds = 20\n")))
    assert spec.parameters == {"rounds": 20}
    assert failed(run_checks(spec, load_charter(), today=TODAY)) == []


def test_the_commented_study_uncommented_is_a_study_that_passes_every_check(template: str) -> None:
    spec = ProjectSpec.model_validate(tomllib.loads(own_study(template)))
    results = run_checks(spec, load_charter(), today=TODAY)

    assert failed(results) == []
    study = spec.study
    assert study is not None and study.id == "mi-mortality"
    assert (study.outcome.type, study.outcome.positive) == ("binary", ["Yes"])
    age = study.predictor("age")
    assert age is not None and (age.bounds, age.unit) == ((18, 110), "years")
    sex = study.predictor("sex")
    assert sex is not None and (sex.levels, sex.reference, sex.sensitive) == (["female", "male"], "female", True)
    assert [a.name for a in study.fairness] == ["sex"] and len(study.filters) == 1
    assert (study.split.method, study.split.seed) == ("seeded", 42)
    assert flagged(results)[0].message_en == "variables marked sensitive: sex; fairness attributes: sex (female, male)."


def test_an_unknown_algorithm_is_refused_with_the_catalogue() -> None:
    with pytest.raises(NotFound, match=r"Unknown algorithm 'deep-net'.*logreg"):
        project_template("deep-net")


def test_the_command_prints_the_template_for_the_chosen_algorithm(template: str) -> None:
    printed = CliRunner().invoke(app, ["project", "template", "--algorithm", "logreg"])
    unknown = CliRunner().invoke(app, ["project", "template", "--algorithm", "deep-net"])

    assert printed.exit_code == 0 and printed.stdout == template
    assert unknown.exit_code == 1
