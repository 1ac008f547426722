"""The node's dataset registry, dataset resolution, cohort cache, mapping at acceptance and local readiness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedsante.data.mapping import Mapping
from fedsante.data.study import parse_study
from fedsante.common.errors import ConfigError, DataError, Forbidden
from fedsante.node import datasets
from fedsante.node.config import NodeConfig
from fedsante.node.datasets import (DatasetRegistry, build_cohort, catalogue_summary, combine_mapping, mapping_check,
                                    resolve_dataset)
from fedsante.data.sources import DatasetDeclaration
from fedsante.node.policy import Acceptances
from fedsante.node.readiness import format_readiness, readiness

TRIAL = """SUBJ,AGE_YRS,Race,Outcome,Arm
s1,63,White,Yes,A
s2,71.0,Black,No,B
s3,55,White,No,A
s4,45,Black,Yes,A
s5,80,Black,No,C
s6,38,Other,Yes,B
"""
STUDY = {
    "id": "trial", "title_fr": "Essai", "title_en": "Trial",
    "outcome": {"variable": "death", "label_fr": "Décès", "label_en": "Death", "type": "binary",
                "positive": ["Yes"], "negative": ["No"]},
    "predictors": [
        {"name": "age", "label_fr": "Âge", "label_en": "Age", "type": "numeric", "bounds": [18, 100],
         "justification": "Main confounder."},
        {"name": "ethnicity", "label_fr": "Origine", "label_en": "Ethnicity", "type": "categorical",
         "levels": ["white", "black"], "justification": "Fairness check."},
    ],
    "split": {"column": "arm", "train": ["A"], "test": ["B"]},
}
MAP = ["age=AGE_YRS", "death=Outcome", "ethnicity=Race:{Black:black,White:white}", "arm=Arm"]


@pytest.fixture(autouse=True)
def _fresh_cache():
    datasets.clear_cache()
    yield
    datasets.clear_cache()


@pytest.fixture
def trial_csv(tmp_path: Path) -> Path:
    path = tmp_path / "trial.csv"
    path.write_text(TRIAL, encoding="utf-8")
    return path


def node_config(tmp_path: Path, **fields) -> NodeConfig:
    fields = fields or {"dataset": "trial"}
    return NodeConfig(node_id="h1", desk_url="http://127.0.0.1:8700", data_dir=tmp_path / "h1-data", **fields)


def registered(tmp_path: Path, trial_csv: Path) -> NodeConfig:
    cfg = node_config(tmp_path)
    datasets.registry(cfg).add(DatasetDeclaration(name="trial", path=str(trial_csv), id_column="SUBJ"))
    return cfg


# registry


def test_add_reads_the_file_and_get_returns_the_declaration(tmp_path: Path, trial_csv: Path) -> None:
    reg = DatasetRegistry(tmp_path / "datasets.toml")
    raw = reg.add(DatasetDeclaration(name="trial", path=str(trial_csv), id_column="SUBJ", description="A trial"))
    assert raw.n_rows == 6
    assert reg.get("trial").description == "A trial"
    assert reg.get("trial").id_column == "SUBJ"
    assert list(reg.all()) == ["trial"]
    assert reg.get("other") is None


def test_add_refuses_a_duplicate_name_unless_replace(tmp_path: Path, trial_csv: Path) -> None:
    reg = DatasetRegistry(tmp_path / "datasets.toml")
    decl = DatasetDeclaration(name="trial", path=str(trial_csv), id_column="SUBJ")
    reg.add(decl)
    with pytest.raises(ConfigError, match="already registered.*--replace"):
        reg.add(decl)
    reg.add(decl.model_copy(update={"description": "v2"}), replace=True)
    assert reg.get("trial").description == "v2"


def test_add_refuses_a_bad_file_at_once_and_writes_nothing(tmp_path: Path, trial_csv: Path) -> None:
    reg = DatasetRegistry(tmp_path / "datasets.toml")
    with pytest.raises(DataError, match="no identifier column 'patient_id'"):
        reg.add(DatasetDeclaration(name="trial", path=str(trial_csv)))
    with pytest.raises(DataError, match="does not exist"):
        reg.add(DatasetDeclaration(name="gone", path=str(tmp_path / "gone.csv")))
    assert reg.all() == {}


# resolve


def test_resolve_a_registered_dataset(tmp_path: Path, trial_csv: Path) -> None:
    assert resolve_dataset(registered(tmp_path, trial_csv)).path == str(trial_csv)


def test_resolve_a_bundled_dataset(tmp_path: Path) -> None:
    decl = resolve_dataset(node_config(tmp_path, dataset="cleveland"))
    assert decl.name == "cleveland" and decl.path.endswith("cleveland.csv")


def test_resolve_a_dataset_path_names_it_by_its_stem(tmp_path: Path, trial_csv: Path) -> None:
    decl = resolve_dataset(node_config(tmp_path, dataset_path=trial_csv))
    assert (decl.name, decl.format) == ("trial", "csv")


def test_resolve_an_unknown_dataset_lists_registered_and_bundled_names(tmp_path: Path, trial_csv: Path) -> None:
    cfg = registered(tmp_path, trial_csv).model_copy(update={"dataset": "nowhere"})
    with pytest.raises(ConfigError, match=r"registered: trial.*bundled: cleveland, hungarian, switzerland, va"):
        resolve_dataset(cfg)


# cohort and cache


def test_build_cohort_maps_a_non_heart_file(tmp_path: Path, trial_csv: Path) -> None:
    mapping = combine_mapping([*MAP, 'ethnicity=Race:{Black:black,White:white,Other:""}'])
    cohort = build_cohort(registered(tmp_path, trial_csv), parse_study(STUDY), mapping)
    assert cohort.dataset == "trial"
    assert cohort.feature_names == ("age", "ethnicity=black")
    assert list(cohort.patient_id) == ["s1", "s2", "s3", "s4"]
    assert cohort.excluded == {"unmapped value": 0, "missing value": 1, "filter": 0, "not in a split": 1}
    assert cohort.X.tolist() == [[63, 0], [71, 1], [55, 0], [45, 1]]
    assert cohort.y.tolist() == [1, 0, 0, 1] and list(cohort.split) == ["train", "test", "train", "train"]


def test_build_cohort_is_cached_per_file_study_and_mapping(tmp_path: Path, trial_csv: Path, monkeypatch) -> None:
    cfg, study, mapping = registered(tmp_path, trial_csv), parse_study(STUDY), combine_mapping(MAP)
    trial_csv.write_text(TRIAL.replace("s6,38,Other,Yes,B\n", ""), encoding="utf-8")
    reads = []
    real = datasets.read_table
    monkeypatch.setattr(datasets, "read_table", lambda decl: reads.append(decl.name) or real(decl))
    first = build_cohort(cfg, study, mapping)
    assert build_cohort(cfg, study, mapping) is first
    assert reads == ["trial"]
    other = combine_mapping([*MAP, "ethnicity=Race:{Black:white,White:black}"])
    assert build_cohort(cfg, study, other) is not first
    assert reads == ["trial"]  # same file: the table is not read again
    trial_csv.write_text(TRIAL.replace("s6,38,Other,Yes,B\n", "s6,38,White,Yes,B\n"), encoding="utf-8")
    build_cohort(cfg, study, mapping)
    assert reads == ["trial", "trial"]  # the file changed


def test_mapping_check_names_file_column_value_and_count(tmp_path: Path, trial_csv: Path) -> None:
    problems = mapping_check(registered(tmp_path, trial_csv), parse_study(STUDY), combine_mapping(MAP))
    assert [(Path(p.file).name, p.column, p.value, p.count) for p in problems] == [("trial.csv", "Race", "Other", 1)]


def test_catalogue_summary_has_no_value_and_no_count(tmp_path: Path, trial_csv: Path) -> None:
    summary = catalogue_summary(registered(tmp_path, trial_csv)).as_dict()
    assert summary["name"] == "trial" and summary["format"] == "csv"
    assert {"name": "AGE_YRS", "type": "numeric", "distinct": "<= 20 levels"} in summary["columns"]
    text = json.dumps(summary)
    assert "Black" not in text and "63" not in text and "6" not in text.replace("AGE_YRS", "")


def test_combine_mapping_lets_map_options_win_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "map.toml"
    path.write_text('[map]\nage = "AGE"\ndeath = "Died"\n', encoding="utf-8")
    mapping = combine_mapping(["age=AGE_YRS"], path)
    assert (mapping.get("age").column, mapping.get("death").column) == ("AGE_YRS", "Died")


# acceptances and readiness


def test_acceptances_store_the_mapping(tmp_path: Path, governed) -> None:
    mapping = combine_mapping(MAP)
    governed.acceptances.decide(governed.approval, "accepted", "dpo", mapping=mapping)
    approval_id = governed.approval.document.approval_id
    assert governed.acceptances.mapping(approval_id) == mapping
    stored = json.loads(governed.acceptances.path.read_text())[approval_id]["mapping"]
    assert stored["variables"][2] == {"variable": "ethnicity", "column": "Race",
                                      "values": {"Black": "black", "White": "white"}}
    assert Acceptances(tmp_path / "none.json").mapping("x") == Mapping()


def test_check_mapping_refuses_an_approval_whose_study_leaves_unmapped_values(
        tmp_path: Path, trial_csv: Path) -> None:
    from types import SimpleNamespace

    from fedsante.node import operator

    cfg = registered(tmp_path, trial_csv)
    operator.init_node(cfg)
    document = SimpleNamespace(approval_id="A-1", project_reference="RAIH-1", study=parse_study(STUDY))
    with pytest.raises(Forbidden, match=r"(?s)1 problem for study 'trial'.*column 'Race', value 'Other' \(1 rows\)"):
        operator.check_mapping(cfg, SimpleNamespace(document=document), combine_mapping(MAP), operator="dpo")
    refused = [e for e in operator.audit_log(cfg).entries() if e.action == "approval.refused"]
    assert refused[-1].details == {"mapping_problems": 1, "variables": ["ethnicity"]}  # no value, no count
    fixed = combine_mapping([*MAP, 'ethnicity=Race:{Black:black,White:white,Other:""}'])
    operator.check_mapping(cfg, SimpleNamespace(document=document), fixed, operator="dpo")
    operator.check_mapping(cfg, SimpleNamespace(document=SimpleNamespace(approval_id="B")), Mapping(), operator="dpo")


def test_readiness_counts_exclusions_splits_classes_and_k_min(tmp_path: Path, trial_csv: Path) -> None:
    report = readiness(registered(tmp_path, trial_csv), parse_study(STUDY), combine_mapping(MAP), k_min=2)
    assert not report.ok
    assert (report.rows, report.kept) == (6, 4)
    assert report.excluded == {"unmapped value": 1, "missing value": 0, "filter": 0, "not in a split": 1}
    assert report.counts == {"train_rows": 3, "test_rows": 1, "train_positive": 2, "train_negative": 1,
                             "test_positive": 0, "test_negative": 1}
    assert report.below_k_min() == ["test_rows", "train_negative", "test_positive", "test_negative"]
    text = "\n".join(format_readiness(report))
    assert "4 of 6 rows in the cohort" in text
    assert "excluded: 1 unmapped value, 1 not in a split" in text
    assert "training rows: 3 (meets k_min = 2)" in text and "test rows: 1 (BELOW k_min = 2)" in text
    assert "trial.csv, column 'Race', value 'Other' (1 rows)" in text


def test_readiness_reports_an_absent_column(tmp_path: Path, trial_csv: Path) -> None:
    report = readiness(registered(tmp_path, trial_csv), parse_study(STUDY), combine_mapping(["age=AGE"]), k_min=11)
    assert not report.ok and report.error
    assert "column 'AGE', (column absent)" in "\n".join(format_readiness(report))
