"""Published audit heads only move forward, and only with results the desk accepted for a pending task."""

import asyncio

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from fedsante.common.keys import canonical_json, sign
from fedsante.desk.app import create_app
from fedsante.desk.settings import DeskSettings
from fedsante.federation.auth import sign_request
from fedsante.federation.broker import _Pending
from fedsante.federation.messages import TaskResult
from tests.desk.test_api import ADMIN, TOKEN, create_org, register_node

RESULTS = "/api/v1/node/results"


@pytest.fixture
def client(tmp_path):
    with TestClient(create_app(DeskSettings(data_dir=tmp_path, database_url="sqlite://"), admin_token=TOKEN)) as c:
        yield c


@pytest.fixture
def node_key(client) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    create_org(client)
    assert register_node(client, key).status_code == 201
    return key


def pending(client, task_id: str) -> None:
    """Make the desk await ``task_id`` from chu-lille (as a run outside the coordinator would)."""
    client.app.state.desk.broker._pending[task_id] = _Pending("chu-lille", asyncio.new_event_loop().create_future())


def post(client, key, task_id: str, seq: int, head: str, epsilon: float):
    result = TaskResult(task_id=task_id, run_id="r1", node_id="chu-lille", ok=True, audit_seq=seq, audit_head=head,
                        privacy={"epsilon": epsilon, "delta": 1e-6, "runs": 1})
    result = result.model_copy(update={"signature": sign(key, canonical_json(result.signed_content()))})
    body = result.model_dump_json().encode()
    headers = sign_request(key, "chu-lille", "POST", RESULTS, body) | {"content-type": "application/json"}
    return client.post(RESULTS, content=body, headers=headers)


def published(client) -> tuple[dict, dict]:
    heads = client.get("/api/v1/audit/heads").json()["nodes"]["chu-lille"]
    return heads, client.get("/api/v1/privacy").json()["nodes"]["chu-lille"]


def test_a_result_for_an_unknown_task_changes_nothing(client, node_key) -> None:
    assert post(client, node_key, "ghost", 74, "a" * 64, 2.0).status_code == 409
    head, privacy = published(client)
    assert (head["seq"], head["hash"], privacy["epsilon"]) == (None, None, 0.0)


def test_a_reposted_old_result_does_not_move_the_head_or_epsilon_back(client, node_key) -> None:
    pending(client, "t1")
    assert post(client, node_key, "t1", 40, "b" * 64, 1.0).status_code == 202
    pending(client, "t2")
    assert post(client, node_key, "t2", 74, "c" * 64, 2.0).status_code == 202
    assert post(client, node_key, "t1", 40, "b" * 64, 1.0).status_code == 409  # the old result, re-posted
    head, privacy = published(client)
    assert (head["seq"], head["hash"], privacy["epsilon"]) == (74, "c" * 64, 2.0)

    # Even for a task the desk awaits, a head that goes backwards is refused and audited.
    pending(client, "t3")
    assert post(client, node_key, "t3", 40, "b" * 64, 1.0).status_code == 202
    head, privacy = published(client)
    assert (head["seq"], head["hash"], privacy["epsilon"]) == (74, "c" * 64, 2.0)
    refused = [e for e in client.app.state.desk.audit_log().entries() if e.action == "audit.head_refused"]
    assert len(refused) == 1 and refused[0].details["reported_seq"] == 40 and refused[0].details["published_seq"] == 74
