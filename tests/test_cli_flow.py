"""The whole life of a project driven only through the `fedsante` command, as each role would type it.

A desk process and a node process on loopback; an admin, a holder, two reviewers, a hospital data
officer and an auditor each use their own token file. The node first refuses the run because its
operator has not accepted the project yet; once accepted, the run completes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from fedsante.sim.launcher import free_port

pytestmark = pytest.mark.e2e


def fedsante(*args: str, env: dict | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "fedsante", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def wait_for(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer"
        time.sleep(0.1)


def test_each_role_drives_its_part_of_the_lifecycle_from_the_command_line(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    desk_dir = tmp_path / "desk"
    base = {"FEDSANTE_DESK_URL": url}
    admin = {**base, "FEDSANTE_TOKEN_FILE": str(desk_dir / "admin-token")}
    processes = [subprocess.Popen([sys.executable, "-m", "fedsante", "desk", "serve", "--data-dir", str(desk_dir),
                                   "--port", str(port), "--round-timeout", "10"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        wait_for(f"{url}/health")
        end = (datetime.now(UTC).date() + timedelta(days=90)).isoformat()
        # the desk admin: organisations and accounts (tokens saved 0600)
        for org, kind in (("Equipe cardio", "research"), ("CHU Strasbourg", "desk"), ("CHRU Nancy", "desk"),
                          ("VA Long Beach", "hospital")):
            fedsante("account", "org", org, "--kind", kind, env=admin)
        tokens = {}
        for name, org, role in (("holder", "Equipe cardio", "holder"), ("rev1", "CHU Strasbourg", "reviewer"),
                                ("rev2", "CHRU Nancy", "reviewer"), ("dpo", "VA Long Beach", "operator"),
                                ("auditor", "CHRU Nancy", "auditor")):
            tokens[name] = tmp_path / f"{name}.token"
            fedsante("account", "create", name, "--organisation", org, "--role", role, "--end-date", end,
                     "--save", str(tokens[name]), env=admin)
            assert tokens[name].stat().st_mode & 0o777 == 0o600
        as_ = {name: {**base, "FEDSANTE_TOKEN_FILE": str(path)} for name, path in tokens.items()}
        assert "holder: holder at Equipe cardio" in fedsante("account", "whoami", env=as_["holder"]).stdout

        # the hospital data officer: node, policy, registration with an operator token
        config = tmp_path / "va.toml"
        fedsante("node", "init", "--config", str(config), "--node-id", "va", "--dataset", "va",
                 "--data-dir", str(tmp_path / "va-data"), "--desk-url", url)
        fedsante("node", "register", "--config", str(config), "--organisation", "VA Long Beach", env=as_["dpo"])
        trusted = fedsante("node", "policy", "trust", "--config", str(config), "--from-desk").stdout
        key_id = fedsante("desk", "keys", "list", "--data-dir", str(desk_dir)).stdout
        assert trusted.split("Trusting desk key ")[1][:16] in key_id
        processes.append(subprocess.Popen([sys.executable, "-m", "fedsante", "node", "serve", "--config", str(config)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        # a second hospital, registered by the desk admin (secure aggregation needs at least two)
        other = tmp_path / "cleveland.toml"
        fedsante("node", "init", "--config", str(other), "--node-id", "cleveland", "--dataset", "cleveland",
                 "--data-dir", str(tmp_path / "cleveland-data"), "--desk-url", url)
        fedsante("node", "register", "--config", str(other), "--organisation", "Cleveland Clinic", env=admin)
        fedsante("node", "policy", "trust", "--config", str(other), "--from-desk")
        processes.append(subprocess.Popen([sys.executable, "-m", "fedsante", "node", "serve", "--config", str(other)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

        # the project holder: a project for this one hospital, from the template
        template = fedsante("project", "template").stdout
        project_file = tmp_path / "project.toml"
        start = template.index("datasets = [")
        stop = template.index("]\n", template.index("va", start)) + 2
        project_file.write_text(template[:start] + 'datasets = [{ node_id = "va", dataset = "va" }, '
                                '{ node_id = "cleveland", dataset = "cleveland" }]\n' + template[stop:])
        submitted = fedsante("project", "submit", str(project_file), env=as_["holder"]).stdout
        reference = submitted.split()[1]
        assert "submitted" in submitted

        # the reviewers
        queue = fedsante("review", "queue", env=as_["rev1"]).stdout
        assert reference in queue and "flags" in queue and "sensitive:" in queue  # flagged, not blocking
        fedsante("review", "approve", reference, "-m", "Clear purpose.", env=as_["rev1"])
        approved = fedsante("review", "approve", reference, "-m", "Agree.", env=as_["rev2"]).stdout
        assert "approved" in approved and f"{reference}-v1" in approved

        # the run is refused by a node until its operator accepts the project
        fedsante("node", "accept", reference, "--config", str(other), "--operator", "DPO Cleveland")
        refused = fedsante("run", "start", "--project", reference, env=as_["holder"], ok=False)
        assert refused.returncode == 1
        assert "node va refused the task" in " ".join(refused.stderr.split())
        assert "has not been accepted at this node" in " ".join(refused.stderr.split())
        accepted = fedsante("node", "accept", reference, "--config", str(config), "--operator", "DPO VA").stdout
        assert f"Accepted approval {reference}-v1" in " ".join(accepted.split())
        run = " ".join(fedsante("run", "start", "--project", reference, env=as_["holder"]).stdout.split())
        assert "completed" in run and "outputs are held until reviewers release them" in run
        run_id = run.split("Run ")[1].split()[0]
        assert "pass" in fedsante("run", "checks", run_id, env=as_["rev1"]).stdout
        assert "held until 2 reviewers" in " ".join(fedsante("run", "release", run_id, env=as_["rev1"]).stdout.split())
        assert "released." in fedsante("run", "release", run_id, env=as_["rev2"]).stdout
        shown = fedsante("run", "show", run_id, env=as_["holder"]).stdout
        assert "accuracy" in shown and "va" in shown
        written = fedsante("report", run_id, "--out", str(tmp_path / "report"), env=as_["holder"]).stdout
        assert "trust-report.html" in written and (tmp_path / "report" / "summary.fr.txt").exists()
        assert '"schema": "fedsante-trust-report/1"' in (tmp_path / "report" / "trust-report.json").read_text()

        # what everyone can read, and what the auditor verifies
        shown = " ".join(fedsante("project", "show", reference, env=as_["auditor"]).stdout.split())
        assert "running" in shown and "accepted" in shown and "rev1" in shown
        assert "sensitive_flagged" in shown and "FLAG" in shown and "FAIL" not in shown
        exported = tmp_path / "desk-audit.jsonl"
        fedsante("audit", "export", "--out", str(exported), env=as_["auditor"])
        assert "Chain intact" in " ".join(fedsante("audit", "verify", str(exported), "--signer-from-desk", "desk",
                                                            env=base).stdout.split())
        node_chain = tmp_path / "va-data" / "audit.jsonl"
        heads = fedsante("audit", "heads", env=base).stdout
        published = heads.split("va: entry ")[1].split()[1]
        assert "is an entry of this chain" in fedsante("audit", "verify", str(node_chain), "--config", str(config),
                                                   "--head", published).stdout
        actions = node_chain.read_text()
        assert '"action":"task.refused"' in actions and '"action":"approval.accepted"' in actions

        # roles are enforced from the command line too
        denied = fedsante("review", "approve", reference, env=as_["holder"], ok=False)
        assert denied.returncode == 1 and "desk reviewer role" in " ".join(denied.stderr.split())
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)
