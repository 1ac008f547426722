"""fedsante.data.sources: reading CSV and Parquet files as text, refusing bad files by name."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fedsante.data.sources import DatasetDeclaration, describe, read_table
from fedsante.common.errors import DataError


def write(tmp_path: Path, text: str, name: str = "site.csv") -> DatasetDeclaration:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return DatasetDeclaration(name="site", path=str(path))


def test_csv_values_are_stripped_text_and_missing_markers_none(tmp_path: Path) -> None:
    # Prepare
    decl = write(tmp_path, "patient_id,age,race\np1, 63 ,White\np2,?,NA\np3,,nan\n")

    # Execute
    raw = read_table(decl)

    # Assert
    assert raw.n_rows == 3
    assert list(raw.columns) == ["patient_id", "age", "race"]
    assert raw.columns["age"].tolist() == ["63", None, None]
    assert raw.columns["race"].tolist() == ["White", None, None]
    assert raw.patient_id.tolist() == ["p1", "p2", "p3"]


def test_custom_delimiter_id_column_and_missing_values(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "site.csv"
    path.write_text("ID;score\na;-\nb;0012\n", encoding="utf-8")
    decl = DatasetDeclaration(name="site", path=str(path), delimiter=";", id_column="ID", missing_values=["-"])

    # Execute
    raw = read_table(decl)

    # Assert: text is kept as written (no leading zero lost)
    assert raw.columns["score"].tolist() == [None, "0012"]


def test_parquet_values_are_read_as_text(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "site.parquet"
    pq.write_table(pa.table({"patient_id": ["a", "b"], "age": [63.0, None], "n": [1, 2]}), path)

    # Execute
    raw = read_table(DatasetDeclaration(name="site", path=str(path)))

    # Assert
    assert DatasetDeclaration(name="site", path=str(path)).format == "parquet"
    assert raw.columns["age"].tolist() == ["63.0", None]
    assert raw.columns["n"].tolist() == ["1", "2"]


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nowhere\.csv \(dataset 'site'\) does not exist\. Fix 'path'"):
        read_table(DatasetDeclaration(name="site", path=str(tmp_path / "nowhere.csv")))


def test_empty_file_and_header_only_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"site\.csv is empty"):
        read_table(write(tmp_path, ""))
    with pytest.raises(DataError, match=r"has a header but no rows"):
        read_table(write(tmp_path, "patient_id,age\n", name="h.csv"))


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "latin1.csv"
    path.write_bytes("patient_id,ville\np1,Orléans\n".encode("latin-1"))

    # Execute / Assert
    with pytest.raises(DataError, match=r"latin1\.csv is not UTF-8 text\. Export it as UTF-8 CSV\."):
        read_table(DatasetDeclaration(name="site", path=str(path)))


def test_unreadable_parquet_is_refused(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not a parquet file at all")

    # Execute / Assert
    with pytest.raises(DataError, match=r"broken\.parquet cannot be read as PARQUET"):
        read_table(DatasetDeclaration(name="site", path=str(path)))


def test_missing_id_column_names_the_columns_and_the_setting(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"has no identifier column 'patient_id' \(columns: ID, age\)\. .*'id_column'"):
        read_table(write(tmp_path, "ID,age\na,1\n"))


def test_duplicate_and_missing_ids_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"duplicate values \(e\.g\. 'p1'\)"):
        read_table(write(tmp_path, "patient_id,age\np1,1\np2,2\np1,3\n"))
    with pytest.raises(DataError, match=r"1 rows have no value in the identifier column"):
        read_table(write(tmp_path, "patient_id,age\np1,1\n,2\n", name="b.csv"))


def test_describe_gives_types_and_coarse_levels_only(tmp_path: Path) -> None:
    # Prepare
    rows = "".join(f"p{i},{i},{'A' if i % 2 else 'B'}\n" for i in range(30))
    raw = read_table(write(tmp_path, "patient_id,score,arm\n" + rows))

    # Execute
    summary = describe(raw)

    # Assert
    assert [(c.name, c.type, c.distinct) for c in summary] == [
        ("patient_id", "text", "many"), ("score", "numeric", "many"), ("arm", "text", "<= 20 levels")]
