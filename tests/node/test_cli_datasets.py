"""`fedsante node dataset add/list`, `node accept --map` and `node check --project`, with Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from fedsante.cli import app
from fedsante.data.study import parse_study
from fedsante.node import datasets, operator
from test_datasets import MAP, STUDY, TRIAL

runner = CliRunner()


@pytest.fixture(autouse=True)
def _fresh_cache():
    datasets.clear_cache()


@pytest.fixture
def node(tmp_path: Path) -> Path:
    (tmp_path / "trial.csv").write_text(TRIAL, encoding="utf-8")
    config = tmp_path / "node.toml"
    done = runner.invoke(app, ["node", "init", "--config", str(config), "--node-id", "h1", "--dataset", "trial",
                               "--data-dir", str(tmp_path / "h1-data")])
    assert done.exit_code == 0, done.output
    assert "'trial' is not registered yet" in done.output
    return config


def fedsante(*args: str, code: int = 0) -> str:
    done = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    assert done.exit_code == code, done.output
    return done.output


def test_dataset_add_prints_columns_and_rows_locally_and_list_shows_it(node: Path, tmp_path: Path) -> None:
    out = fedsante("node", "dataset", "add", "trial", "--path", str(tmp_path / "trial.csv"), "--id-column", "SUBJ",
                   "--description", "A small trial", "--config", str(node))
    assert "trial: 6 rows" in out and "AGE_YRS" in out and "numeric" in out
    out = fedsante("node", "dataset", "list", "--config", str(node))
    assert "registered" in out and "A small trial" in out and "cleveland" in out
    out = fedsante("node", "check", "--config", str(node))
    assert "dataset 'trial'" in out and "6 rows, 5 columns" in out


def test_dataset_add_refuses_a_bad_file_and_a_duplicate(node: Path, tmp_path: Path) -> None:
    out = fedsante("node", "dataset", "add", "trial", "--path", str(tmp_path / "trial.csv"), "--config", str(node),
                   code=1)
    assert "no identifier column 'patient_id'" in out
    args = ["node", "dataset", "add", "trial", "--path", str(tmp_path / "trial.csv"), "--id-column", "SUBJ",
            "--config", str(node)]
    fedsante(*args)
    assert "already registered" in fedsante(*args, code=1)
    fedsante(*args, "--replace")


def test_accept_passes_the_combined_mapping(node: Path, tmp_path: Path, monkeypatch) -> None:
    seen = {}

    async def decide(cfg, reference, decision, *, operator, reason, mapping):
        seen["mapping"] = mapping
        return SimpleNamespace(document=SimpleNamespace(approval_id="A-1", title="T")), {"sha256": "0" * 64}

    monkeypatch.setattr(operator, "decide", decide)
    (tmp_path / "map.toml").write_text('[map]\nage = "AGE"\ndeath = "Outcome"\n', encoding="utf-8")
    fedsante("node", "accept", "RAIH-1", "--config", str(node), "--operator", "dpo", "--mapping",
             str(tmp_path / "map.toml"), "--map", "age=AGE_YRS", "--map", "arm=Arm")
    assert {m.variable: m.column for m in seen["mapping"].variables} == {"age": "AGE_YRS", "death": "Outcome",
                                                                       "arm": "Arm"}


def test_check_project_prints_local_feasibility_and_fails_on_mapping_problems(node: Path, tmp_path: Path,
                                                                             monkeypatch) -> None:
    fedsante("node", "dataset", "add", "trial", "--path", str(tmp_path / "trial.csv"), "--id-column", "SUBJ",
             "--config", str(node))
    document = SimpleNamespace(approval_id="A-1", project_reference="RAIH-1", k_min=1, study=parse_study(STUDY))

    async def fetch_approval(cfg, reference):
        return SimpleNamespace(document=document)

    monkeypatch.setattr(operator, "fetch_approval", fetch_approval)
    args = ["node", "check", "--config", str(node), "--project", "RAIH-1", *sum((["--map", m] for m in MAP), [])]
    out = fedsante(*args, code=1)
    assert "4 of 6 rows in the cohort" in out and "k_min = 11" in out  # the node's floor wins over 1
    assert "column 'Race', value 'Other' (1 rows)" in out
    out = fedsante(*args, "--map", 'ethnicity=Race:{Black:black,White:white,Other:""}')
    assert "excluded: 1 missing value, 1 not in a split" in out and "mapping problem" not in out


def test_check_project_reads_the_stored_mapping(node: Path, tmp_path: Path, monkeypatch) -> None:
    fedsante("node", "dataset", "add", "trial", "--path", str(tmp_path / "trial.csv"), "--id-column", "SUBJ",
             "--config", str(node))
    acceptances = tmp_path / "h1-data" / "acceptances.json"
    mapping = datasets.combine_mapping([*MAP, 'ethnicity=Race:{Black:black,White:white,Other:""}'])
    acceptances.write_text(json.dumps({"A-1": {"decision": "accepted", "mapping": mapping.model_dump(mode="json")}}))
    document = SimpleNamespace(approval_id="A-1", project_reference="RAIH-1", k_min=11, study=parse_study(STUDY))

    async def fetch_approval(cfg, reference):
        return SimpleNamespace(document=document)

    monkeypatch.setattr(operator, "fetch_approval", fetch_approval)
    out = fedsante("node", "check", "--config", str(node), "--project", "RAIH-1")
    assert "training rows: 3 (BELOW k_min = 11)" in out
