"""fedsante.data.heart: the bundled hospitals and a hospital's own CSV, with bad input refused by name."""

from pathlib import Path

import numpy as np
import pytest

from fedsante.common.errors import DataError
from fedsante.data.heart import FEATURES, HOSPITALS, load_csv, load_hospital

HEADER = "patient_id,age,sex,trestbps,chol,fbs,thalach,exang,oldpeak,cp,restecg,num,split"
ROW_P1 = "p1,63,1,145,233,1,150,0,2.3,4,1,2,train"
ROW_P2 = "p2,50,0,120,200,0,140,1,0.5,1,0,0,test"
ROW_P3 = "p3,41,0,130,204,0,172,0,1.4,2,2,0,train"


def write_csv(tmp_path: Path, *lines: str, name: str = "site.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- bundled hospitals -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("hospital", "n_train", "n_test"),
    [("cleveland", 199, 104), ("hungarian", 172, 89), ("switzerland", 30, 16), ("va", 85, 45)],
)
def test_bundled_hospital_has_flamby_split_sizes(hospital: str, n_train: int, n_test: int) -> None:
    # Execute
    table = load_hospital(hospital)
    X_train, y_train = table.part("train")
    X_test, y_test = table.part("test")

    # Assert
    assert X_train.shape == (n_train, 13) and X_test.shape == (n_test, 13)
    assert len(y_train) == n_train and len(y_test) == n_test
    assert set(np.unique(table.y)) == {0.0, 1.0}
    assert table.dataset == hospital
    assert len(set(table.patient_id)) == len(table.patient_id)
    assert np.isfinite(table.X).all()


def test_bundled_hospitals_are_the_four_uci_centres() -> None:
    assert HOSPITALS == ("cleveland", "hungarian", "switzerland", "va")
    assert len(FEATURES) == 13


def test_unknown_hospital_names_it_and_lists_the_bundled_ones() -> None:
    with pytest.raises(DataError, match=r"Unknown hospital 'lyon'\. Bundled hospitals: cleveland, hungarian, switzerland, va\."):
        load_hospital("lyon")


def test_part_refuses_an_unknown_split() -> None:
    # Prepare
    table = load_hospital("switzerland")

    # Execute / Assert
    with pytest.raises(ValueError, match=r"split must be 'train' or 'test'\. Got 'valid' instead\."):
        table.part("valid")


# --- a hospital's own CSV, compiled with the heart study like any dataset -----------------------

def test_features_are_the_heart_studys_13() -> None:
    assert FEATURES == ("age", "sex", "trestbps", "chol", "fbs", "thalach", "exang", "oldpeak",
                        "cp=2", "cp=3", "cp=4", "restecg=1", "restecg=2")


def test_valid_csv_loads_and_one_hot_encodes_cp_and_restecg(tmp_path: Path) -> None:
    # Prepare
    path = write_csv(tmp_path, HEADER, ROW_P1, ROW_P2, ROW_P3)

    # Execute
    table = load_csv(path, hospital="h1")

    # Assert: numeric columns, then cp=2, cp=3, cp=4, restecg=1, restecg=2
    assert table.X.tolist() == [
        [63, 1, 145, 233, 1, 150, 0, 2.3, 0, 0, 1, 1, 0],
        [50, 0, 120, 200, 0, 140, 1, 0.5, 0, 0, 0, 0, 0],
        [41, 0, 130, 204, 0, 172, 0, 1.4, 1, 0, 0, 0, 1],
    ]
    assert table.y.tolist() == [1.0, 0.0, 0.0]
    assert table.split.tolist() == ["train", "test", "train"]
    assert table.patient_id.tolist() == ["p1", "p2", "p3"]
    assert table.dataset == "h1" and table.source == str(path) and sum(table.excluded.values()) == 0


def test_csv_columns_may_come_in_any_order(tmp_path: Path) -> None:
    # Prepare: same rows as the header order, columns reversed
    reverse = lambda line: ",".join(reversed(line.split(",")))  # noqa: E731
    path = write_csv(tmp_path, reverse(HEADER), reverse(ROW_P1))

    # Execute
    table = load_csv(path, hospital="h1")

    # Assert
    assert table.X.tolist() == [[63, 1, 145, 233, 1, 150, 0, 2.3, 0, 0, 1, 1, 0]]


def test_missing_column_names_the_column_and_the_file(tmp_path: Path) -> None:
    path = write_csv(tmp_path, HEADER.replace(",thalach", ""), "p1,63,1,145,233,1,0,2.3,4,1,2,train", name="lille.csv")
    with pytest.raises(DataError, match=r"lille\.csv: 1 mapping problem for study 'heart': column 'thalach' "
                                        r"\(study variable 'thalach'\) is not in the file; map the variable"):
        load_csv(path, hospital="h1")


def test_several_missing_columns_are_all_listed(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "patient_id,age,sex", "p1,63,1")
    with pytest.raises(DataError, match=r"10 mapping problems") as info:
        load_csv(path, hospital="h1")
    assert len(info.value.errors) == 10 and all("is not in the file" in e for e in info.value.errors)


def test_line_with_wrong_number_of_fields_names_the_file_and_line(tmp_path: Path) -> None:
    # Prepare: line 3 lacks the split value
    path = write_csv(tmp_path, HEADER, ROW_P1, "p2,50,0,120,200,0,140,1,0.5,1,0,0", name="rennes.csv")

    # Execute / Assert
    with pytest.raises(DataError, match=r"rennes\.csv, line 3: expected 13 values like the header, found 12"):
        load_csv(path, hospital="h1")


@pytest.mark.parametrize("row, message", [
    (ROW_P2.replace(",200,", ",high,"), r"column 'chol' hold 'high', but 'chol' expects a number"),
    ("p1,63,1,145,233,1,150,0,2.3,7,1,2,train", r"column 'cp' hold '7', but 'cp' expects one of the levels 1, 2, 3, 4"),
    ("p1,63,2,145,233,1,150,0,2.3,4,1,2,train", r"column 'sex' hold '2', but 'sex' expects one of the levels 0, 1"),
    ("p1,63,1,145,233,1,150,0,2.3,4,1,-1,train", r"column 'num' hold '-1', but 'num' expects one of 1, 2, 3, 4, 0"),
])
def test_a_value_the_study_cannot_read_is_refused_with_column_value_and_fix(tmp_path: Path, row, message) -> None:
    path = write_csv(tmp_path, HEADER, row)
    with pytest.raises(DataError, match=message + r".*--map"):
        load_csv(path, hospital="h1")


def test_a_split_value_in_neither_list_excludes_the_row_and_counts_it(tmp_path: Path) -> None:
    path = write_csv(tmp_path, HEADER, ROW_P1.replace(",train", ",validation"), ROW_P2)
    table = load_csv(path, hospital="h1")
    assert table.patient_id.tolist() == ["p2"] and table.excluded["not in a split"] == 1


@pytest.mark.parametrize("content, message", [
    (None, r"nowhere\.csv \(dataset 'h1'\) does not exist"),
    ("", r"empty\.csv is empty\. A CSV file needs a header line"),
    (HEADER + "\n", r"has a header but no rows"),
])
def test_missing_empty_or_header_only_files_are_refused(tmp_path: Path, content, message) -> None:
    name = "nowhere.csv" if content is None else "empty.csv"
    if content is not None:
        (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=message):
        load_csv(tmp_path / name, hospital="h1")


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + "\n" + ROW_P1.replace("p1", "pé") + "\n").encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.csv is not UTF-8 text"):
        load_csv(path, hospital="h1")


def test_duplicate_patient_id_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path, HEADER, ROW_P1, ROW_P2.replace("p2,", "p1,"))
    with pytest.raises(DataError, match=r"identifier column 'patient_id' has duplicate values"):
        load_csv(path, hospital="h1")


def test_every_row_with_a_missing_value_is_refused(tmp_path: Path) -> None:
    # Prepare: three spellings of a missing value, one per row
    path = write_csv(
        tmp_path, HEADER,
        ROW_P1.replace(",233,", ",?,"), ROW_P2.replace(",200,", ",,"), ROW_P3.replace(",204,", ",NA,"),
    )

    # Execute / Assert
    with pytest.raises(DataError, match=r"no row is left for study 'heart' \(excluded: 3 missing value\)"):
        load_csv(path, hospital="h1")


def test_rows_with_a_missing_value_are_dropped_and_counted(tmp_path: Path) -> None:
    path = write_csv(tmp_path, HEADER, ROW_P1, ROW_P2.replace(",200,", ",?,"), ROW_P3)

    table = load_csv(path, hospital="h1")

    assert table.patient_id.tolist() == ["p1", "p3"] and table.excluded["missing value"] == 1


# --- Cohort.without ---------------------------------------------------------------------

def test_without_removes_exactly_the_given_patients(tmp_path: Path) -> None:
    # Prepare
    table = load_csv(write_csv(tmp_path, HEADER, ROW_P1, ROW_P2, ROW_P3), hospital="h1")

    # Execute
    kept = table.without({"p2", "unknown-patient"})

    # Assert
    assert kept.patient_id.tolist() == ["p1", "p3"]
    assert kept.X.tolist() == [table.X[0].tolist(), table.X[2].tolist()]
    assert kept.y.tolist() == [1.0, 0.0] and kept.split.tolist() == ["train", "train"]
    assert len(table.patient_id) == 3  # the original is untouched


def test_without_on_a_bundled_hospital_keeps_the_other_rows() -> None:
    # Prepare
    table = load_hospital("va")
    removed = set(table.patient_id[:5])

    # Execute
    kept = table.without(removed)

    # Assert
    assert len(kept.patient_id) == len(table.patient_id) - 5
    assert removed.isdisjoint(kept.patient_id)
    np.testing.assert_array_equal(kept.X, table.X[5:])


def test_without_nobody_is_the_same_table() -> None:
    table = load_hospital("switzerland")
    kept = table.without(set())
    np.testing.assert_array_equal(kept.X, table.X)
    np.testing.assert_array_equal(kept.patient_id, table.patient_id)
