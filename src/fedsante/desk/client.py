"""An async client of the desk API (one account token per client), used by the CLI, demo and simulations."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import os
import ssl
from pathlib import Path

import httpx

from fedsante.common.tls import pinned_context

from fedsante.common.errors import ConfigError, DeskUnreachable, FedsanteError, RunFailed


CA_ENV = "FEDSANTE_DESK_CA"


def default_verify() -> ssl.SSLContext | bool:
    """The desk's CA pinned from ``FEDSANTE_DESK_CA`` when set, else the system's trust store."""
    ca = os.environ.get(CA_ENV)
    return pinned_context(Path(ca)) if ca else True


class DeskClient:
    """Talks to one desk. ``transport`` may be an ``httpx.ASGITransport`` for in-process use."""

    def __init__(self, base_url: str, token: str = "", *, transport: httpx.AsyncBaseTransport | None = None,
                 verify: ssl.SSLContext | bool | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.transport = transport
        self.verify = default_verify() if verify is None else verify
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(base_url=self.base_url, transport=transport, timeout=30, headers=headers,
                                       verify=self.verify)

    def as_account(self, token: str) -> DeskClient:
        """A client of the same desk acting with another account's token."""
        return DeskClient(self.base_url, token, transport=self.transport, verify=self.verify)

    async def __aenter__(self) -> DeskClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise DeskUnreachable(
                f"Cannot reach the desk at {self.base_url} ({type(exc).__name__}: {exc or 'no answer'}). "
                "Is 'fedsante desk serve' running there? Check --desk-url."
            ) from None
        if response.status_code >= 400:
            try:
                body = response.json()
                message, errors = body.get("error", response.text), body.get("errors")
            except ValueError:
                message, errors = response.text, None
            error = FedsanteError(f"Desk refused {method} {path} ({response.status_code}): {message}", errors=errors)
            error.status = response.status_code
            raise error
        if not response.content:
            return None
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    async def health(self) -> dict:
        return await self._call("GET", "/health")

    async def create_organisation(self, name: str, kind: str = "hospital") -> dict:
        return await self._call("POST", "/api/v1/organisations", json={"name": name, "kind": kind})

    async def organisations(self) -> list[dict]:
        return await self._call("GET", "/api/v1/organisations")

    async def register_node(self, node_id: str, organisation: str, public_key: str, *,
                            hospital_name: str = "", territory: str = "") -> dict:
        return await self._call("POST", "/api/v1/nodes", json={
            "node_id": node_id, "organisation": organisation, "public_key": public_key,
            "hospital_name": hospital_name, "territory": territory})

    async def nodes(self) -> list[dict]:
        return await self._call("GET", "/api/v1/nodes")

    async def catalogue(self) -> list[dict]:
        """Each node's datasets with their columns and types (no value, no count)."""
        return await self._call("GET", "/api/v1/catalogue")

    async def create_account(self, name: str, organisation: str, role: str, end_date: str) -> dict:
        """Create an account; the answer holds its token (shown once)."""
        return await self._call("POST", "/api/v1/accounts", json={
            "name": name, "organisation": organisation, "role": role, "end_date": end_date})

    async def accounts(self) -> list[dict]:
        return await self._call("GET", "/api/v1/accounts")

    async def disable_account(self, name: str) -> dict:
        return await self._call("POST", f"/api/v1/accounts/{name}/disable")

    async def me(self) -> dict:
        return await self._call("GET", "/api/v1/accounts/me")

    async def keys(self) -> list[dict]:
        return await self._call("GET", "/api/v1/keys")

    async def audit_heads(self) -> dict:
        return await self._call("GET", "/api/v1/audit/heads")

    async def audit_export(self) -> str:
        return await self._call("GET", "/api/v1/audit/desk")

    async def create_project(self, spec: dict) -> dict:
        return await self._call("POST", "/api/v1/projects", json=spec)

    async def update_project(self, reference: str, spec: dict) -> dict:
        return await self._call("PUT", f"/api/v1/projects/{reference}", json=spec)

    async def projects(self, status: str | None = None) -> list[dict]:
        return await self._call("GET", "/api/v1/projects", params={"status": status} if status else None)

    async def project(self, reference: str, part: str = "") -> Any:
        """A project, or one of its parts: checks, reviews, history, approval, acceptances."""
        return await self._call("GET", f"/api/v1/projects/{reference}" + (f"/{part}" if part else ""))

    async def transition(self, reference: str, action: str, reason: str = "") -> dict:
        """submit, complete, release or archive a project."""
        return await self._call("POST", f"/api/v1/projects/{reference}/{action}", json={"reason": reason})

    async def review(self, reference: str, decision: str, comment: str = "", answers: dict | None = None,
                     public_reason: str = "") -> dict:
        return await self._call("POST", f"/api/v1/projects/{reference}/reviews", json={
            "decision": decision, "comment": comment, "answers": answers or {}, "public_reason": public_reason})

    async def start_run(self, project: str, nodes: list[str] | None = None, params: dict | None = None) -> dict:
        return await self._call("POST", "/api/v1/runs", json={"project": project, "nodes": nodes,
                                                              "params": params or {}})

    async def run(self, run_id: str) -> dict:
        return await self._call("GET", f"/api/v1/runs/{run_id}")

    async def trust_report(self, run_id: str) -> dict:
        """The trust report of a released run (:mod:`fedsante.reports.trust`), from what this account may see."""
        # Imported here, not at the top: the report pulls in scipy.stats (~0.7 s), which every other CLI
        # command that talks to the desk would pay. desk -> reports points down (import-linter checks it).
        from fedsante.reports.trust import build_report, project_reference

        run = await self.run(run_id)
        if run["held"] or not run["result"]:
            raise ConfigError(f"Run {run_id} has no outputs visible to this account ({run['status']}"
                              f"{', held until two reviewers release them' if run['held'] else ''}).")
        nodes = {n["node_id"]: n for n in await self.nodes()}
        project = await self.project(project_reference(run))
        return build_report(run, nodes, project["spec"])

    async def run_checks(self, run_id: str) -> dict:
        return await self._call("GET", f"/api/v1/runs/{run_id}/checks")

    async def release_run(self, run_id: str, comment: str = "") -> dict:
        return await self._call("POST", f"/api/v1/runs/{run_id}/release", json={"comment": comment})

    async def run_tasks(self, run_id: str) -> list[dict]:
        return await self._call("GET", f"/api/v1/runs/{run_id}/tasks")

    async def wait_for_nodes(self, node_ids: list[str], timeout: float) -> None:
        """Wait until every node in ``node_ids`` polls the desk, or raise naming the missing ones."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            connected = {n["node_id"] for n in await self.nodes() if n["connected"]}
            missing = [n for n in node_ids if n not in connected]
            if not missing:
                return
            if loop.time() > deadline:
                raise RunFailed(f"Node(s) {', '.join(missing)} did not connect to the desk within {timeout:g} s.")
            await asyncio.sleep(0.05)

    async def wait_run(self, run_id: str, *, on_progress: Callable[[dict], None] | None = None,
                       interval: float = 0.05) -> dict:
        """Poll a run until it completes (returned) or fails (:class:`RunFailed` with the desk's reason)."""
        while True:
            run = await self.run(run_id)
            if on_progress:
                on_progress(run)
            if run["status"] == "completed":
                return run
            if run["status"] == "failed":
                raise RunFailed(run["error"] or f"Run {run_id} failed.")
            await asyncio.sleep(interval)
