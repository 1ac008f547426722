"""fedsante.data.mapping: CLI and TOML forms, defaults, and the local report of unusable values."""

from pathlib import Path

import numpy as np
import pytest

from fedsante.data.mapping import Mapping, VariableMapping, load_mapping, mapping_problems, parse_map_option
from fedsante.data.sources import RawTable
from fedsante.data.study import parse_study
from fedsante.common.errors import ConfigError

STUDY = parse_study({
    "id": "trial", "title_fr": "Essai", "title_en": "Trial",
    "outcome": {"variable": "death", "label_fr": "Décès", "label_en": "Death", "type": "binary",
                "positive": ["yes"], "negative": ["no"]},
    "predictors": [
        {"name": "age", "label_fr": "Âge", "label_en": "Age", "type": "numeric", "bounds": [18, 100],
         "justification": "j"},
        {"name": "ethnicity", "label_fr": "Origine", "label_en": "Ethnicity", "type": "categorical",
         "levels": ["white", "black"], "justification": "j"}],
    "split": {"method": "seeded"},
})


def raw_table(**columns: list) -> RawTable:
    n = len(next(iter(columns.values())))
    return RawTable(source="trial.csv", n_rows=n,
                    columns={k: np.array(v, dtype=object) for k, v in columns.items()})


@pytest.mark.parametrize(("text", "expected"), [
    ("age=AGE_YRS", VariableMapping(variable="age", column="AGE_YRS")),
    ("ethnicity=Race:{Black:black,White:white}",
     VariableMapping(variable="ethnicity", column="Race", values={"Black": "black", "White": "white"})),
    ('ethnicity="Race, self-reported":{"Black, African":black,"{x}":white}',
     VariableMapping(variable="ethnicity", column="Race, self-reported",
                     values={"Black, African": "black", "{x}": "white"})),
    ("death=Died:{1.0:yes, 0:no}", VariableMapping(variable="death", column="Died", values={"1": "yes", "0": "no"})),
])
def test_parse_map_option_forms(text: str, expected: VariableMapping) -> None:
    assert parse_map_option(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("age", r"expected 'variable=Column'"),
    ("age=AGE:{a:b", r"must end with '\}'"),
    ("age=AGE:{a,b}", r"'local:study' pairs separated by ','"),
    ('age="AGE', r"a double quote is not closed"),
])
def test_parse_map_option_refuses_bad_forms_with_an_example(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_map_option(text)


def test_load_mapping_reads_both_toml_forms(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "map.toml"
    path.write_text('[map]\nage = "AGE_YRS"\n[map.ethnicity]\ncolumn = "Race"\n'
                    'values = {Black = "black", White = "white"}\n', encoding="utf-8")

    # Execute
    mapping = load_mapping(path)

    # Assert
    assert mapping.get("age") == VariableMapping(variable="age", column="AGE_YRS")
    assert mapping.get("ethnicity").values == {"Black": "black", "White": "white"}


def test_load_mapping_names_the_bad_entry(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "map.toml"
    path.write_text('[map.ethnicity]\ncolum = "Race"\n', encoding="utf-8")

    # Execute / Assert
    message = r"map\.toml: the \[map\] table is invalid: map\.ethnicity\.column: Field required; map\.ethnicity\.colum"
    with pytest.raises(ConfigError, match=message):
        load_mapping(path)


def test_for_study_defaults_unmapped_variables_to_same_name_columns() -> None:
    # Execute
    mapping = Mapping(variables=[parse_map_option("age=AGE_YRS")]).for_study(STUDY)

    # Assert
    assert [(m.variable, m.column) for m in mapping.variables] == [
        ("death", "death"), ("age", "AGE_YRS"), ("ethnicity", "ethnicity")]


def test_for_study_refuses_a_variable_the_study_does_not_have() -> None:
    with pytest.raises(ConfigError, match=r"The mapping names 'weight', not variables of study 'trial'"):
        Mapping(variables=[parse_map_option("weight=W")]).for_study(STUDY)


def test_a_variable_mapped_twice_is_refused() -> None:
    with pytest.raises(ValueError, match=r"variables \['age'\] are mapped more than once"):
        Mapping(variables=[parse_map_option("age=A"), parse_map_option("age=B")])


def test_unmapped_values_are_reported_with_column_value_and_count() -> None:
    # Prepare
    raw = raw_table(patient_id=["a", "b", "c", "d"], death=["yes", "no", "dead", "no"],
                    age=["63", "old", "old", None], Race=["White", "Black", "Asian", "White"])
    mapping = Mapping(variables=[parse_map_option("ethnicity=Race:{White:white,Black:black}")])

    # Execute
    problems = mapping_problems(raw, STUDY, mapping)

    # Assert
    assert [(p.variable, p.column, p.value, p.count) for p in problems] == [
        ("death", "death", "dead", 1), ("age", "age", "old", 2), ("ethnicity", "Race", "Asian", 1)]
    assert problems[1].message.startswith("2 rows of column 'age' hold 'old', but 'age' expects a number")
    assert all(p.file == "trial.csv" for p in problems)


def test_a_mapped_column_absent_from_the_file_is_reported() -> None:
    # Prepare
    raw = raw_table(patient_id=["a"], death=["yes"], age=["63"], ethnicity=["white"])

    # Execute
    problems = mapping_problems(raw, STUDY, Mapping(variables=[parse_map_option("age=AGE_YRS")]))

    # Assert
    assert len(problems) == 1 and problems[0].value is None
    assert "column 'AGE_YRS' (study variable 'age') is not in the file" in problems[0].message
