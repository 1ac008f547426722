"""fedsante.data.study: the study schema, its validation messages and its encoded feature layout."""

import copy
from pathlib import Path

import pytest

from fedsante.data.study import StudySchema, canonical, load_study, parse_study
from fedsante.common.errors import ConfigError


def study_dict() -> dict:
    """A small valid study: mortality from age, ethnicity and an on-treatment flag."""
    return {
        "id": "trial", "title_fr": "Essai", "title_en": "Trial",
        "outcome": {"variable": "death", "label_fr": "Décès", "label_en": "Death", "type": "binary",
                    "positive": ["Yes"]},
        "predictors": [
            {"name": "age", "label_fr": "Âge", "label_en": "Age", "type": "numeric", "unit": "ans",
             "bounds": [18, 100], "missing": "level", "justification": "confounder"},
            {"name": "ethnicity", "label_fr": "Origine", "label_en": "Ethnicity", "type": "categorical",
             "levels": ["white", "black", "other"], "missing": "level", "justification": "equity",
             "sensitive": True},
            {"name": "treated", "label_fr": "Traité", "label_en": "Treated", "type": "binary",
             "levels": ["No", "Yes"], "justification": "exposure"},
        ],
        "fairness": [{"variable": "ethnicity", "label_fr": "Origine", "label_en": "Ethnicity", "groups": [
            {"name": "white", "label_fr": "Blancs", "label_en": "White", "levels": ["white"]},
            {"name": "black", "label_fr": "Noirs", "label_en": "Black", "levels": ["black"]}]}],
        "filters": [{"variable": "age", "op": ">=", "value": 18}],
        "split": {"method": "seeded", "test_fraction": 0.25, "seed": 42},
    }


def problems_of(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_study(data)
    return info.value.errors


@pytest.mark.parametrize(("raw", "expected"), [
    (" 4.0 ", "4"), ("1", "1"), ("1.0", "1"), ("-0.0", "0"), ("2.5", "2.5"), (" Yes ", "Yes"), ("nan", "nan"),
    ("1e3", "1000"), ("inf", "inf"), ("", ""),
])
def test_canonical_strips_and_writes_integers_without_decimals(raw: str, expected: str) -> None:
    assert canonical(raw) == expected


def test_feature_names_follow_declared_order_with_missing_levels() -> None:
    # Execute
    study = parse_study(study_dict())

    # Assert
    assert study.feature_names() == (
        "age", "age=missing", "ethnicity=black", "ethnicity=other", "ethnicity=missing", "treated")
    lower, upper = study.feature_bounds()
    assert lower.tolist() == [18, 0, 0, 0, 0, 0] and upper.tolist() == [100, 1, 1, 1, 1, 1]


def test_feature_labels_in_french_and_english() -> None:
    # Execute
    study = parse_study(study_dict())

    # Assert
    assert study.feature_labels("fr") == (
        "Âge (ans)", "Âge : manquant", "Origine : black", "Origine : other", "Origine : manquant", "Traité")
    assert study.feature_labels("en")[:3] == ("Age (ans)", "Age: missing", "Ethnicity: black")


def test_variables_sensitive_and_defaults() -> None:
    # Execute
    study = parse_study(study_dict())

    # Assert
    assert study.variables() == ("death", "age", "ethnicity", "treated")
    assert study.sensitive_variables() == ("ethnicity",)
    assert study.fairness[0].name == "ethnicity"
    assert study.predictor("ethnicity").reference == "white"


def test_binary_defaults_to_levels_0_1_and_levels_are_canonical() -> None:
    # Prepare
    data = study_dict()
    data["predictors"][2] = {"name": "treated", "label_fr": "T", "label_en": "T", "type": "binary",
                             "justification": "j"}
    data["outcome"]["positive"] = ["1.0", " 2"]

    # Execute
    study = parse_study(data)

    # Assert
    assert study.predictor("treated").levels == ["0", "1"]
    assert study.outcome.positive == ["1", "2"]


def test_sha256_is_stable_and_changes_with_the_study() -> None:
    # Prepare
    changed = study_dict()
    changed["split"]["seed"] = 43

    # Execute / Assert
    assert parse_study(study_dict()).sha256() == parse_study(study_dict()).sha256()
    assert parse_study(study_dict()).sha256() != parse_study(changed).sha256()
    assert len(parse_study(study_dict()).sha256()) == 64


def test_numeric_without_bounds_and_unknown_reference_are_both_reported() -> None:
    # Prepare
    data = study_dict()
    del data["predictors"][0]["bounds"]
    data["predictors"][1]["reference"] = "asian"

    # Execute
    problems = problems_of(data)

    # Assert
    assert problems[0].startswith("predictors.0: numeric variable 'age' needs public 'bounds")
    assert problems[1].startswith("predictors.1: reference 'asian' of 'ethnicity' is not one of its levels")


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["predictors"][0].update(bounds=[100, 18]), r"'bounds' of 'age' must be finite with low < high"),
    (lambda d: d["predictors"][1].update(levels=["a"], reference="a"), r"needs at least 2 levels"),
    (lambda d: d["predictors"][2].update(levels=["a", "b", "c"]), r"needs exactly 2 levels"),
    (lambda d: d["predictors"][1].update(levels=["a", "1", "1.0"], reference="a"), r"repeat a value"),
    (lambda d: d["outcome"].update(positive=[]), r"a binary outcome needs 'positive'"),
    (lambda d: d["predictors"][0].update(justification=""), r"predictors\.0\.justification"),
    (lambda d: d["predictors"][0].update(name="Age"), r"predictors\.0\.name: String should match pattern"),
    (lambda d: d["predictors"].append(dict(d["predictors"][0])), r"'age' is declared more than once"),
    (lambda d: d["predictors"][0].update(name="death"), r"'death' is the outcome"),
    (lambda d: d["predictors"][0].update(colour="red"), r"predictors\.0\.colour: Extra inputs are not permitted"),
    (lambda d: d.update(split={"method": "seeded", "test_fraction": 1.5}), r"'test_fraction' must be in \(0, 1\)"),
    (lambda d: d.update(split={"column": "arm", "train": ["A"], "test": ["A"]}), r"in both 'train' and 'test'"),
])
def test_invalid_study_names_the_field_and_the_fix(change, message: str) -> None:
    # Prepare
    data = study_dict()
    change(data)

    # Execute / Assert
    with pytest.raises(ConfigError, match=message):
        parse_study(data)


def test_overlapping_numeric_groups_are_refused() -> None:
    # Prepare
    data = study_dict()
    data["fairness"].append({"variable": "age", "label_fr": "Âge", "label_en": "Age", "groups": [
        {"name": "young", "label_fr": "j", "label_en": "y", "low": 18, "high": 50},
        {"name": "old", "label_fr": "v", "label_en": "o", "low": 45, "high": 100}]})

    # Execute / Assert
    assert problems_of(data) == ["fairness.1.groups: groups 'young' and 'old' overlap (45 < 50); "
                                 "bands are low <= x < high and must not overlap"]


def test_overlapping_or_unknown_levels_in_groups_are_refused() -> None:
    # Prepare
    data = study_dict()
    data["fairness"][0]["groups"][1]["levels"] = ["black", "white", "asian"]

    # Execute
    problems = problems_of(data)

    # Assert
    assert "fairness.0.groups: level 'white' is in groups 'white' and 'black'; groups must not overlap" in problems
    assert any("'asian' is not a level of 'ethnicity'" in p for p in problems)


def test_groups_must_suit_the_variable_type() -> None:
    # Prepare
    data = study_dict()
    data["fairness"][0]["groups"][0] = {"name": "x", "label_fr": "x", "label_en": "x", "low": 0, "high": 1}

    # Execute / Assert
    with pytest.raises(ConfigError, match=r"fairness\.0\.groups\.0: 'ethnicity' is categorical; give 'levels'"):
        parse_study(data)


def test_filter_on_an_undeclared_variable_is_refused() -> None:
    # Prepare
    data = study_dict()
    data["filters"] = [{"variable": "weight", "op": ">", "value": 50}]

    # Execute / Assert
    with pytest.raises(ConfigError, match=r"filters\.0\.variable: 'weight' is not a declared predictor or outcome"):
        parse_study(data)


@pytest.mark.parametrize(("rule", "message"), [
    ({"variable": "ethnicity", "op": "<", "value": "b"}, r"'<' needs a numeric variable"),
    ({"variable": "ethnicity", "op": "in", "value": ["asian"]}, r"\['asian'\] not levels of 'ethnicity'"),
    ({"variable": "age", "op": "==", "value": "old"}, r"'age' is numeric; compare it with finite numbers"),
    ({"variable": "age", "op": "in", "value": 3}, r"op 'in' needs a list value"),
])
def test_filter_value_must_suit_the_variable(rule: dict, message: str) -> None:
    # Prepare
    data = study_dict()
    data["filters"] = [rule]

    # Execute / Assert
    with pytest.raises(ConfigError, match=message):
        parse_study(data)


def test_time_to_event_outcome_needs_its_variables() -> None:
    # Prepare
    data = copy.deepcopy(study_dict())
    data["outcome"] = {"variable": "survival", "label_fr": "S", "label_en": "S", "type": "time_to_event"}

    # Execute / Assert
    with pytest.raises(ConfigError, match=r"needs 'time_variable', 'event_variable' and 'event_values'"):
        parse_study(data)
    data["outcome"].update(time_variable="days", event_variable="dead", event_values=["1"])
    assert parse_study(data).variables()[:2] == ("days", "dead")


def test_column_split_adds_the_split_variable() -> None:
    # Prepare
    data = study_dict()
    data["split"] = {"column": "arm", "train": ["A"], "test": ["B"]}

    # Execute
    study = parse_study(data)

    # Assert
    assert study.split.method == "column"
    assert study.variables()[-1] == "arm"


def test_load_study_reads_a_study_table_or_a_top_level_study(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "project.toml"
    path.write_text(
        '[study]\nid = "s"\ntitle_fr = "S"\ntitle_en = "S"\n'
        '[study.outcome]\nvariable = "y"\nlabel_fr = "Y"\nlabel_en = "Y"\ntype = "continuous"\n'
        '[[study.predictors]]\nname = "x"\nlabel_fr = "X"\nlabel_en = "X"\ntype = "numeric"\n'
        'bounds = [0, 1]\njustification = "j"\n'
        '[study.split]\nmethod = "seeded"\n', encoding="utf-8")

    # Execute
    study = load_study(path)

    # Assert
    assert isinstance(study, StudySchema) and study.split.test_fraction == 0.25 and study.split.seed == 42


def test_load_study_names_the_file_when_invalid(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "bad.toml"
    path.write_text('[study]\nid = "s"\n', encoding="utf-8")

    # Execute / Assert
    with pytest.raises(ConfigError, match=r"bad\.toml: the study is invalid \(5 problems\): title_fr: Field required"):
        load_study(path)
    with pytest.raises(ConfigError, match=r"Study file .*nowhere\.toml does not exist"):
        load_study(tmp_path / "nowhere.toml")
