"""Dataset sources: read a declared CSV or Parquet file with DuckDB, every value as text.

A node declares each dataset (:class:`DatasetDeclaration`); :func:`read_table` returns a
:class:`RawTable` whose columns hold the text of every value, or ``None`` for a missing marker.
Parsing into numbers and levels happens later, against a study (:mod:`fedsante.data.cohort`).
:func:`describe` summarises the columns without any row value or count, for the desk's catalogue.

>>> decl = DatasetDeclaration(name="trial", path="trial.parquet")
>>> decl.format, decl.id_column
('parquet', 'patient_id')
"""

from __future__ import annotations

import csv

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fedsante.common.errors import DataError

MANY_LEVELS = 20


class DatasetDeclaration(BaseModel):
    """A dataset a node registers: a CSV or Parquet file with one row per patient."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")
    path: str = Field(min_length=1)
    format: Literal["csv", "parquet"] = "csv"
    id_column: str = "patient_id"
    description: str = ""
    missing_values: list[str] = ["", "NA", "?", "nan"]
    delimiter: str = Field(default=",", min_length=1, max_length=1)

    @model_validator(mode="before")
    @classmethod
    def _format_from_extension(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("format") and isinstance(data.get("path"), str):
            suffix = Path(data["path"]).suffix.lower()
            data = {**data, "format": "parquet" if suffix in (".parquet", ".pq") else "csv"}
        return data

    def resolved(self, base_dir: str | Path) -> DatasetDeclaration:
        """The same declaration with a relative ``path`` made absolute against ``base_dir``."""
        path = Path(self.path)
        return self if path.is_absolute() else self.model_copy(update={"path": str(Path(base_dir) / path)})


@dataclass(frozen=True)
class RawTable:
    """A dataset's rows as text: ``columns[name]`` is an object array of ``str`` or ``None`` (missing)."""

    source: str
    columns: dict[str, np.ndarray]
    n_rows: int
    id_column: str = "patient_id"

    @property
    def patient_id(self) -> np.ndarray:
        """The identifier column."""
        return self.columns[self.id_column]


@dataclass(frozen=True)
class ColumnSummary:
    """What the desk may know of a column: its name, a type and a coarse number of distinct values."""

    name: str
    type: Literal["numeric", "text"]
    distinct: Literal["<= 20 levels", "many"]


def read_table(decl: DatasetDeclaration) -> RawTable:
    """Read a declared dataset file; every value as stripped text, ``None`` for a missing marker.

    Raises DataError naming the file for a missing, empty, unreadable or non-UTF-8 file, a missing
    identifier column, and missing or duplicate identifiers.
    """
    path = Path(decl.path)
    if not path.is_file():
        raise DataError(f"Dataset file {path} (dataset {decl.name!r}) does not exist. Fix 'path' in its declaration.")
    if path.stat().st_size == 0:
        raise DataError(f"Dataset file {path} is empty. A CSV file needs a header line and one row per patient.")
    names, rows = _query(decl, path)
    missing = {m.strip() for m in decl.missing_values}
    columns = {name: np.array([_text(row[i], missing) for row in rows], dtype=object) for i, name in enumerate(names)}
    table = RawTable(source=str(path), columns=columns, n_rows=len(rows), id_column=decl.id_column)
    _check_ids(table, decl)
    return table


def _query(decl: DatasetDeclaration, path: Path) -> tuple[list[str], list[tuple]]:
    con = duckdb.connect(":memory:")
    try:
        if decl.format == "csv":
            rel = con.execute(
                "SELECT * FROM read_csv(?, all_varchar = true, header = true, delim = ?, "
                "auto_detect = true, null_padding = false)", [str(path), decl.delimiter])
        else:
            names = [d[0] for d in con.execute("SELECT * FROM read_parquet(?) LIMIT 0", [str(path)]).description]
            cast = ", ".join(f"CAST({_quote(n)} AS VARCHAR) AS {_quote(n)}" for n in names)
            rel = con.execute(f"SELECT {cast} FROM read_parquet(?)", [str(path)])
        names = [d[0] for d in rel.description]
        return names, rel.fetchall()
    except duckdb.Error as exc:
        text = str(exc)
        if "invalid unicode" in text.lower() or "not utf-8 encoded" in text.lower():
            raise DataError(f"{path} is not UTF-8 text. Export it as UTF-8 {decl.format.upper()}.") from None
        if decl.format == "csv":
            _check_lines(path, decl.delimiter)
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        raise DataError(f"{path} cannot be read as {decl.format.upper()} ({first}). Check the file's format, "
                        "delimiter and quoting, or set 'format' and 'delimiter' in its declaration.") from None
    finally:
        con.close()


def _check_lines(path: Path, delimiter: str) -> None:
    """Name the first line whose number of values differs from the header's (DuckDB's errors do not)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = csv.reader(fh, delimiter=delimiter)
            header = next(rows, None)
            for number, row in enumerate(rows, start=2):
                if header is not None and row and len(row) != len(header):
                    raise DataError(f"{path}, line {number}: expected {len(header)} values like the header, found "
                                    f"{len(row)}. Fix the line (quote values that contain '{delimiter}').")
    except (UnicodeDecodeError, csv.Error):
        return


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _text(value: object, missing: set[str]) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return None if text in missing else text


def _check_ids(table: RawTable, decl: DatasetDeclaration) -> None:
    if table.n_rows == 0:
        raise DataError(f"{table.source} has a header but no rows. A dataset needs one row per patient.")
    if decl.id_column not in table.columns:
        raise DataError(
            f"{table.source} has no identifier column {decl.id_column!r} (columns: {', '.join(table.columns)}). "
            "Add it, or set 'id_column' in the dataset declaration to the column that identifies patients.")
    ids = table.columns[decl.id_column]
    empty = sum(v is None for v in ids)
    if empty:
        raise DataError(f"{table.source}: {empty} rows have no value in the identifier column {decl.id_column!r}. "
                        "Each patient needs an identifier (used to apply objections).")
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        duplicate = next(v for v in ids if v in seen or seen.add(v))
        raise DataError(f"{table.source}: identifier column {decl.id_column!r} has duplicate values "
                        f"(e.g. {duplicate!r}); each patient needs exactly one row.")


def describe(raw: RawTable) -> list[ColumnSummary]:
    """Summarise each column without values or counts (safe for the desk's catalogue).

    >>> raw = RawTable(source="t.csv", n_rows=3, columns={
    ...     "patient_id": np.array(["a", "b", "c"], dtype=object),
    ...     "age": np.array(["63", None, "41.5"], dtype=object)})
    >>> [(c.name, c.type, c.distinct) for c in describe(raw)]
    [('patient_id', 'text', '<= 20 levels'), ('age', 'numeric', '<= 20 levels')]
    """
    summaries = []
    for name, values in raw.columns.items():
        present = [v for v in values if v is not None]
        numeric = bool(present) and all(_is_number(v) for v in present)
        distinct = "many" if len(set(present)) > MANY_LEVELS else "<= 20 levels"
        summaries.append(ColumnSummary(name=name, type="numeric" if numeric else "text", distinct=distinct))
    return summaries


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
