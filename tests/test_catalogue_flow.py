"""The node publishes its dataset's columns and types to the desk's catalogue, never a value nor a count:
not in the profile it sends, not in the desk's database row, not on the hospital's page nor its JSON twin."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from fedsante.audit import AuditLog
from fedsante.common.errors import ConfigError
from fedsante.common.keys import public_key_b64
from fedsante.data.sources import DatasetDeclaration
from fedsante.desk.db import Node
from fedsante.desk.settings import DeskSettings
from fedsante.node import datasets
from fedsante.node.config import NodeConfig
from fedsante.node.datasets import catalogue_entries
from fedsante.node.objections import Objections
from fedsante.portal.app import create_app

ADMIN = {"authorization": "Bearer t"}
NAMES = ["Zéphyrine Quarkwood", "Anatole Brisepierre", "Ysolde Marchevent"]
ROWS = 13  # a rare count (under k_min), also a value of the numeric column


def csv_text(service: bool = False) -> str:
    extra = (",service", ",cardio") if service else ("", "")
    return f"ipp,nom_patient,sejours,statut{extra[0]}\n" + "".join(
        f"p{i:02d},{NAMES[i % 3]},{13 if i == 0 else 2 + i % 4},{'vivant' if i % 2 else 'décédé'}{extra[1]}\n"
        for i in range(ROWS))


@pytest.fixture(autouse=True)
def _fresh_cache():
    datasets.clear_cache()
    yield
    datasets.clear_cache()


class Recording(httpx.ASGITransport):
    """The desk in process, keeping the bodies the node sends."""

    def __init__(self, app) -> None:
        super().__init__(app=app)
        self.bodies: list[bytes] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            self.bodies.append(await request.aread())
        return await super().handle_async_request(request)


def leaves(value) -> list:
    """Every scalar in a JSON value (keys included)."""
    if isinstance(value, dict):
        return [*value.keys(), *(x for v in value.values() for x in leaves(v))]
    if isinstance(value, list):
        return [x for v in value for x in leaves(v)]
    return [value]


def assert_no_value_nor_count(document, where: str) -> None:
    for leaf in leaves(document):
        assert leaf not in (ROWS, str(ROWS), float(ROWS)), (where, leaf)
        if isinstance(leaf, str):
            assert not any(name in leaf for name in NAMES) and "décédé" not in leaf, (where, leaf)
            assert not re.search(rf"(?<![\w.]){ROWS}(?![\w.])", leaf), (where, leaf)


@pytest.fixture
def network(tmp_path):
    csv = tmp_path / "sejours.csv"
    csv.write_text(csv_text(), encoding="utf-8")
    key = Ed25519PrivateKey.generate()
    cfg = NodeConfig(node_id="chu-lille", desk_url="http://127.0.0.1", data_dir=tmp_path / "node", dataset="sejours")
    datasets.registry(cfg).add(DatasetDeclaration(name="sejours", path=str(csv), id_column="ipp",
                                                  description="Séjours de cardiologie"))
    app = create_app(DeskSettings(data_dir=tmp_path / "desk", database_url="sqlite://"), admin_token="t")
    with TestClient(app) as client:
        client.post("/api/v1/organisations", json={"name": "CHU"}, headers=ADMIN)
        client.post("/api/v1/nodes", headers=ADMIN, json={"node_id": "chu-lille", "organisation": "CHU",
                                                          "public_key": public_key_b64(key)})
        objections = Objections.open(cfg.data_dir, cfg.node_id, key, AuditLog(tmp_path / "audit.jsonl", key, "chu"),
                                     [cfg.dataset_name], lambda: catalogue_entries(cfg))
        yield app, client, objections, csv


def refresh(app, objections) -> Recording:
    transport = Recording(app)

    async def go() -> None:
        async with httpx.AsyncClient(transport=transport, base_url="http://desk") as client:
            await objections.refresh(client)

    asyncio.run(go())
    return transport


def test_columns_and_types_are_published_and_no_value_nor_count_anywhere(network) -> None:
    # Execute
    app, client, objections, _ = network
    (body,) = refresh(app, objections).bodies
    # Assert: the profile the node sent
    sent = json.loads(body)
    assert [(c["name"], c["type"]) for c in sent["catalogue"][0]["columns"]] == [
        ("ipp", "text"), ("nom_patient", "text"), ("sejours", "numeric"), ("statut", "text")]
    assert_no_value_nor_count({k: v for k, v in sent.items() if k != "objection_key"}, "profile")
    # the desk's row (every column but the keys and dates)
    with app.state.desk.sessions() as session:
        row = session.get(Node, "chu-lille")
        stored = {c.name: getattr(row, c.name) for c in Node.__table__.columns
                  if c.name not in ("objection_key", "public_key", "created_at")}
    assert stored["catalogue"] == sent["catalogue"]
    assert_no_value_nor_count(stored, "database")
    # the public page, its English mirror and its JSON twin
    twin = client.get("/hopitaux/chu-lille.json").json()
    assert twin["catalogue"] == sent["catalogue"]
    assert_no_value_nor_count(twin, "JSON twin")
    for path in ("/hopitaux/chu-lille", "/en/hospitals/chu-lille"):
        page = client.get(path).text
        assert "nom_patient" in page and "Séjours de cardiologie" in page
        assert_no_value_nor_count(re.sub(r"<style>.*?</style>", "", page, flags=re.S), path)


def test_the_profile_is_sent_once_then_again_when_the_dataset_changes(network) -> None:
    app, client, objections, csv = network
    assert len(refresh(app, objections).bodies) == 1
    assert refresh(app, objections).bodies == []  # unchanged: not sent again
    csv.write_text(csv_text(service=True), encoding="utf-8")
    (body,) = refresh(app, objections).bodies
    assert json.loads(body)["catalogue"][0]["columns"][-1] == {"name": "service", "type": "text",
                                                               "distinct": "<= 20 levels"}
    (hospital,) = client.get("/api/v1/catalogue", headers=ADMIN).json()
    assert [c["name"] for c in hospital["datasets"][0]["columns"]][-1] == "service"
    audited = [e for e in app.state.desk.audit_log().entries() if e.action == "node.profile"]
    assert len(audited) == 2


def test_a_file_unreadable_while_serving_keeps_the_last_catalogue(network) -> None:
    app, client, objections, csv = network
    refresh(app, objections)
    csv.unlink()
    assert refresh(app, objections).bodies == []  # objections keep flowing, the desk keeps the last catalogue
    assert client.get("/hopitaux/chu-lille.json").json()["catalogue"][0]["name"] == "sejours"


def test_a_dataset_the_catalogue_cannot_take_is_refused_before_serving(tmp_path) -> None:
    csv = tmp_path / "wide.csv"
    csv.write_text("id," + ",".join(f"c{i}" for i in range(500)) + "\n" + "a," + ",".join("1" * 500) + "\n",
                   encoding="utf-8")
    cfg = NodeConfig(node_id="h1", desk_url="http://127.0.0.1", data_dir=tmp_path / "node", dataset="wide")
    datasets.registry(cfg).add(DatasetDeclaration(name="wide", path=str(csv), id_column="id"))
    with pytest.raises(ConfigError, match=r"cannot take dataset 'wide'.*columns: List should have at most 500"):
        catalogue_entries(cfg)
