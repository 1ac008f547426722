"""The optional second factor: an objection carries the patient's date of birth, sealed with the identifier,
and a node whose policy asks for it excludes a patient only when both match its record."""

from __future__ import annotations

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.public import PrivateKey

from fedsante.audit import AuditLog
from fedsante.common.errors import DataError
from fedsante.data.sources import RawTable
from fedsante.node.objections import Objections, policy_birth_dates
from fedsante.node.policy import NodePolicy, dump_policy, load_policy
from fedsante.privacy.objections import normalise_birth_date, open_objection, public_b64, seal
from test_objection_burst import FakeDesk, refresh

IDS = ["Q4ZK7M2TXB5HWR3NJ6PA", "MS7MXT225XHVRYBKVPJO", "EMDE27OKJ4V7ZX4EY6H5", "K2LQ3ZP7WX5RT6HN4JDA"]


def raw(birth: list[str | None], column: str = "ddn") -> RawTable:
    return RawTable(source="h.csv", columns={"patient_id": np.array(IDS, dtype=object),
                                             column: np.array(birth, dtype=object)}, n_rows=len(IDS))


def policy_file(tmp_path, **settings):
    path = tmp_path / "policy.toml"
    path.write_text(dump_policy(NodePolicy(**settings)), encoding="utf-8")
    return path


def test_the_birth_date_is_sealed_with_the_identifier_and_read_in_three_spellings() -> None:
    key = PrivateKey.generate()
    assert open_objection(key, seal(public_b64(key), IDS[0], "07/03/1951")) == (IDS[0], "1951-03-07")
    assert open_objection(key, seal(public_b64(key), IDS[0])) == (IDS[0], None)
    assert normalise_birth_date("1951-03-07") == normalise_birth_date("19510307") == "1951-03-07"
    for bad in ("", "31/02/1951", "1951-3", "yesterday", "0001-01-01"):
        with pytest.raises(DataError, match="date of birth"):
            normalise_birth_date(bad)


def test_with_the_second_factor_only_identifier_and_birth_date_together_exclude(tmp_path) -> None:
    # Prepare: the dataset's birth dates; objections with the right date, a wrong one, none
    key = Ed25519PrivateKey.generate()
    path = policy_file(tmp_path, objection_second_factor="birth_date", objection_birth_date_column="ddn")
    table = raw(["1951-03-07", "02/11/1960", "1945-01-01", None])
    objections = Objections.open(tmp_path, "h", key, AuditLog(tmp_path / "audit.jsonl", key, "h"),
                                 birth_dates=policy_birth_dates(path, lambda: table))
    objections.table.add("a" * 64, IDS[0], "1951-03-07")   # both match
    objections.table.add("b" * 64, IDS[1], "1960-11-02")   # both match (the dataset writes DD/MM/YYYY)
    objections.table.add("c" * 64, IDS[2], "1945-01-02")   # wrong date: a forger guessing
    objections.table.add("d" * 64, IDS[3], "1945-01-01")   # no date in the record: cannot be checked

    # Execute
    with_factor = objections.table.excluded(table, objections.birth_dates())
    without = objections.table.excluded(table)

    # Assert
    assert with_factor == {IDS[0], IDS[1]} and without == set(IDS)
    objections.table.save()
    assert "1951" not in (tmp_path / "objections.json").read_text()  # keyed hashes only


def test_a_sealed_birth_date_travels_from_the_desk_to_the_cohort(tmp_path) -> None:
    # Prepare: the desk holds two objections for the same hospital, one with the right date, one with a wrong one
    key = Ed25519PrivateKey.generate()
    path = policy_file(tmp_path, objection_second_factor="birth_date", objection_birth_date_column="ddn")
    table = raw(["1951-03-07", "1960-11-02", None, None])
    objections = Objections.open(tmp_path, "h", key, AuditLog(tmp_path / "audit.jsonl", key, "h"),
                                 birth_dates=policy_birth_dates(path, lambda: table))
    desk = FakeDesk()
    desk.key = public_b64(objections.box_key)
    for identifier, birth in ((IDS[0], "07/03/1951"), (IDS[1], "1960-11-03")):
        desk.pending[identifier.lower() * 3 + "x" * 4] = {"id": identifier.lower() * 3 + "x" * 4, "action": "object",
                                                          "ciphertext": seal(desk.key, identifier, birth)}

    # Execute
    added, _ = refresh(objections, desk)

    # Assert: both recorded (the patients' receipts say applied), only the matching one left out
    assert added == 2 and objections.table.excluded(table, objections.birth_dates()) == {IDS[0]}


def test_with_the_second_factor_an_objection_without_a_birth_date_excludes_nobody(tmp_path) -> None:
    key = Ed25519PrivateKey.generate()
    path = policy_file(tmp_path, objection_second_factor="birth_date", objection_birth_date_column="ddn")
    objections = Objections.open(tmp_path, "h", key, AuditLog(tmp_path / "audit.jsonl", key, "h"),
                                 birth_dates=policy_birth_dates(path, lambda: raw(["1951-03-07"] * 4)))
    objections.table.add("a" * 64, IDS[0])
    objections.table.save()
    assert objections.table.excluded(raw(["1951-03-07"] * 4), objections.birth_dates()) == set()
    assert "1951" not in (tmp_path / "objections.json").read_text()


def test_the_policy_names_the_column_and_a_missing_column_is_refused_by_name(tmp_path) -> None:
    assert NodePolicy().objection_second_factor == "none"
    assert policy_birth_dates(tmp_path / "absent.toml", lambda: raw([None] * 4))() is None
    assert policy_birth_dates(policy_file(tmp_path), lambda: raw([None] * 4))() is None
    path = policy_file(tmp_path, objection_second_factor="birth_date")
    assert load_policy(path).objection_birth_date_column == "birth_date"
    with pytest.raises(DataError, match=r"no column 'birth_date'; set objection_birth_date_column"):
        policy_birth_dates(path, lambda: raw([None] * 4))()
    with pytest.raises(ValueError):
        NodePolicy(objection_second_factor="postcode")
