"""Fed-Heart-Disease: the four UCI hospitals, loaded with schema validation.

Two sources share one validation path:

* the bundled hospitals (``heart_disease/<hospital>.csv``, derived from the UCI files with FLamby's
  train/test split), compiled with the bundled ``heart`` study by :mod:`fedsante.data.cohort`;
* a hospital's own CSV file with a header that names the columns of :data:`CSV_COLUMNS`.

Preprocessing follows FLamby (see ``heart_disease/PROVENANCE.md``): ``slope``, ``ca`` and ``thal``
are dropped, rows with a missing value are dropped, the label is ``num > 0``, ``cp`` and
``restecg`` are one-hot encoded with their first level dropped, which gives 13 features.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from fedsante.data.bundled import bundled_datasets, bundled_study
from fedsante.data.cohort import Cohort, compile_cohort
from fedsante.data.mapping import Mapping
from fedsante.data.sources import read_table
from fedsante.common.errors import DataError

RAW_COLUMNS = (
    "age", "sex", "cp", "trestbps", "chol", "fbs", "restecg",
    "thalach", "exang", "oldpeak", "slope", "ca", "thal", "num",
)
NUMERIC = ("age", "sex", "trestbps", "chol", "fbs", "thalach", "exang", "oldpeak")
CATEGORIES = {"cp": (1, 2, 3, 4), "restecg": (0, 1, 2)}
BINARY = ("sex", "fbs", "exang")
FEATURES = (*NUMERIC, "cp=2", "cp=3", "cp=4", "restecg=1", "restecg=2")
FEATURE_BOUNDS = {
    "age": (20.0, 90.0), "sex": (0.0, 1.0), "trestbps": (0.0, 220.0), "chol": (0.0, 650.0), "fbs": (0.0, 1.0),
    "thalach": (50.0, 220.0), "exang": (0.0, 1.0), "oldpeak": (-3.0, 7.0),
    **{name: (0.0, 1.0) for name in ("cp=2", "cp=3", "cp=4", "restecg=1", "restecg=2")},
}
"""Public range of each feature, from clinical plausibility and the UCI codebook, not from the data
(0 codes a missing blood pressure or cholesterol in two hospitals' files). Differential privacy uses
them to standardise without looking at the data (scaling 'bounds') and to clip rows."""
CSV_COLUMNS = ("patient_id", *NUMERIC, "cp", "restecg", "num", "split")
MISSING = {"", "?", "NA", "nan"}

HOSPITALS = ("cleveland", "hungarian", "switzerland", "va")


@dataclass(frozen=True)
class HospitalTable:
    """One hospital's rows after validation and encoding (features are not standardised)."""

    hospital: str
    source: str
    patient_id: np.ndarray
    X: np.ndarray
    y: np.ndarray
    split: np.ndarray
    dropped_rows: int

    feature_names = FEATURES

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` arrays of :data:`FEATURE_BOUNDS`, in feature order."""
        return feature_bounds()

    def part(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(X, y)`` of the ``'train'`` or ``'test'`` rows."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test'. Got {split!r} instead.")
        mask = self.split == split
        return self.X[mask], self.y[mask]

    def without(self, patient_ids: set[str]) -> HospitalTable:
        """Return the table minus the given patients (used to apply objections)."""
        keep = np.array([pid not in patient_ids for pid in self.patient_id], dtype=bool)
        return HospitalTable(
            hospital=self.hospital, source=self.source, patient_id=self.patient_id[keep],
            X=self.X[keep], y=self.y[keep], split=self.split[keep],
            dropped_rows=self.dropped_rows,
        )


def feature_bounds() -> tuple[np.ndarray, np.ndarray]:
    """``(lower, upper)`` arrays of :data:`FEATURE_BOUNDS`, in the order of :data:`FEATURES`."""
    return (np.array([FEATURE_BOUNDS[f][0] for f in FEATURES]), np.array([FEATURE_BOUNDS[f][1] for f in FEATURES]))


def bundled_dir() -> Path:
    """Folder of the bundled Fed-Heart-Disease files (data, split, provenance, licence)."""
    return Path(str(resources.files("fedsante.data") / "heart_disease"))


def load_hospital(hospital: str) -> Cohort:
    """Load a bundled hospital by name (one of :data:`HOSPITALS`).

    The hospital's CSV is compiled with the bundled ``heart`` study like any dataset
    (:func:`fedsante.data.cohort.compile_cohort`).

    >>> load_hospital("switzerland").part("test")[0].shape
    (16, 13)
    """
    if hospital not in HOSPITALS:
        raise DataError(
            f"Unknown hospital {hospital!r}. Bundled hospitals: {', '.join(HOSPITALS)}. "
            "To use your own data, set 'dataset_path' in the node config to a CSV file "
            f"with the columns {', '.join(CSV_COLUMNS)}."
        )
    return compile_cohort(read_table(bundled_datasets()[hospital]), bundled_study("heart"), Mapping(),
                          dataset=hospital)


def load_csv(path: str | Path, *, hospital: str) -> HospitalTable:
    """Load a hospital's own CSV file whose header names the columns of :data:`CSV_COLUMNS`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Dataset file {path} does not exist. Fix 'dataset_path' in the node config.")
    rows = _read_rows(path, has_header=True)
    try:
        _, header = next(rows)
    except StopIteration:
        raise DataError(f"{path} is empty. It needs a header line: {','.join(CSV_COLUMNS)}.") from None
    header = [h.strip() for h in header]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise DataError(
            f"{path} has no column {missing[0]!r}"
            + (f" (also missing: {', '.join(missing[1:])})" if missing[1:] else "")
            + f". Expected columns: {', '.join(CSV_COLUMNS)}. Fix: add or rename the column.",
            errors=[f"missing column {c!r}" for c in missing],
        )
    records = []
    for line_no, fields in rows:
        if len(fields) != len(header):
            raise DataError(
                f"{path}, line {line_no}: expected {len(header)} values like the header, "
                f"found {len(fields)}. Fix the line (quote values that contain commas)."
            )
        records.append((line_no, dict(zip(header, fields))))
    return _build(hospital, path, records)


def _read_rows(path: Path, *, has_header: bool):
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            for line_no, fields in enumerate(csv.reader(fh), start=1):
                if not fields and line_no > 1:  # blank lines carry no row
                    continue
                yield line_no, fields
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not a UTF-8 text CSV file ({exc.reason}). Export it as UTF-8 CSV.") from None


def _number(path: Path, line_no: int, column: str, text: str) -> float:
    text = text.strip()
    if text in MISSING:
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise DataError(
            f"{path}, line {line_no}, column {column!r}: {text!r} is not a number. "
            "Fix the value, or write '?' (or leave it empty) for a missing value."
        ) from None


def _check_level(path: Path, line_no: int, column: str, value: float, levels: tuple[int, ...]) -> None:
    if not math.isnan(value) and value not in levels:
        raise DataError(
            f"{path}, line {line_no}, column {column!r}: {value:g} is not one of "
            f"{', '.join(map(str, levels))}. Fix the value or mark it missing with '?'."
        )


def _build(hospital: str, path: Path, records: list[tuple[int, dict[str, str]]]) -> HospitalTable:
    ids, xs, ys, splits = [], [], [], []
    dropped = 0
    for line_no, row in records:
        split = row["split"].strip()
        if split not in ("train", "test", "dropped"):
            raise DataError(
                f"{path}, line {line_no}, column 'split': {split!r} must be 'train' or 'test'."
            )
        values = {c: _number(path, line_no, c, row[c]) for c in (*NUMERIC, "cp", "restecg", "num")}
        for column in BINARY:
            _check_level(path, line_no, column, values[column], (0, 1))
        for column, levels in CATEGORIES.items():
            _check_level(path, line_no, column, values[column], levels)
        if values["num"] < 0:
            raise DataError(f"{path}, line {line_no}, column 'num': {values['num']:g} must be >= 0.")
        if split == "dropped" or any(math.isnan(v) for v in values.values()):
            dropped += 1
            continue
        encoded = [values[c] for c in NUMERIC]
        encoded += [float(values["cp"] == k) for k in CATEGORIES["cp"][1:]]
        encoded += [float(values["restecg"] == k) for k in CATEGORIES["restecg"][1:]]
        ids.append(row["patient_id"].strip())
        xs.append(encoded)
        ys.append(float(values["num"] > 0))
        splits.append(split)
    if not xs:
        raise DataError(
            f"{path}: no complete row is left after dropping rows with missing values "
            f"({dropped} dropped). Check the missing-value markers."
        )
    if len(set(ids)) != len(ids):
        raise DataError(f"{path}: column 'patient_id' has duplicate values; each patient needs one row.")
    return HospitalTable(
        hospital=hospital, source=str(path), patient_id=np.array(ids, dtype=object),
        X=np.array(xs, dtype=float), y=np.array(ys, dtype=float), split=np.array(splits),
        dropped_rows=dropped,
    )
