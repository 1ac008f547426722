"""End-to-end: a patient objects on the public API, the hospital's node applies it, the next cohort shrinks."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fedsante.data.heart import load_hospital
from fedsante.sim.launcher import Deployment
from fedsante.sim.lifecycle import example_spec

pytestmark = pytest.mark.e2e


def wait_status(url: str, receipt: str, wanted: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while (status := httpx.get(f"{url}/api/v1/objections/{receipt}").json())["status"] != wanted:
        assert time.monotonic() < deadline, f"objection still {status['status']!r} after {timeout:g} s"
        time.sleep(1.0)  # receipt lookups are rate-limited per address (30 a minute): poll like a patient would
    return status


def cohorts(audit: Path) -> list[dict]:
    entries = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    return [e["details"] for e in entries if e["action"] == "cohort.built"]


def test_an_objection_shrinks_the_next_cohort_by_exactly_that_patient_and_the_desk_never_holds_it(tmp_path) -> None:
    table = load_hospital("cleveland")
    patient = str(table.patient_id[table.split == "test"][0])  # a test patient: the public test count drops by 1
    with Deployment(tmp_path, hospitals=("cleveland", "hungarian"), round_timeout=20) as deployment:
        url = deployment.desk_url

        async def approve():
            spec = example_spec(list(deployment.hospitals)).model_copy(
                update={"parameters": {"rounds": 1}, "parameter_bounds": {}})
            return await deployment.approve(spec)

        async def one_run(reference: str, cast) -> dict:
            run = await cast.holder.start_run(reference)
            await cast.reviewers[0].wait_run(run["id"])
            return await cast.reviewers[0].run(run["id"])

        async def two_runs_around(object_then) -> tuple[dict, dict]:
            reference, cast = await approve()
            try:
                before = await one_run(reference, cast)
                object_then()
                return before, await one_run(reference, cast)
            finally:
                await cast.close()

        hospitals = {h["id"]: h for h in httpx.get(f"{url}/api/v1/hospitals").json()}
        assert hospitals["cleveland"]["accepts_objections"]  # the node published its key when it started
        receipts = []

        def object_now() -> None:
            # Execute: a patient objects, naming the hospital and the identifier it knows them by
            response = httpx.post(f"{url}/api/v1/objections", json={"hospital": "cleveland", "identifier": patient})
            assert response.status_code == 201, response.text
            receipts.append(response.json()["receipt"])
            assert response.json()["status"] == "received"
            applied = wait_status(url, receipts[0], "applied")
            assert applied["applied_at"] and applied["hospital_name"] == "Cleveland Clinic Foundation"

        before, after = asyncio.run(two_runs_around(object_now))

        # Assert: exactly that patient is gone from the next cohort, the other hospital is unchanged
        assert after["result"]["node_metrics"]["cleveland"]["n"] == before["result"]["node_metrics"]["cleveland"]["n"] - 1
        assert after["result"]["node_metrics"]["hungarian"]["n"] == before["result"]["node_metrics"]["hungarian"]["n"]
        built = cohorts(tmp_path / "nodes" / "cleveland" / "audit.jsonl")
        assert [c["excluded"] for c in built] == [0, 1] and built[1]["patients"] == built[0]["patients"] - 1
        assert cohorts(tmp_path / "nodes" / "hungarian" / "audit.jsonl")[-1]["excluded"] == 0
        # the desk's files hold no plaintext identifier, and not the receipt code either
        for path in [*(tmp_path / "desk").rglob("*"), tmp_path / "logs" / "desk.log"]:
            if path.is_file():
                data = path.read_bytes()
                assert patient.encode() not in data, path
                assert receipts[0].encode() not in data, path
        node_files = b"".join(p.read_bytes() for p in (tmp_path / "nodes" / "cleveland").rglob("*") if p.is_file())
        assert patient.encode() not in node_files  # the node keeps a keyed hash, not the identifier

        # the hospital's data officer sees it from the node's side
        shown = subprocess.run([sys.executable, "-m", "fedsante", "node", "objections", "--config",
                                str(deployment.config_path("cleveland"))], capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        assert "1 objection(s) in force; 1 patient(s) of cleveland are left out" in " ".join(shown.stdout.split())

        # withdrawal: the node removes it, and the receipt says so
        assert httpx.post(f"{url}/api/v1/objections/{receipts[0]}/withdraw").json()["status"] == "withdrawal_requested"
        withdrawn = wait_status(url, receipts[0], "withdrawn")
        assert withdrawn["withdrawn_at"]
        assert json.loads((tmp_path / "nodes" / "cleveland" / "objections.json").read_text()) == {}
