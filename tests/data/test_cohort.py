"""fedsante.data.cohort: a non-heart trial compiled end to end, encoding, filters, splits, exclusions."""

from pathlib import Path

import numpy as np
import pytest

from fedsante.data.cohort import compile_cohort, seeded_fraction
from fedsante.data.mapping import Mapping, parse_map_option
from fedsante.data.sources import DatasetDeclaration, RawTable, read_table
from fedsante.data.study import parse_study
from fedsante.common.errors import DataError

TRIAL_CSV = """\
SUBJ,AGE_YRS,Race,Treated,Died,Arm
s1,63,White,Y,Yes,A
s2,71.0,Black,N,No,B
s3,,White,Y,No,A
s4,45,,N,Yes,A
s5,17,Black,Y,No,B
s6,80,Black,N,Yes,C
"""


def trial_study(**changes) -> dict:
    data = {
        "id": "trial", "title_fr": "Essai", "title_en": "Trial",
        "outcome": {"variable": "death", "label_fr": "Décès", "label_en": "Death", "type": "binary",
                    "positive": ["Yes"]},
        "predictors": [
            {"name": "age", "label_fr": "Âge", "label_en": "Age", "type": "numeric", "bounds": [18, 100],
             "missing": "level", "justification": "confounder"},
            {"name": "ethnicity", "label_fr": "Origine", "label_en": "Ethnicity", "type": "categorical",
             "levels": ["white", "black"], "missing": "level", "justification": "equity"},
            {"name": "treated", "label_fr": "Traité", "label_en": "Treated", "type": "binary",
             "justification": "exposure"}],
        "fairness": [
            {"variable": "ethnicity", "label_fr": "Origine", "label_en": "Ethnicity", "groups": [
                {"name": "white", "label_fr": "Blancs", "label_en": "White", "levels": ["white"]},
                {"name": "black", "label_fr": "Noirs", "label_en": "Black", "levels": ["black"]}]},
            {"variable": "age", "name": "age_band", "label_fr": "Âge", "label_en": "Age", "groups": [
                {"name": "<65", "label_fr": "<65", "label_en": "<65", "low": 0, "high": 65},
                {"name": ">=65", "label_fr": ">=65", "label_en": ">=65", "low": 65, "high": 200}]}],
        "split": {"column": "arm", "train": ["A"], "test": ["B"]},
    }
    data.update(changes)
    return data


TRIAL_MAPPING = Mapping(variables=[
    parse_map_option("death=Died"), parse_map_option("age=AGE_YRS"), parse_map_option("arm=Arm"),
    parse_map_option("ethnicity=Race:{White:white,Black:black}"),
    parse_map_option("treated=Treated:{N:0,Y:1}"),
])


@pytest.fixture
def trial(tmp_path: Path) -> RawTable:
    path = tmp_path / "trial.csv"
    path.write_text(TRIAL_CSV, encoding="utf-8")
    return read_table(DatasetDeclaration(name="trial", path=str(path), id_column="SUBJ"))


def test_trial_csv_compiles_end_to_end(trial: RawTable) -> None:
    # Execute
    cohort = compile_cohort(trial, parse_study(trial_study()), TRIAL_MAPPING, dataset="trial")

    # Assert: s6 (arm C) is not in a split; missing age and ethnicity become explicit levels
    assert cohort.feature_names == ("age", "age=missing", "ethnicity=black", "ethnicity=missing", "treated")
    assert cohort.patient_id.tolist() == ["s1", "s2", "s3", "s4", "s5"]
    assert cohort.X.tolist() == [
        [63, 0, 0, 0, 1], [71, 0, 1, 0, 0], [59, 1, 0, 0, 1], [45, 0, 0, 1, 0], [17, 0, 1, 0, 1]]
    assert cohort.y.tolist() == [1, 0, 0, 1, 0]
    assert cohort.split.tolist() == ["train", "test", "train", "train", "test"]
    assert cohort.excluded == {"unmapped value": 0, "missing value": 0, "filter": 0, "not in a split": 1}
    assert cohort.groups["ethnicity"].tolist() == [0, 1, 0, -1, 1]
    assert cohort.groups["age_band"].tolist() == [0, 1, -1, 0, 0]
    assert cohort.bounds[0].tolist() == [18, 0, 0, 0, 0]


def test_rows_with_a_missing_drop_variable_are_counted_then_filters_apply(trial: RawTable) -> None:
    # Prepare: age and ethnicity now drop missing rows; adults only
    data = trial_study(filters=[{"variable": "age", "op": ">=", "value": 18}])
    for predictor in data["predictors"]:
        predictor["missing"] = "drop"

    # Execute
    cohort = compile_cohort(trial, parse_study(data), TRIAL_MAPPING, dataset="trial")

    # Assert
    assert cohort.patient_id.tolist() == ["s1", "s2"]
    assert cohort.excluded == {"unmapped value": 0, "missing value": 2, "filter": 1, "not in a split": 1}
    assert cohort.feature_names == ("age", "ethnicity=black", "treated")


@pytest.mark.parametrize(("rule", "kept"), [
    ({"variable": "ethnicity", "op": "==", "value": "black"}, ["s2", "s5"]),
    ({"variable": "ethnicity", "op": "not in", "value": ["black"]}, ["s1", "s3"]),
    ({"variable": "age", "op": "in", "value": [45, 63]}, ["s1", "s4"]),
    ({"variable": "age", "op": "<", "value": 50}, ["s4", "s5"]),
    ({"variable": "death", "op": "==", "value": "Yes"}, ["s1", "s4"]),
])
def test_filters_apply_to_mapped_parsed_values_and_never_keep_missing(trial, rule: dict, kept: list) -> None:
    # Execute
    cohort = compile_cohort(trial, parse_study(trial_study(filters=[rule])), TRIAL_MAPPING, dataset="trial")

    # Assert
    assert cohort.patient_id.tolist() == kept


def test_seeded_split_is_deterministic_and_independent_of_row_order() -> None:
    # Prepare
    study = parse_study(trial_study(split={"method": "seeded", "test_fraction": 0.3, "seed": 7}, fairness=[]))
    ids = [f"p{i}" for i in range(200)]
    columns = {"patient_id": ids, "death": ["Yes", "No"] * 100, "age": ["50"] * 200,
               "ethnicity": ["white"] * 200, "treated": ["0"] * 200}
    raw = RawTable(source="t", n_rows=200, columns={k: np.array(v, dtype=object) for k, v in columns.items()})
    order = np.random.default_rng(0).permutation(200)
    shuffled = RawTable(source="t", n_rows=200, columns={k: v[order] for k, v in raw.columns.items()})

    # Execute
    first = compile_cohort(raw, study, Mapping(), dataset="t")
    second = compile_cohort(shuffled, study, Mapping(), dataset="t")

    # Assert
    by_id = dict(zip(second.patient_id, second.split))
    assert all(by_id[pid] == s for pid, s in zip(first.patient_id, first.split))
    assert 40 <= (first.split == "test").sum() <= 80
    assert first.split[0] == ("test" if seeded_fraction(7, "p0") < 0.3 else "train")


def test_unmapped_values_raise_with_column_value_and_count(trial: RawTable) -> None:
    # Prepare: no value map for Race
    mapping = Mapping(variables=[*TRIAL_MAPPING.variables[:3], parse_map_option("ethnicity=Race"),
                                 TRIAL_MAPPING.variables[4]])

    # Execute / Assert
    with pytest.raises(DataError, match=r"3 rows of column 'Race' hold 'Black', but 'ethnicity' expects") as info:
        compile_cohort(trial, parse_study(trial_study()), mapping, dataset="trial")
    assert any("column 'Race', value 'White' (2 rows)" in e for e in info.value.errors)


def test_unmapped_values_may_be_excluded_and_counted(trial: RawTable) -> None:
    # Prepare
    mapping = Mapping(variables=[*TRIAL_MAPPING.variables[:3], parse_map_option("ethnicity=Race:{White:white}"),
                                 TRIAL_MAPPING.variables[4]])

    # Execute
    cohort = compile_cohort(trial, parse_study(trial_study()), mapping, dataset="trial", on_unmapped="exclude")

    # Assert
    assert cohort.patient_id.tolist() == ["s1", "s3", "s4"]
    assert cohort.excluded["unmapped value"] == 3


def test_nothing_left_is_an_error(trial: RawTable) -> None:
    # Prepare
    study = parse_study(trial_study(filters=[{"variable": "age", "op": ">", "value": 99}]))

    # Execute / Assert
    with pytest.raises(DataError, match=r"no row is left for study 'trial' \(excluded: 6 filter\)"):
        compile_cohort(trial, study, TRIAL_MAPPING, dataset="trial")


def test_part_without_and_feasibility(trial: RawTable) -> None:
    # Prepare
    cohort = compile_cohort(trial, parse_study(trial_study()), TRIAL_MAPPING, dataset="trial")

    # Execute
    smaller = cohort.without({"s1", "nobody"})
    X_test, y_test = cohort.part("test")

    # Assert
    assert X_test.shape == (2, 5) and y_test.tolist() == [0, 0]
    assert smaller.patient_id.tolist() == ["s2", "s3", "s4", "s5"]
    assert smaller.groups["ethnicity"].tolist() == [1, 0, -1, 1]
    feasibility = cohort.feasibility()
    assert feasibility.rows == 5 and feasibility.by_split == {"train": 3, "test": 2}
    assert feasibility.by_class == {"train": {"0": 1, "1": 2}, "test": {"0": 2, "1": 0}}
    with pytest.raises(ValueError, match=r"split must be 'train' or 'test'\. Got 'valid' instead\."):
        cohort.part("valid")


def test_continuous_and_time_to_event_outcomes() -> None:
    # Prepare
    columns = {"patient_id": ["a", "b"], "days": ["10", "25.5"], "dead": ["1", "0"], "x": ["1", "2"]}
    raw = RawTable(source="t", n_rows=2, columns={k: np.array(v, dtype=object) for k, v in columns.items()})
    predictor = {"name": "x", "label_fr": "X", "label_en": "X", "type": "numeric", "bounds": [0, 5],
                 "justification": "j"}
    survival = parse_study({"id": "s", "title_fr": "S", "title_en": "S", "predictors": [predictor],
                            "outcome": {"variable": "survival", "label_fr": "S", "label_en": "S",
                                        "type": "time_to_event", "time_variable": "days",
                                        "event_variable": "dead", "event_values": ["1"]},
                            "split": {"method": "seeded"}})

    # Execute
    cohort = compile_cohort(raw, survival, Mapping(), dataset="t")

    # Assert
    assert cohort.y.tolist() == [10, 25.5] and cohort.event.tolist() == [1, 0]
    assert cohort.feasibility().by_class == {}
