"""Fed-Heart-Disease, the bundled example: four datasets compiled with the bundled ``heart`` study.

There is no heart-specific code path: each hospital is a CSV file declared in
``bundled/datasets.toml`` (see ``heart_disease/PROVENANCE.md`` for its derivation from the UCI files
with FLamby's split), and FLamby's preprocessing is the study ``studies/heart.toml``: ``slope``,
``ca`` and ``thal`` are not declared, rows with a missing value are dropped, the outcome is
``num > 0``, ``cp`` and ``restecg`` are one-hot encoded without their first level, which gives 13
features. These helpers only name them, for the demo, the benchmarks and the tests.
"""

from __future__ import annotations

from pathlib import Path

from fedsante.common.errors import DataError
from fedsante.data.bundled import bundled_datasets, bundled_study
from fedsante.data.cohort import Cohort, compile_cohort
from fedsante.data.mapping import Mapping
from fedsante.data.sources import DatasetDeclaration, read_table

HOSPITALS = ("cleveland", "hungarian", "switzerland", "va")
FEATURES = bundled_study("heart").feature_names()
"""The heart study's 13 encoded features, in order."""


def load_hospital(hospital: str) -> Cohort:
    """A bundled hospital (one of :data:`HOSPITALS`) compiled with the heart study.

    >>> load_hospital("switzerland").part("test")[0].shape
    (16, 13)
    """
    if hospital not in HOSPITALS:
        raise DataError(
            f"Unknown hospital {hospital!r}. Bundled hospitals: {', '.join(HOSPITALS)}. To use your own data, "
            "register it at the node with 'fedsante node dataset add' (docs/data.md)."
        )
    return compile_cohort(read_table(bundled_datasets()[hospital]), bundled_study("heart"), Mapping(),
                          dataset=hospital)


def load_csv(path: str | Path, *, hospital: str) -> Cohort:
    """A hospital's own CSV file with the heart study's columns (``patient_id``, ``split``, ``num``...),
    read and compiled like any dataset (:mod:`fedsante.data.sources`, :mod:`fedsante.data.cohort`)."""
    declaration = DatasetDeclaration(name=hospital, path=str(path))
    return compile_cohort(read_table(declaration), bundled_study("heart"), Mapping(), dataset=hospital)
