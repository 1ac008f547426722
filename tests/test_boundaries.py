"""Bad input at each boundary gets a clear error naming the problem and the fix."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fedsante.common.errors import ConfigError, DataError
from fedsante.data.heart import load_csv, load_hospital
from fedsante.desk.app import create_app
from fedsante.desk.settings import DeskSettings
from fedsante.node.config import load_config

HEADER = "patient_id,age,sex,trestbps,chol,fbs,thalach,exang,oldpeak,cp,restecg,num,split"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.csv"
    path.write_text(text)
    return path


def test_unknown_hospital_lists_the_bundled_ones() -> None:
    with pytest.raises(DataError, match=r"Unknown hospital 'paris'\. Bundled hospitals: cleveland, hungarian, switzerland, va"):
        load_hospital("paris")


def test_missing_column_names_the_column_and_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER.replace(",chol", "") + "\np1,63,1,145,1,150,0,2.3,3,2,1,train\n")
    with pytest.raises(DataError, match=r"site\.csv: 1 mapping problem for study 'heart': column 'chol'"):
        load_csv(path, hospital="h")


def test_non_numeric_value_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "\np1,63,1,high,233,1,150,0,2.3,1,2,0,train\n")
    with pytest.raises(DataError, match=r"column 'trestbps' hold 'high', but 'trestbps' expects a number"):
        load_csv(path, hospital="h")


def test_unknown_category_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "\np1,63,1,145,233,1,150,0,2.3,7,2,0,train\n")
    with pytest.raises(DataError, match=r"column 'cp' hold '7', but 'cp' expects one of the levels 1, 2, 3, 4"):
        load_csv(path, hospital="h")


def test_valid_csv_is_encoded_like_the_bundled_data(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "\np1,63,1,145,233,1,150,0,2.3,3,2,1,train\np2,50,0,120,?,0,140,1,0,1,0,0,test\n")

    table = load_csv(path, hospital="h")

    assert table.X.tolist() == [[63, 1, 145, 233, 1, 150, 0, 2.3, 0, 1, 0, 0, 1]]
    assert table.y.tolist() == [1.0] and table.excluded["missing value"] == 1


def test_node_config_refuses_unknown_settings_by_name(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('node_id = "h1"\ndesk_url = "http://127.0.0.1:1"\ndata_dir = "d"\ndataset = "va"\nk_mn = 3\n')
    with pytest.raises(ConfigError, match=r"k_mn: Extra inputs are not permitted"):
        load_config(path)


@pytest.fixture
def desk(tmp_path: Path) -> TestClient:
    return TestClient(create_app(DeskSettings(data_dir=tmp_path, database_url="sqlite://"), admin_token="t0ken"))


def test_error_shape_is_pinned(desk: TestClient) -> None:
    response = desk.get("/api/v1/runs")
    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"ok", "error", "errors", "status"}
    assert body["ok"] is False and body["status"] == 401 and "needs an account token" in body["error"]


def test_run_with_an_unknown_field_is_refused_naming_it(desk: TestClient) -> None:
    auth = {"authorization": "Bearer t0ken"}
    response = desk.post("/api/v1/runs", headers=auth, json={"project_id": 1, "nodes": ["a"]})
    assert response.status_code == 403  # the admin is not a project holder: refused before the body is read
    assert "project holder role" in response.json()["error"]


def test_unsigned_node_request_is_refused(desk: TestClient) -> None:
    response = desk.get("/api/v1/node/tasks/next", headers={"x-fedsante-node": "ghost"})
    assert response.status_code == 401
    assert "not registered" in response.json()["error"]
