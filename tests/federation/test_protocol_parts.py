"""The protocol's parts one by one: keys, messages, request auth, catalogue, node agent, broker."""

import asyncio
import base64
import math
import os
import re
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from fedsante import __version__
from fedsante.data.heart import load_hospital
from fedsante.common.errors import BadRequest, ConfigError, Conflict, Forbidden, NotFound, Unauthorized
from fedsante.federation import auth
from fedsante.federation.auth import NODE_HEADER, SIGNATURE_HEADER, TIME_HEADER, sign_request, verify_request
from fedsante.federation.broker import Broker
from fedsante.algorithms.base import code_hash
from fedsante.algorithms.catalogue import get_algorithm
from fedsante.common.keys import (
    canonical_json, generate_key, load_key, parse_public_key, public_key_b64, sign, verify,
)
from fedsante.federation.messages import AlgorithmRef, ArrayPayload, Task, TaskResult, pack, unpack
from fedsante.node.agent import NodeAgent
from conftest import seal


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def other_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def make_task(task_id: str = "t1", *, kind: str = "moments", algorithm: AlgorithmRef | None = None) -> Task:
    return Task(task_id=task_id, run_id="r1", node_id="va", round=0, kind=kind,
                algorithm=algorithm or get_algorithm("logreg").ref())


def make_result(task_id: str = "t1", node_id: str = "n1") -> TaskResult:
    return TaskResult(task_id=task_id, run_id="r1", node_id=node_id, ok=True)


# --- keys ----------------------------------------------------------------------------------------

def test_sign_then_verify_round_trips(key: Ed25519PrivateKey) -> None:
    data = canonical_json({"b": [1, 2.5], "a": "é"})
    assert verify(public_key_b64(key), data, sign(key, data)) is True


def test_verify_is_false_on_tampered_data(key: Ed25519PrivateKey) -> None:
    signature = sign(key, b"payload")
    assert verify(public_key_b64(key), b"payloaD", signature) is False


def test_verify_is_false_with_another_key(key: Ed25519PrivateKey, other_key: Ed25519PrivateKey) -> None:
    signature = sign(key, b"payload")
    assert verify(public_key_b64(other_key), b"payload", signature) is False


@pytest.mark.parametrize("signature", ["", "not base64!", base64.b64encode(b"short").decode()])
def test_verify_is_false_on_a_malformed_signature(key: Ed25519PrivateKey, signature: str) -> None:
    assert verify(public_key_b64(key), b"payload", signature) is False


def test_verify_is_false_on_a_malformed_public_key(key: Ed25519PrivateKey) -> None:
    assert verify("A" * 44, b"payload", sign(key, b"payload")) is False


def test_parse_public_key_refuses_bad_base64() -> None:
    with pytest.raises(BadRequest, match=r"is not base64 of 32 raw Ed25519 bytes"):
        parse_public_key("!" * 44)


def test_canonical_json_does_not_depend_on_key_order() -> None:
    a = canonical_json({"x": 1, "y": {"b": 2, "a": [3, "é"]}})
    b = canonical_json({"y": {"a": [3, "é"], "b": 2}, "x": 1})
    assert a == b == '{"x":1,"y":{"a":[3,"é"],"b":2}}'.encode()


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_canonical_json_refuses_non_finite_floats(value: float) -> None:
    with pytest.raises(ValueError, match=r"Out of range float values are not JSON compliant"):
        canonical_json({"auc": value})


def test_generate_key_writes_mode_0600_and_load_key_reads_it(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "sub" / "node_key.pem"

    # Execute
    created = generate_key(path)
    loaded = load_key(path)

    # Assert
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert public_key_b64(loaded) == public_key_b64(created)


def test_generate_key_refuses_to_overwrite(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "node_key.pem"
    generate_key(path)
    before = path.read_bytes()

    # Execute / Assert
    with pytest.raises(ConfigError, match=r"node_key\.pem already exists; refusing to overwrite it"):
        generate_key(path)
    assert path.read_bytes() == before


def test_load_key_on_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.pem does not exist\. Create it with 'fedsante node init'"):
        load_key(tmp_path / "missing.pem")


def test_load_key_on_a_file_that_is_not_pem(tmp_path: Path) -> None:
    path = tmp_path / "junk.pem"
    path.write_text("hello\n")
    with pytest.raises(ConfigError, match=r"junk\.pem is not a PEM private key"):
        load_key(path)


# --- messages ------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "array",
    [np.array([[1.0, -2.5, 1e-300], [np.pi, -0.0, 1e300]]), np.arange(5.0), np.array([42.0]), np.zeros((0, 3))],
)
def test_array_payload_round_trip_is_exact(array: np.ndarray) -> None:
    # Execute
    back = ArrayPayload.model_validate_json(ArrayPayload.of(array).model_dump_json()).to_numpy()

    # Assert
    assert back.dtype == np.float64 and back.shape == array.shape
    assert back.tobytes() == array.tobytes()


def test_array_payload_with_the_wrong_length_raises() -> None:
    # Prepare: 2x3 shape but the bytes of one float
    data = base64.b64encode(np.float64(1.0).tobytes()).decode()

    # Execute / Assert: refused when the message is read, not later
    with pytest.raises(ValueError, match=r"Array payload holds 8 bytes, expected 48 for shape \[2, 3\]\."):
        ArrayPayload(shape=[2, 3], data=data)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_array_payload_refuses_non_finite_values(value: float) -> None:
    data = base64.b64encode(np.array([1.0, value], dtype="<f8").tobytes()).decode()
    with pytest.raises(ValueError, match="non-finite values"):
        ArrayPayload(shape=[2], data=data)


def test_array_payload_refuses_oversized_shapes_and_bad_base64() -> None:
    with pytest.raises(ValueError, match="more than 5000000"):
        ArrayPayload(shape=[5000, 5000], data="")
    with pytest.raises(ValueError, match="not base64"):
        ArrayPayload(shape=[1], data="***")


def test_pack_unpack_round_trip() -> None:
    arrays = {"coef": np.array([0.5, -1.0]), "intercept": np.array([0.25])}
    back = unpack(pack(arrays))
    assert back.keys() == arrays.keys()
    for k in arrays:
        np.testing.assert_array_equal(back[k], arrays[k])


def test_task_rejects_unknown_fields() -> None:
    data = make_task().model_dump(mode="json") | {"code": "import os"}
    with pytest.raises(ValidationError, match=r"code\s+Extra inputs are not permitted"):
        Task.model_validate(data)


def test_task_rejects_an_unknown_kind_and_a_negative_round() -> None:
    data = make_task().model_dump(mode="json")
    with pytest.raises(ValidationError, match=r"kind\s+String should match pattern"):
        Task.model_validate(data | {"kind": "Train; DROP"})
    with pytest.raises(ValidationError, match=r"round\s+Input should be greater than or equal to 0"):
        Task.model_validate(data | {"round": -1})


def test_task_rejects_another_protocol_version() -> None:
    data = make_task().model_dump(mode="json") | {"protocol": 2}
    with pytest.raises(ValidationError, match=r"protocol\s+Input should be 1"):
        Task.model_validate(data)


def test_task_result_signed_content_excludes_the_signature() -> None:
    result = make_result().model_copy(update={"signature": "sig"})
    content = result.signed_content()
    assert "signature" not in content and content["task_id"] == "t1"


# --- request authentication ----------------------------------------------------------------------

def test_a_request_is_accepted_once_and_a_replay_is_refused(key: Ed25519PrivateKey) -> None:
    # Prepare: a captured long-poll, and a desk that remembers nonces
    nonces = auth.NonceCache(since=time.time() - 5)
    headers = sign_request(key, "va", "GET", "/api/v1/node/tasks/next?wait=10", b"")

    # Execute / Assert: the first use passes, the replay (same headers, within the time window) does not
    verify_request(public_key_b64(key), headers, "GET", "/api/v1/node/tasks/next?wait=10", b"", nonces=nonces)
    with pytest.raises(Unauthorized, match=r"nonce of node 'va' was already used: a replayed request"):
        verify_request(public_key_b64(key), headers, "GET", "/api/v1/node/tasks/next?wait=10", b"", nonces=nonces)
    # each node's own requests are independent, and two fresh requests never share a nonce
    again = sign_request(key, "va", "GET", "/api/v1/node/tasks/next?wait=10", b"")
    assert again[auth.NONCE_HEADER] != headers[auth.NONCE_HEADER]
    verify_request(public_key_b64(key), again, "GET", "/api/v1/node/tasks/next?wait=10", b"", nonces=nonces)


def test_a_request_signed_before_the_desk_started_is_refused(key: Ed25519PrivateKey) -> None:
    headers = sign_request(key, "va", "GET", "/p", b"")
    restarted = auth.NonceCache(since=time.time() + 5)  # the desk started after the request was captured
    with pytest.raises(Unauthorized, match=r"signed before the desk started"):
        verify_request(public_key_b64(key), headers, "GET", "/p", b"", nonces=restarted)


@pytest.mark.parametrize("nonce", [None, "", "xyz", "0" * 31, "g" * 32])
def test_a_request_without_a_well_formed_nonce_is_refused(key: Ed25519PrivateKey, nonce) -> None:
    headers = sign_request(key, "va", "GET", "/p", b"")
    if nonce is None:
        del headers[auth.NONCE_HEADER]
    else:
        headers[auth.NONCE_HEADER] = nonce
    with pytest.raises(Unauthorized, match=r"x-fedsante-nonce' must be 32 hexadecimal digits"):
        verify_request(public_key_b64(key), headers, "GET", "/p", b"")


def test_a_changed_nonce_breaks_the_signature(key: Ed25519PrivateKey) -> None:
    headers = sign_request(key, "va", "GET", "/p", b"")
    headers[auth.NONCE_HEADER] = "0" * 32
    with pytest.raises(Unauthorized, match=r"does not verify"):
        verify_request(public_key_b64(key), headers, "GET", "/p", b"")


def test_fresh_request_signature_verifies(key: Ed25519PrivateKey) -> None:
    # Prepare
    headers = sign_request(key, "n1", "post", "/api/v1/node/results", b'{"a":1}')

    # Execute / Assert: no exception (method is case-insensitive)
    assert verify_request(public_key_b64(key), headers, "POST", "/api/v1/node/results", b'{"a":1}') is None
    assert headers[NODE_HEADER] == "n1"


def test_request_with_a_tampered_body_is_refused(key: Ed25519PrivateKey) -> None:
    headers = sign_request(key, "n1", "POST", "/api/v1/node/results", b'{"a":1}')
    with pytest.raises(Unauthorized, match=r"Signature of node 'n1' does not verify with its registered key"):
        verify_request(public_key_b64(key), headers, "POST", "/api/v1/node/results", b'{"a":2}')


def test_request_for_another_path_is_refused(key: Ed25519PrivateKey) -> None:
    headers = sign_request(key, "n1", "GET", "/api/v1/node/tasks/next?wait=10", b"")
    with pytest.raises(Unauthorized, match=r"does not verify with its registered key"):
        verify_request(public_key_b64(key), headers, "GET", "/api/v1/node/tasks/next?wait=30", b"")


def test_request_with_another_method_is_refused(key: Ed25519PrivateKey) -> None:
    headers = sign_request(key, "n1", "GET", "/p", b"")
    with pytest.raises(Unauthorized, match=r"does not verify"):
        verify_request(public_key_b64(key), headers, "POST", "/p", b"")


def test_request_signed_by_another_key_is_refused(key: Ed25519PrivateKey, other_key: Ed25519PrivateKey) -> None:
    headers = sign_request(other_key, "n1", "GET", "/p", b"")
    with pytest.raises(Unauthorized, match=r"Signature of node 'n1' does not verify"):
        verify_request(public_key_b64(key), headers, "GET", "/p", b"")


def test_request_without_a_signature_is_refused(key: Ed25519PrivateKey) -> None:
    headers = sign_request(key, "n1", "GET", "/p", b"")
    del headers[SIGNATURE_HEADER]
    with pytest.raises(Unauthorized, match=r"does not verify"):
        verify_request(public_key_b64(key), headers, "GET", "/p", b"")


def test_stale_request_is_refused_even_with_a_valid_signature(key: Ed25519PrivateKey, monkeypatch) -> None:
    # Prepare: sign five minutes ago
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: time.time() - 300))
    headers = sign_request(key, "n1", "GET", "/p", b"")
    monkeypatch.undo()

    # Execute / Assert
    with pytest.raises(Unauthorized, match=r"Request time is 300 s away from the desk's clock \(limit 60 s\)\. Synchronise"):
        verify_request(public_key_b64(key), headers, "GET", "/p", b"")


def test_request_from_the_future_is_refused(key: Ed25519PrivateKey, monkeypatch) -> None:
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: time.time() + 120))
    headers = sign_request(key, "n1", "GET", "/p", b"")
    monkeypatch.undo()
    with pytest.raises(Unauthorized, match=r"Request time is 120 s away"):
        verify_request(public_key_b64(key), headers, "GET", "/p", b"")


@pytest.mark.parametrize("timestamp", ["yesterday", "", "12:00"])
def test_request_with_a_garbage_timestamp_is_refused(key: Ed25519PrivateKey, timestamp: str) -> None:
    headers = sign_request(key, "n1", "GET", "/p", b"") | {TIME_HEADER: timestamp}
    with pytest.raises(Unauthorized, match=rf"Header 'x-fedsante-time' must be a Unix time; got '{timestamp}'\."):
        verify_request(public_key_b64(key), headers, "GET", "/p", b"")


def test_request_without_a_timestamp_is_refused(key: Ed25519PrivateKey) -> None:
    headers = sign_request(key, "n1", "GET", "/p", b"")
    del headers[TIME_HEADER]
    with pytest.raises(Unauthorized, match=r"must be a Unix time; got ''"):
        verify_request(public_key_b64(key), headers, "GET", "/p", b"")


@pytest.mark.parametrize("timestamp", ["nan", "inf"])
def test_request_with_a_non_finite_timestamp_is_refused(key: Ed25519PrivateKey, monkeypatch, timestamp: str) -> None:
    # Prepare: a correctly signed request whose timestamp is not a finite time. It can never be
    # fresh; accepting it would make the request replayable forever.
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: float(timestamp)))
    headers = sign_request(key, "n1", "GET", "/p", b"")
    monkeypatch.undo()

    assert headers[TIME_HEADER] == timestamp

    # Execute / Assert
    with pytest.raises(Unauthorized, match=r"x-fedsante-time|desk's clock"):
        verify_request(public_key_b64(key), headers, "GET", "/p", b"")


# --- catalogue -----------------------------------------------------------------------------------

def test_get_algorithm_unknown_lists_the_catalogue() -> None:
    with pytest.raises(NotFound, match=rf"Unknown algorithm 'nope'\. The catalogue of fedsante {re.escape(__version__)} has: logreg\."):
        get_algorithm("nope")


def test_get_algorithm_logreg() -> None:
    algorithm = get_algorithm("logreg")
    assert algorithm.id == "logreg" and algorithm.version == __version__


def test_code_hash_is_stable_and_64_hex_characters() -> None:
    # Prepare
    modules = get_algorithm("logreg").hashed_modules()

    # Execute: bypass the cache for the second computation
    first = code_hash(modules)
    second = code_hash.__wrapped__(modules)

    # Assert
    assert first == second
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert get_algorithm("logreg").ref().code_hash == first


def test_code_hash_depends_on_the_modules_and_their_order() -> None:
    modules = get_algorithm("logreg").hashed_modules()
    assert code_hash(modules[:-1]) != code_hash(modules)
    assert code_hash(tuple(reversed(modules))) != code_hash(modules)


# --- node agent ----------------------------------------------------------------------------------

@pytest.fixture
def agent(governed, key: Ed25519PrivateKey) -> NodeAgent:
    """A node that accepted the approval the tasks of ``make_task`` run under."""
    return NodeAgent(node_id="va", table=load_hospital("va"), key=key, client=None, guard=governed.guard())


@pytest.fixture
def governed_task(governed):
    def make(task_id: str = "t1", *, kind: str = "moments", algorithm: AlgorithmRef | None = None,
             params: dict | None = None) -> Task:
        task = governed.task(kind, task_id=task_id)
        changes = {k: v for k, v in (("algorithm", algorithm), ("params", params)) if v is not None}
        return seal(task.model_copy(update=changes), governed.desk_key) if changes else task
    return make


def verifies(result: TaskResult, key: Ed25519PrivateKey) -> bool:
    return verify(public_key_b64(key), canonical_json(result.signed_content()), result.signature)


def test_node_refuses_a_task_with_another_code_hash_and_signs_the_refusal(agent: NodeAgent, key, governed_task) -> None:
    # Prepare
    ref = get_algorithm("logreg").ref().model_copy(update={"code_hash": "f" * 64})

    # Execute
    result = agent.handle(governed_task("t9", algorithm=ref))

    # Assert
    assert result.ok is False and "the task asks for logreg code hash ffffffffffff" in result.error
    assert result.arrays == {} and result.task_id == "t9" and result.node_id == "va"
    assert verifies(result, key)


def test_node_computes_moments_and_signs_the_result(agent: NodeAgent, key, other_key, governed_task) -> None:
    # Execute
    result = agent.handle(governed_task("t1", kind="moments"))

    # Assert
    assert result.ok is True and result.error is None
    arrays = unpack(result.arrays)
    X_train, _ = load_hospital("va").part("train")
    assert result.metrics == {"n": 85.0} and arrays["total"].shape == (13,)  # the row count is public
    assert not np.allclose(arrays["total"], X_train.sum(axis=0))  # the sums are noised (DP by default)
    assert verifies(result, key)
    assert not verifies(result, other_key)
    assert not verifies(result.model_copy(update={"metrics": {"n": 86.0}}), key)


def test_node_reports_a_task_that_lacks_an_array(agent: NodeAgent, key, governed_task) -> None:
    # An evaluate task needs the global model; without it the node answers ok=False with the reason.
    result = agent.handle(governed_task("t2", kind="evaluate"))
    assert result.ok is False and result.error == "Task lacks the array 'mean'; the desk must send it."
    assert verifies(result, key)


def test_node_refuses_params_the_approval_does_not_name(agent: NodeAgent, key, governed_task) -> None:
    result = agent.handle(governed_task("t3", params={"bogus": 1}))
    assert result.ok is False and "bogus are not part of approval" in result.error
    assert verifies(result, key)


# --- broker --------------------------------------------------------------------------------------

async def never_disconnected() -> bool:
    return False


def test_broker_submitted_task_is_delivered_to_its_node_and_the_result_resolves_the_future() -> None:
    async def scenario():
        # Prepare
        broker = Broker()
        future = broker.submit("n1", make_task("t1"))

        # Execute
        task = await broker.next_task("n1", 1.0, never_disconnected)
        other = await broker.next_task("n2", 0.0, never_disconnected)
        result = make_result("t1", "n1")
        broker.deliver("n1", result)

        # Assert
        return task, other, future.done() and future.result(), result

    task, other, resolved, result = asyncio.run(scenario())
    assert task.task_id == "t1" and other is None
    assert resolved == result


def test_broker_wakes_a_waiting_poll_when_a_task_is_submitted() -> None:
    async def scenario():
        broker = Broker()
        poll = asyncio.create_task(broker.next_task("n1", 5.0, never_disconnected))
        await asyncio.sleep(0.02)
        start = time.monotonic()
        broker.submit("n1", make_task("t1"))
        task = await poll
        return task, time.monotonic() - start

    task, elapsed = asyncio.run(scenario())
    assert task.task_id == "t1" and elapsed < 1.0


def test_broker_deliver_from_the_wrong_node_is_forbidden() -> None:
    async def scenario():
        broker = Broker()
        future = broker.submit("n1", make_task("t1"))
        await broker.next_task("n1", 0.0, never_disconnected)
        with pytest.raises(Forbidden, match=r"Task 't1' was not assigned to node 'n2'\."):
            broker.deliver("n2", make_result("t1", "n2"))
        return future.done()

    assert asyncio.run(scenario()) is False


def test_broker_deliver_of_an_unknown_task_is_a_conflict() -> None:
    async def scenario():
        broker = Broker()
        with pytest.raises(Conflict, match=r"Task 'ghost' is not awaiting a result \(unknown, finished or cancelled\)\."):
            broker.deliver("n1", make_result("ghost"))

    asyncio.run(scenario())


def test_broker_second_delivery_of_a_task_is_a_conflict() -> None:
    async def scenario():
        broker = Broker()
        broker.submit("n1", make_task("t1"))
        broker.deliver("n1", make_result("t1"))
        with pytest.raises(Conflict, match=r"Task 't1' is not awaiting a result"):
            broker.deliver("n1", make_result("t1"))

    asyncio.run(scenario())


def test_broker_cancel_drops_the_queued_task_and_cancels_its_future() -> None:
    async def scenario():
        broker = Broker()
        future = broker.submit("n1", make_task("t1"))
        broker.cancel(["t1", "unknown"])
        task = await broker.next_task("n1", 0.0, never_disconnected)
        return future.cancelled(), task

    cancelled, task = asyncio.run(scenario())
    assert cancelled and task is None


def test_broker_next_task_without_a_task_returns_none_after_the_wait() -> None:
    async def scenario():
        broker = Broker()
        start = time.monotonic()
        task = await broker.next_task("n1", 0.1, never_disconnected)
        return task, time.monotonic() - start

    task, elapsed = asyncio.run(scenario())
    assert task is None
    assert 0.09 <= elapsed < 1.0


def test_broker_next_task_stops_when_the_client_disconnects() -> None:
    async def disconnected() -> bool:
        return True

    async def scenario():
        start = time.monotonic()
        task = await Broker().next_task("n1", 5.0, disconnected)
        return task, time.monotonic() - start

    task, elapsed = asyncio.run(scenario())
    assert task is None and elapsed < 1.0


def test_broker_node_is_connected_while_polling_and_not_after_the_grace() -> None:
    async def scenario():
        broker = Broker(grace=0.25)
        before = broker.connected("n1"), broker.last_seen("n1")
        poll = asyncio.create_task(broker.next_task("n1", 0.2, never_disconnected))
        await asyncio.sleep(0.1)
        during = broker.connected("n1")
        await poll
        just_after = broker.connected("n1")
        await asyncio.sleep(0.3)
        return before, during, just_after, broker.connected("n1"), broker.last_seen("n1")

    before, during, just_after, later, last_seen = asyncio.run(scenario())
    assert before == (False, None)
    assert during is True and just_after is True and later is False
    assert last_seen is not None and last_seen >= 0.3
