"""The bundled Fed-Heart-Disease hospitals: CSVs derived from the UCI files, compiled like any dataset."""

import csv
import hashlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

from fedsante.data.bundled import bundled_datasets, bundled_study, data_dir
from fedsante.data.cohort import Cohort, compile_cohort
from fedsante.data.mapping import Mapping
from fedsante.data.sources import read_table
from fedsante.common.errors import ConfigError

RAW_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "fed_heart_disease"
RAW_COLUMNS = ("age", "sex", "cp", "trestbps", "chol", "fbs", "restecg",
               "thalach", "exang", "oldpeak", "slope", "ca", "thal", "num")
HOSPITALS = ("cleveland", "hungarian", "switzerland", "va")

# SHA-256 of (patient_id, X, y, split) of each hospital, recorded from fedsante.data.heart.load_hospital
# when it still read the UCI files (before the CSVs replaced them) and the identifiers were `<hospital>-<line>`;
# see cohort_checksum and line_ids, which maps today's random identifiers back to those.
RECORDED = {
    "cleveland": "fd04f7aaa8ff9b9029cd939a316841f109e48e3438598478ee35184b9b093fef",
    "hungarian": "c720ae9c79f22d44c602eefcc492dc5b17ad9fac9c948a0040a3385a6f9c4931",
    "switzerland": "4f1e97dbbc057db5b8854c03a6b830f3550c68a3bf5696133552ecafb189cf33",
    "va": "1c7dabc5cc0ce5fe0a08fff479b8a3b7561b765f6ffe69b8e308c44994c917fe",
}


PATIENT_ID = re.compile(r"^[A-Z2-7]{20}$")  # 20 base32 characters drawn at random (PROVENANCE.md)


def make_csv(raw_dir: Path, hospital: str) -> str:
    """The bundled CSV of a hospital, derived from the UCI file and FLamby's split (PROVENANCE.md), with the
    former line-based identifiers ``<hospital>-<line>`` (the bundled files have random ones instead)."""
    with open(raw_dir / "flamby_split.csv", newline="", encoding="utf-8") as fh:
        split = {int(r["line_in_file"]): r["flamby_set"] for r in csv.DictReader(fh) if r["center_name"] == hospital}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["patient_id", *RAW_COLUMNS, "split"])
    with open(raw_dir / f"processed.{hospital}.data", newline="", encoding="utf-8") as fh:
        for line_no, fields in enumerate(csv.reader(fh), start=1):
            assert len(fields) == len(RAW_COLUMNS)
            kept = split[line_no] if split[line_no] in ("train", "test") else ""
            writer.writerow([f"{hospital}-{line_no}", *fields, kept])
    return out.getvalue()


def cohort_checksum(patient_id, X: np.ndarray, y: np.ndarray, split: np.ndarray) -> str:
    digest = hashlib.sha256()
    digest.update("\n".join(map(str, patient_id)).encode())
    digest.update(np.ascontiguousarray(X, dtype="<f8").tobytes())
    digest.update(np.ascontiguousarray(y, dtype="<f8").tobytes())
    digest.update("\n".join(map(str, split)).encode())
    return digest.hexdigest()


def bundled_rows(hospital: str) -> list[list[str]]:
    with open(data_dir() / "heart_disease" / f"{hospital}.csv", newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def line_ids(hospital: str, patient_id: np.ndarray) -> list[str]:
    """The former identifier ``<hospital>-<line>`` of each bundled patient (the row order is the UCI line order)."""
    line_of = {row[0]: n for n, row in enumerate(bundled_rows(hospital)[1:], start=1)}
    return [f"{hospital}-{line_of[str(pid)]}" for pid in patient_id]


def compile_bundled(hospital: str) -> Cohort:
    study = bundled_study("heart")
    return compile_cohort(read_table(bundled_datasets()[hospital]), study, Mapping(), dataset=hospital)


@pytest.mark.skipif(not RAW_DIR.is_dir(), reason=f"the UCI originals are not at {RAW_DIR}")
@pytest.mark.parametrize("hospital", HOSPITALS)
def test_bundled_csv_is_derived_from_the_uci_file_and_flamby_split(hospital: str) -> None:
    # Execute
    expected = make_csv(RAW_DIR, hospital).splitlines()
    bundled = (data_dir() / "heart_disease" / f"{hospital}.csv").read_text(encoding="utf-8")

    # Assert: byte for byte the same, but for the patient_id of each row (random, drawn once)
    assert bundled.endswith("\n") and "\r" not in bundled
    lines = bundled.splitlines()
    assert lines[0] == expected[0] and len(lines) == len(expected)
    assert [line.split(",", 1)[1] for line in lines[1:]] == [line.split(",", 1)[1] for line in expected[1:]]


@pytest.mark.parametrize("hospital", HOSPITALS)
def test_bundled_patient_ids_are_random_base32_not_line_numbers(hospital: str) -> None:
    # Execute
    ids = [row[0] for row in bundled_rows(hospital)[1:]]

    # Assert: 20 base32 characters (100 bits) each, all different, none guessable from the line
    assert ids and all(PATIENT_ID.fullmatch(pid) for pid in ids)
    every = [row[0] for h in HOSPITALS for row in bundled_rows(h)[1:]]
    assert len(set(every)) == len(every)


@pytest.mark.parametrize("hospital", HOSPITALS)
def test_compiled_hospital_equals_the_former_uci_loader(hospital: str) -> None:
    # Execute
    cohort = compile_bundled(hospital)

    # Assert
    former_ids = line_ids(hospital, cohort.patient_id)
    assert cohort_checksum(former_ids, cohort.X, cohort.y, cohort.split) == RECORDED[hospital]


@pytest.mark.parametrize(
    ("hospital", "n_train", "n_test", "positives"),
    [("cleveland", 199, 104, 139), ("hungarian", 172, 89, 98), ("switzerland", 30, 16, 45), ("va", 85, 45, 101)],
)
def test_compiled_hospital_has_flamby_counts(hospital: str, n_train: int, n_test: int, positives: int) -> None:
    # Execute
    cohort = compile_bundled(hospital)
    feasibility = cohort.feasibility()

    # Assert
    assert feasibility.by_split == {"train": n_train, "test": n_test}
    assert sum(c["1"] for c in feasibility.by_class.values()) == positives
    assert sum(cohort.excluded.values()) + feasibility.rows == read_table(bundled_datasets()[hospital]).n_rows


def test_heart_study_reproduces_the_flamby_features_and_bounds() -> None:
    # Prepare: FLamby's 13 features and the public ranges the former loader hard-coded
    features = ("age", "sex", "trestbps", "chol", "fbs", "thalach", "exang", "oldpeak",
                "cp=2", "cp=3", "cp=4", "restecg=1", "restecg=2")
    bounds = {"age": (20, 90), "trestbps": (0, 220), "chol": (0, 650), "thalach": (50, 220), "oldpeak": (-3, 7)}

    # Execute
    study = bundled_study("heart")
    lower, upper = study.feature_bounds()

    # Assert
    assert study.feature_names() == features
    assert lower.tolist() == [bounds.get(f, (0, 1))[0] for f in features]
    assert upper.tolist() == [bounds.get(f, (0, 1))[1] for f in features]
    assert study.sensitive_variables() == ("sex",)
    assert study.feature_labels("fr")[0] == "Âge (ans)"
    assert study.feature_labels("en")[8] == "Chest pain type: 2"
    assert all(v.justification for v in study.predictors)


def test_heart_fairness_groups_cover_sex_and_age_bands() -> None:
    # Execute
    cohort = compile_bundled("cleveland")

    # Assert
    sex_column = cohort.X[:, cohort.feature_names.index("sex")]
    assert (cohort.groups["sex"] == sex_column.astype(int)).all()
    age = cohort.X[:, 0]
    assert ((cohort.groups["age"] == 0) == (age < 45)).all()
    assert ((cohort.groups["age"] == 3) == (age >= 65)).all()


def test_unknown_bundled_study_lists_the_bundled_ones() -> None:
    with pytest.raises(ConfigError, match=r"Unknown bundled study 'lung'\. Bundled studies: heart\."):
        bundled_study("lung")
