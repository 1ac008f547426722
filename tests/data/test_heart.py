"""fedsante.data.heart: the bundled hospitals and a hospital's own CSV, with bad input refused by name."""

from pathlib import Path

import numpy as np
import pytest

from fedsante.common.errors import DataError
from fedsante.data.heart import CSV_COLUMNS, FEATURES, HOSPITALS, load_csv, load_hospital

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


# --- a hospital's own CSV ----------------------------------------------------------------------

def test_header_constant_matches_the_documented_columns() -> None:
    assert ",".join(CSV_COLUMNS) == HEADER


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
    assert table.hospital == "h1" and table.source == str(path) and table.dropped_rows == 0


def test_csv_columns_may_come_in_any_order(tmp_path: Path) -> None:
    # Prepare: same rows as the header order, columns reversed
    reverse = lambda line: ",".join(reversed(line.split(",")))  # noqa: E731
    path = write_csv(tmp_path, reverse(HEADER), reverse(ROW_P1))

    # Execute
    table = load_csv(path, hospital="h1")

    # Assert
    assert table.X.tolist() == [[63, 1, 145, 233, 1, 150, 0, 2.3, 0, 0, 1, 1, 0]]


def test_missing_column_names_the_column_and_the_file(tmp_path: Path) -> None:
    # Prepare
    path = write_csv(tmp_path, HEADER.replace(",thalach", ""), "p1,63,1,145,233,1,0,2.3,4,1,2,train", name="lille.csv")

    # Execute / Assert
    with pytest.raises(DataError, match=r"lille\.csv has no column 'thalach'\. Expected columns: patient_id, age") as info:
        load_csv(path, hospital="h1")
    assert info.value.errors == ["missing column 'thalach'"]


def test_several_missing_columns_are_all_listed(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "patient_id,age,sex")
    with pytest.raises(DataError, match=r"has no column 'trestbps' \(also missing: chol, fbs, thalach") as info:
        load_csv(path, hospital="h1")
    assert len(info.value.errors) == len(CSV_COLUMNS) - 3


def test_line_with_wrong_number_of_fields_names_the_file_and_line(tmp_path: Path) -> None:
    # Prepare: line 3 lacks the split value
    path = write_csv(tmp_path, HEADER, ROW_P1, "p2,50,0,120,200,0,140,1,0.5,1,0,0", name="rennes.csv")

    # Execute / Assert
    with pytest.raises(DataError, match=r"rennes\.csv, line 3: expected 13 values like the header, found 12"):
        load_csv(path, hospital="h1")


def test_non_numeric_value_names_the_line_and_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path, HEADER, ROW_P1, ROW_P2.replace(",200,", ",high,"))
    with pytest.raises(DataError, match=r"line 3, column 'chol': 'high' is not a number"):
        load_csv(path, hospital="h1")


def test_out_of_range_category_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path, HEADER, "p1,63,1,145,233,1,150,0,2.3,7,1,2,train")
    with pytest.raises(DataError, match=r"line 2, column 'cp': 7 is not one of 1, 2, 3, 4"):
        load_csv(path, hospital="h1")


def test_non_binary_value_of_a_binary_column_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path, HEADER, "p1,63,2,145,233,1,150,0,2.3,4,1,2,train")
    with pytest.raises(DataError, match=r"line 2, column 'sex': 2 is not one of 0, 1"):
        load_csv(path, hospital="h1")


def test_negative_label_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path, HEADER, "p1,63,1,145,233,1,150,0,2.3,4,1,-1,train")
    with pytest.raises(DataError, match=r"line 2, column 'num': -1 must be >= 0"):
        load_csv(path, hospital="h1")


def test_bad_split_value_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path, HEADER, ROW_P1.replace(",train", ",validation"))
    with pytest.raises(DataError, match=r"line 2, column 'split': 'validation' must be 'train' or 'test'"):
        load_csv(path, hospital="h1")


def test_missing_file_is_refused_by_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nowhere\.csv does not exist\. Fix 'dataset_path'"):
        load_csv(tmp_path / "nowhere.csv", hospital="h1")


def test_empty_file_asks_for_a_header(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataError, match=r"empty\.csv is empty\. It needs a header line: patient_id,age,"):
        load_csv(path, hospital="h1")


def test_header_only_file_has_no_complete_row(tmp_path: Path) -> None:
    path = write_csv(tmp_path, HEADER)
    with pytest.raises(DataError, match=r"no complete row is left .*\(0 dropped\)"):
        load_csv(path, hospital="h1")


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + "\n" + ROW_P1.replace("p1", "pé") + "\n").encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.csv is not a UTF-8 text CSV file"):
        load_csv(path, hospital="h1")


def test_duplicate_patient_id_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path, HEADER, ROW_P1, ROW_P2.replace("p2,", "p1,"))
    with pytest.raises(DataError, match=r"column 'patient_id' has duplicate values"):
        load_csv(path, hospital="h1")


def test_every_row_with_a_missing_value_is_refused(tmp_path: Path) -> None:
    # Prepare: three spellings of a missing value, one per row
    path = write_csv(
        tmp_path, HEADER,
        ROW_P1.replace(",233,", ",?,"), ROW_P2.replace(",200,", ",,"), ROW_P3.replace(",204,", ",NA,"),
    )

    # Execute / Assert
    with pytest.raises(DataError, match=r"no complete row is left after dropping rows with missing values \(3 dropped\)"):
        load_csv(path, hospital="h1")


def test_rows_with_a_missing_value_are_dropped_and_counted(tmp_path: Path) -> None:
    path = write_csv(tmp_path, HEADER, ROW_P1, ROW_P2.replace(",200,", ",?,"), ROW_P3)

    table = load_csv(path, hospital="h1")

    assert table.patient_id.tolist() == ["p1", "p3"] and table.dropped_rows == 1


# --- HospitalTable.without ---------------------------------------------------------------------

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
