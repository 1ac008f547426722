"""The node's objection table: keyed hashes only, applied to the cohort of each run and counted in the chain."""

from __future__ import annotations

import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedsante.audit import AuditLog
from fedsante.data.heart import load_hospital
from fedsante.node.objections import ObjectionTable, Objections


def test_the_cohort_leaves_out_exactly_the_patients_under_an_objection(tmp_path) -> None:
    key = Ed25519PrivateKey.generate()
    audit = AuditLog(tmp_path / "audit.jsonl", key, "va")
    objections = Objections.open(tmp_path, "va", key, audit)
    table = load_hospital("va")
    chosen = [str(table.patient_id[3]), str(table.patient_id[50])]
    for i, pid in enumerate([*chosen, "not-a-patient-here"]):
        objections.table.add(f"{i:064d}", pid)
    objections.table.save()
    cohort = objections.cohort(table, "run-1")
    assert len(cohort.y) == len(table.y) - 2 and not set(chosen) & set(map(str, cohort.patient_id))
    entry = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
    assert entry["action"] == "cohort.built" and entry["details"] == {"patients": len(table.y) - 2, "excluded": 2}
    # the table on disk holds keyed hashes, never the identifiers, and survives a restart
    stored = (tmp_path / "objections.json").read_text()
    assert chosen[0] not in stored and (tmp_path / "objections.json").stat().st_mode & 0o777 == 0o600
    reopened = ObjectionTable(tmp_path / "objections.json", objections.table.hash_key)
    assert reopened.excluded(table) == set(chosen)
    reopened.remove(f"{0:064d}")
    assert reopened.excluded(table) == {chosen[1]}
