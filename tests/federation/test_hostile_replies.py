"""A node's reply is hostile input: a bad one fails its run at once with the reason, never leaves it hanging."""

from __future__ import annotations

import asyncio
import time

import pytest

from fedsante.algorithms.logreg import LogReg
from fedsante.common.errors import RunFailed
from fedsante.data.heart import load_hospital
from fedsante.node.agent import NodeAgent
from fedsante.node.secure import SecureRounds
from fedsante.sim.simulation import simulate_study

PARAMS = {"privacy": "none", "rounds": 2, "membership_check": False}


@pytest.fixture(scope="module")
def tables():
    return {h: load_hospital(h) for h in ("cleveland", "hungarian", "va")}


def _run(tables, params=PARAMS) -> float:
    started = time.monotonic()
    asyncio.run(simulate_study(tables, params, round_timeout=20))
    return time.monotonic() - started


@pytest.mark.parametrize("payload, expected", [
    ({}, "without a valid 'masked'"),  # a plain update: nothing masked
    ({"masked": {"@": "KeyAdvert", "bogus": 1}}, "without a valid 'masked'"),  # wrong fields
    ({"masked": "garbage"}, "without a valid 'masked'"),
])
def test_a_node_sending_an_unmasked_or_malformed_update_fails_the_run_at_once(tables, monkeypatch, payload,
                                                                              expected) -> None:
    # Prepare: va answers the secure training rounds with something that is not a masked vector
    real = SecureRounds.handle

    def hostile(self, task, update, expected_config):
        if task.kind == "fit" and self.node_id == "va":
            return payload
        return real(self, task, update, expected_config)

    monkeypatch.setattr(SecureRounds, "handle", hostile)

    # Execute / Assert: the run fails naming the node, well before the 20 s round timeout
    started = time.monotonic()
    with pytest.raises(RunFailed, match=rf"node va sent a secure-aggregation reply {expected}.*nothing of this "
                                        r"round was applied"):
        _run(tables)
    assert time.monotonic() - started < 15


def test_a_result_the_desk_refuses_fails_the_run_at_once_with_the_field(tables, monkeypatch) -> None:
    # Prepare: va's evaluation result carries an audit sequence no database can hold
    real = NodeAgent.handle

    def hostile(self, task):
        result = real(self, task)
        hostile_reply = task.kind == "evaluate" and self.node_id == "va"
        return result.model_copy(update={"audit_seq": 10**30}) if hostile_reply else result

    monkeypatch.setattr(NodeAgent, "handle", hostile)

    # Execute / Assert: no 'no reply within 20 s': the refusal reaches the run
    started = time.monotonic()
    with pytest.raises(RunFailed, match=r"node va sent an invalid result \(audit_seq: Input should be less than"):
        _run(tables)
    assert time.monotonic() - started < 15


def test_a_coordinator_that_dies_unexpectedly_fails_its_run_with_the_cause(tables, monkeypatch) -> None:
    async def broken(self, context):
        raise KeyError("stats")

    monkeypatch.setattr(LogReg, "run", broken)
    with pytest.raises(RunFailed, match=r"unexpected error \(KeyError: 'stats'\); nothing more was applied"):
        _run(tables)
