"""The desk's dataset catalogue: profiles validated as hostile input, stored, audited when they change,
served to accounts (GET /api/v1/catalogue) and on the hospital's public page in French and English."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from nacl.public import PrivateKey

from fedsante.common.keys import public_key_b64
from fedsante.desk.settings import DeskSettings
from fedsante.federation.auth import sign_request
from fedsante.portal.app import create_app
from fedsante.portal.schema import HospitalPage
from fedsante.privacy.objections import public_b64

ADMIN = {"authorization": "Bearer t"}
KEY = public_b64(PrivateKey.generate())
COLUMNS = [{"name": "AGE_YRS", "type": "numeric", "distinct": "many"},
           {"name": "Race", "type": "text", "distinct": "<= 20 levels"}]
ENTRY = {"name": "eds-cardio", "description": "Cardiology stays, 2015-2024", "format": "csv", "columns": COLUMNS}


@pytest.fixture
def desk(tmp_path):
    app = create_app(DeskSettings(data_dir=tmp_path, database_url="sqlite://"), admin_token="t")
    with TestClient(app) as client:
        assert client.post("/api/v1/organisations", json={"name": "CHU"}, headers=ADMIN).status_code == 201
        key = Ed25519PrivateKey.generate()
        assert client.post("/api/v1/nodes", headers=ADMIN, json={
            "node_id": "chu-lille", "organisation": "CHU", "public_key": public_key_b64(key),
            "hospital_name": "CHU de Lille", "territory": "Nord"}).status_code == 201
        yield app, client, key


def put_profile(client, key, profile: dict):
    body = json.dumps(profile).encode()
    headers = sign_request(key, "chu-lille", "PUT", "/api/v1/node/profile", body) | {"content-type": "application/json"}
    return client.put("/api/v1/node/profile", content=body, headers=headers)


def profile(**changes) -> dict:
    return {"objection_key": KEY, "datasets": ["eds-cardio"], "catalogue": [ENTRY]} | changes


def entry(**changes) -> dict:
    return ENTRY | changes


def test_the_catalogue_is_stored_served_to_accounts_and_audited_when_it_changes(desk) -> None:
    # Prepare
    app, client, key = desk
    # Execute
    assert put_profile(client, key, profile()).status_code == 200
    assert put_profile(client, key, profile()).status_code == 200  # the same again: no new audit entry
    changed = entry(columns=[*COLUMNS, {"name": "Outcome", "type": "text", "distinct": "<= 20 levels"}])
    assert put_profile(client, key, profile(catalogue=[changed])).status_code == 200
    # Assert
    (lille,) = client.get("/api/v1/catalogue", headers=ADMIN).json()
    assert lille == {"node_id": "chu-lille", "hospital_name": "CHU de Lille", "territory": "Nord",
                     "datasets": [changed]}
    audited = [e for e in app.state.desk.audit_log().entries() if e.action == "node.profile"]
    assert len(audited) == 2 and audited[-1].details["columns"] == {"eds-cardio": 3}
    assert len(audited[-1].details["catalogue_sha256"]) == 64
    assert client.get("/api/v1/catalogue").status_code == 401


@pytest.mark.parametrize("body, field", [
    (profile(catalogue=[entry(columns=[{"name": f"c{i}", "type": "text", "distinct": "many"} for i in range(501)])]),
     "catalogue.0.columns"),
    (profile(catalogue=[entry(columns=[{"name": "age", "type": "date", "distinct": "many"}])]),
     "catalogue.0.columns.0.type"),
    (profile(catalogue=[entry(columns=[{"name": "age", "type": "numeric", "distinct": "13"}])]),
     "catalogue.0.columns.0.distinct"),
    (profile(catalogue=[entry(columns=[{"name": "age", "type": "numeric", "distinct": "many", "values": [63]}])]),
     "catalogue.0.columns.0.values"),
    (profile(catalogue=[entry(rows=13)]), "catalogue.0.rows"),
    (profile(n_rows=13), "n_rows"),
    (profile(catalogue=[entry(description="x" * 501)]), "catalogue.0.description"),
    (profile(catalogue=[entry(name="x" * 101)]), "catalogue.0.name"),
    (profile(catalogue=[entry(columns=[{"name": "a\x1b[2J", "type": "text", "distinct": "many"}])]),
     "catalogue.0.columns.0.name"),
    (profile(datasets=[f"d{i}" for i in range(51)]), "datasets"),
    (profile(catalogue=[entry(name="not-offered")]), "catalogue"),
])
def test_bad_profiles_are_refused_with_422_naming_the_field(desk, body, field) -> None:
    app, client, key = desk
    response = put_profile(client, key, body)
    assert response.status_code == 422, response.text
    assert any(e.startswith(f"{field}:") for e in response.json()["errors"]), response.json()["errors"]
    with app.state.desk.sessions() as session:
        from fedsante.desk.db import Node

        assert session.get(Node, "chu-lille").catalogue is None  # nothing stored


@pytest.mark.parametrize("path, words", [
    ("/hopitaux/chu-lille", ["Colonnes des jeux de données", "Colonnes de eds-cardio", "nombre", "texte",
                             "nombreuses", "≤ 20 valeurs distinctes", "Cardiology stays, 2015-2024"]),
    ("/en/hospitals/chu-lille", ["Columns of the datasets", "Columns of eds-cardio", "number", "text", "many",
                                 "≤ 20 distinct values"]),
])
def test_the_hospital_page_shows_each_column_in_plain_words(desk, path, words) -> None:
    _, client, key = desk
    assert "pas encore publié ses colonnes" in client.get("/hopitaux/chu-lille").text
    put_profile(client, key, profile())
    page = client.get(path)
    assert page.status_code == 200
    for word in words:
        assert word in page.text, word
    assert "<code>AGE_YRS</code>" in page.text and 'role="region" tabindex="0"' in page.text
    twin = HospitalPage.model_validate(client.get("/hopitaux/chu-lille.json").json())
    assert [c.model_dump() for c in twin.catalogue[0].columns] == COLUMNS


def test_the_cli_prints_a_table_per_hospital_and_shows_markup_as_text(desk, monkeypatch) -> None:
    import asyncio

    import httpx
    from typer.testing import CliRunner

    from fedsante.cli import app as cli
    from fedsante.cli import projects
    from fedsante.desk.client import DeskClient

    app, client, key = desk
    put_profile(client, key, profile(catalogue=[entry(columns=[*COLUMNS, {"name": "[bold]x[/]", "type": "text",
                                                                           "distinct": "many"}])]))

    def in_process(_url, _token_file, action):
        async def go():
            async with DeskClient("http://desk", "t", transport=httpx.ASGITransport(app=app)) as desk_client:
                return await action(desk_client)
        return asyncio.run(go())

    monkeypatch.setattr(projects, "with_desk", in_process)
    result = CliRunner().invoke(cli, ["project", "catalogue"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "CHU de Lille (chu-lille)" in result.output and "eds-cardio (csv): Cardiology stays" in result.output
    assert "AGE_YRS" in result.output and "<= 20 levels" in result.output and "[bold]x[/]" in result.output
    missing = CliRunner().invoke(cli, ["project", "catalogue", "--hospital", "chu-nowhere"])
    assert missing.exit_code == 1 and "No hospital 'chu-nowhere'" in missing.output
